"""Every Keras base argument works with every optimizer, checked against the NumPy reference.

Each test transforms the reference the way Keras documents the argument (clip the
gradient, decay the weight, average the weights...) and runs one case per optimizer class.
"""

import keras
import numpy as np
import pytest

from tests.cases import BY_ID, REPRESENTATIVES
from tests.problem import make_problem, run_keras, run_reference, to_numpy

CASES = [BY_ID[i] for i in REPRESENTATIVES]  # one per class (tests/cases.py)
STEPS = 8
RTOL, ATOL = 2e-5, 2e-6


def _assert_close(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"weight {i}")


def _with_grads(problem, transform):
    return type(problem)(problem.weights, [transform(grads) for grads in problem.grads])


def _clip_norm(g, c):
    return g * c / max(np.linalg.norm(g), c)


@pytest.fixture(params=CASES, ids=REPRESENTATIVES)
def case(request):
    return request.param


def test_clipnorm(case):
    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(clipnorm=0.5), problem)
    want, _ = run_reference(case, _with_grads(problem, lambda gs: [_clip_norm(g.astype("float64"), 0.5) for g in gs]))
    _assert_close(got, want)


def test_clipvalue(case):
    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(clipvalue=0.3), problem)
    want, _ = run_reference(
        case, _with_grads(problem, lambda gs: [np.clip(g.astype("float64"), -0.3, 0.3) for g in gs])
    )
    _assert_close(got, want)


def test_global_clipnorm(case):
    def clip(gs):
        norm = np.sqrt(sum(np.sum(g.astype("float64") ** 2) for g in gs))
        return [g.astype("float64") * 1.0 / max(norm, 1.0) for g in gs]

    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(global_clipnorm=1.0), problem)
    want, _ = run_reference(case, _with_grads(problem, clip))
    _assert_close(got, want)


def test_weight_decay_is_decoupled_and_comes_first(case):
    wd = 0.2
    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(weight_decay=wd), problem)
    lr = case.kwargs["learning_rate"]
    hyper = case.reference_kwargs()
    if "weight_decay" in case.reference.__code__.co_varnames:
        hyper["weight_decay"] = 0.0  # applied below, as Keras does, for every optimizer
    weights = [w.astype("float64") for w in problem.weights]
    states = [{} for _ in weights]
    for t in range(1, STEPS + 1):
        for i, g in enumerate(problem.grads[t - 1]):
            decayed = weights[i] * (1 - lr * wd)
            weights[i], states[i] = case.reference(decayed, g.astype("float64"), states[i], t, lr, **hyper)
    _assert_close(got, weights)


def test_loss_scale_factor_unscales_gradients(case):
    problem = make_problem(steps=STEPS)
    scaled = _with_grads(problem, lambda gs: [g * np.float32(64.0) for g in gs])
    got, _ = run_keras(case.make(loss_scale_factor=64.0), scaled)
    want, _ = run_reference(case, problem)
    _assert_close(got, want)


def test_gradient_accumulation_counts_updates_not_micro_steps(case):
    """Two micro-steps of the same gradient make one update with that gradient, and t counts updates."""
    problem = make_problem(steps=STEPS)
    doubled = type(problem)(problem.weights, [gs for gs in problem.grads for _ in range(2)])
    optimizer = case.make(gradient_accumulation_steps=2)
    got, _ = run_keras(optimizer, doubled)
    want, _ = run_reference(case, problem)
    _assert_close(got, want)
    assert int(to_numpy(optimizer.iterations)) == STEPS


def test_learning_rate_schedule(case):
    lr0 = case.kwargs["learning_rate"]
    schedule = keras.optimizers.schedules.ExponentialDecay(lr0, decay_steps=3, decay_rate=0.5)
    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(learning_rate=schedule), problem)
    want, _ = run_reference(case, problem, lr_at=lambda iteration: lr0 * 0.5 ** (iteration / 3))
    _assert_close(got, want)


def test_callable_learning_rate(case):
    lr = case.kwargs["learning_rate"] * 0.3
    problem = make_problem(steps=STEPS)
    got, _ = run_keras(case.make(learning_rate=lambda: lr), problem)
    want, _ = run_reference(case, problem, lr_at=lambda iteration: lr)
    _assert_close(got, want)


def test_use_ema(case):
    problem = make_problem(steps=STEPS)
    optimizer = case.make(use_ema=True, ema_momentum=0.8)
    variables = [keras.Variable(w) for w in problem.weights]
    for grads in problem.grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    optimizer.finalize_variable_values(variables)  # overwrites the weights with their averages
    weights = [w.astype("float64") for w in problem.weights]
    averages = [None] * len(weights)
    states = [{} for _ in weights]
    for t in range(1, STEPS + 1):
        for i, g in enumerate(problem.grads[t - 1]):
            weights[i], states[i] = case.reference(
                weights[i], g.astype("float64"), states[i], t, case.kwargs["learning_rate"], **case.reference_kwargs()
            )
            averages[i] = weights[i] if t == 1 else 0.8 * averages[i] + 0.2 * weights[i]
    _assert_close([to_numpy(v) for v in variables], averages)
