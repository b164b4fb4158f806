"""`effective_learning_rate` of every registry case against its NumPy float64 reference
(`tests/reference.py`'s `*_effective_lr`, written from the papers, not from the package).

Golden numbers: the reference's state after the steps, and its step size for the next one."""

import keras
import numpy as np
import pytest

from tests import reference as ref
from tests.cases import CASE_IDS, CASES
from tests.problem import make_problem, run_reference, to_numpy
from tests.test_reference import ATOL, RTOL

STEPS = 12


def test_every_case_has_a_reference_effective_learning_rate():
    assert {case.reference for case in CASES} <= set(ref.EFFECTIVE_LR)


def _reference_elr(case, problem, steps):
    weights, states = run_reference(case, problem, steps=steps)
    elr = ref.EFFECTIVE_LR[case.reference]
    lr = case.kwargs["learning_rate"]
    return [elr(w, s, steps + 1, lr, **case.reference_kwargs()) for w, s in zip(weights, states)]


@pytest.mark.parametrize("multi_tensor", [True, False], ids=["fast-path", "portable"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_effective_learning_rate_matches_the_reference(case, multi_tensor):
    problem = make_problem(steps=STEPS)
    optimizer = case.make(multi_tensor=multi_tensor)
    variables = [keras.Variable(w) for w in problem.weights]
    for grads in problem.grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    want = _reference_elr(case, problem, STEPS)
    for i, variable in enumerate(variables):
        got = optimizer.effective_learning_rate(variable)
        assert tuple(got.shape) == tuple(variable.shape)
        np.testing.assert_allclose(to_numpy(got), want[i], rtol=RTOL, atol=ATOL, err_msg=f"variable {i}")
    # The sampled form reads the same numbers (every weight of the first two, in one call).
    sampled = optimizer.effective_learning_rate_at(variables[:2], [None, None])
    np.testing.assert_allclose(
        to_numpy(sampled), np.concatenate([w.reshape(-1) for w in want[:2]]), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if c.kwargs.get("bias_correction", True) and c.reference in (ref.adam_step, ref.adamw_step, ref.nadam_step)
    ],
    ids=lambda c: c.id,
)
def test_the_problem_tells_the_step_count(case):
    """The data is sensitive: the reference step size read one step off (t instead of t + 1) is
    far outside the tolerance, so a step size that used the wrong t would fail."""
    problem = make_problem(steps=STEPS)
    weights, states = run_reference(case, problem, steps=STEPS)
    elr = ref.EFFECTIVE_LR[case.reference]
    lr, hyper = case.kwargs["learning_rate"], case.reference_kwargs()
    right = np.concatenate([elr(w, s, STEPS + 1, lr, **hyper).ravel() for w, s in zip(weights, states)])
    wrong = np.concatenate([elr(w, s, STEPS, lr, **hyper).ravel() for w, s in zip(weights, states)])
    assert np.max(np.abs(wrong - right) / (np.abs(right) * RTOL + ATOL)) > 100
