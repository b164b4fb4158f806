"""Property tests (hypothesis): for random hyperparameters in their valid ranges and random
finite gradients of mixed magnitudes, every optimizer

- produces only finite weights and state from finite input,
- advances `iterations` by exactly one per step,
- matches its NumPy float64 reference (tests/reference.py), weights and slots.

The ranges are the arguments' valid ranges with two bounds, each stated where it is drawn:
epsilon >= 1e-4 (with epsilon = 0 a zero gradient on a fresh accumulator is 0/0 in any
precision, the reference's too) and decay rates <= 0.999 (closer to 1 the float32 result
of `1 - beta` carries most of the error, not the optimizer). Bounded and reproducible:
`derandomize=True`, no example database, a few dozen examples per optimizer.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_adaptive as ka
from tests import reference as ref
from tests.cases import BY_CLASS, BY_ID, Case
from tests.problem import Problem, run_reference, slots_of, to_numpy

SHAPES = [(3, 2), (4,)]
STEPS = 3
# KA_PROPERTY_EXAMPLES=200 for a deeper local search; CI keeps the bounded default.
SETTINGS = settings(
    max_examples=int(os.environ.get("KA_PROPERTY_EXAMPLES", 12)),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Per class: a strategy of valid hyperparameters (tests/cases.py) and the class's reference.
HYPERPARAMETERS = {
    cls: (entry.hyperparameters, BY_ID[entry.representative].reference) for cls, entry in BY_CLASS.items()
}


def _mixed(shape):
    """Finite float32 arrays whose elements span 1e-6..1e2 in magnitude, signs and exact zeros included."""
    size = int(np.prod(shape))
    element = st.one_of(
        st.just(0.0), st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(-6.0, 2.0)).map(lambda p: p[0] * 10.0 ** p[1])
    )
    return st.lists(element, min_size=size, max_size=size).map(lambda v: np.asarray(v, "float32").reshape(shape))


problems = st.builds(
    Problem,
    weights=st.tuples(*[_mixed(s) for s in SHAPES]).map(list),
    grads=st.lists(st.tuples(*[_mixed(s) for s in SHAPES]).map(list), min_size=STEPS, max_size=STEPS),
)


EPS32 = float(np.finfo("float32").eps)


def _cancellation_error(case, problem) -> list:
    """Per weight, the float32 error that centered RMSProp cannot avoid, summed over the steps.

    Its denominator uses d = v - m^2, which cancels when the gradients are consistent
    (d << v): float32 rounding of v and m^2 shifts d by up to ~4 eps32 v, and the update
    lr * g / den(d) moves by lr * |g| * |den(d) / den(d + delta) - 1|. Any float32
    implementation has this error; other optimizers have none (zeros)."""
    hyper = case.kwargs
    errors = [0.0 for _ in problem.weights]
    if not hyper.get("centered"):
        return errors
    eps, inside, lr = hyper["epsilon"], hyper["epsilon_placement"] == "inside", hyper["learning_rate"]

    def den(d):
        return np.sqrt(d + eps) if inside else np.sqrt(d) + eps

    for t in range(1, STEPS + 1):
        _, states = run_reference(case, problem, steps=t)
        for i, state in enumerate(states):
            v, m, g = state["second_moment"], state["first_moment"], problem.grads[t - 1][i].astype("float64")
            d = np.maximum(v - m * m, 0.0)
            delta = 4 * EPS32 * v
            shift = np.maximum(np.abs(den(d) / den(d + delta) - 1), np.abs(den(d) / den(np.maximum(d - delta, 0)) - 1))
            momentum = hyper.get("momentum", 0.0)
            carry = 1.0 / (1.0 - momentum) if momentum else 1.0  # an error enters the momentum buffer and stays
            errors[i] += 2 * carry * float(np.max(lr * np.abs(g) / den(d) * shift))
    return errors


def _check(cls, reference, hyper, problem):
    case = Case(f"property-{cls.__name__}", cls, hyper, reference)
    optimizer = case.make()
    variables = [keras.Variable(w, dtype="float32") for w in problem.weights]
    for t in range(STEPS):
        optimizer.apply([keras.ops.convert_to_tensor(g, dtype="float32") for g in problem.grads[t]], variables)
        assert int(to_numpy(optimizer.iterations)) == t + 1, "iterations must advance once per step"
    weights, slots = [to_numpy(v) for v in variables], slots_of(optimizer, variables)
    for value in weights + [s for slot in slots for s in slot.values()] + [to_numpy(v) for v in optimizer.variables]:
        assert np.all(np.isfinite(value)), f"non-finite value from finite input with {hyper}"
    expected_weights, expected_states = run_reference(case, problem)
    extra = _cancellation_error(case, problem)
    for i, (w, e) in enumerate(zip(weights, expected_weights)):
        # float32 against float64: a few ulps of the weight, plus a few ulps of each step's size.
        np.testing.assert_allclose(
            w,
            e,
            rtol=2e-5,
            atol=1e-5 * hyper["learning_rate"] * STEPS + 1e-6 + extra[i],
            err_msg=f"weight {i} of {cls.__name__} with {hyper}",
        )
    for i, (s, e) in enumerate(zip(slots, expected_states)):
        assert set(s) == set(e), f"{cls.__name__} slots {sorted(s)}, reference {sorted(e)}"
        for name in s:
            # RMSProp's momentum buffer holds the update before the learning rate scales it.
            slot_extra = extra[i] / hyper["learning_rate"] if name == "momentum" else 0.0
            np.testing.assert_allclose(
                s[name],
                e[name],
                rtol=1e-4,
                atol=1e-6 + slot_extra,
                err_msg=f"slot {name} of weight {i} of {cls.__name__} with {hyper}",
            )


PARAMS = [pytest.param(cls, id=cls.__name__) for cls in HYPERPARAMETERS]


@pytest.mark.parametrize("cls", PARAMS)
def test_random_hyperparameters_and_gradients_match_the_reference(cls):
    strategy, reference = HYPERPARAMETERS[cls]

    @SETTINGS
    @given(hyper=strategy, problem=problems)
    def check(hyper, problem):
        _check(cls, reference, hyper, problem)

    check()


def test_centered_rmsprop_with_rho_near_zero_matches_the_reference():
    """The case hypothesis found in CI: rho = 2^-24 makes r - a^2 cancel almost completely, and the
    error enters the momentum buffer unscaled by the learning rate."""
    zeros = [np.zeros(s, "float32") for s in SHAPES]
    last = [np.zeros(SHAPES[0], "float32"), np.array([0.0, 0.0, 0.0, -10.0], "float32")]
    hyper = dict(
        learning_rate=0.01,
        rho=5.960464477539063e-08,
        epsilon=1e-4,
        momentum=0.5,
        centered=True,
        epsilon_placement="inside",
    )
    _check(ka.RMSProp, ref.rmsprop_step, hyper, Problem(weights=zeros, grads=[zeros, zeros, last]))
