"""PyTorch's multi-tensor path gives the numbers of the portable per-variable path, on every case.

These are the torch backend's fast paths, so these tests run in the torch process of the
suite; JAX's native Adam kernel has its own in `tests/test_jax_native.py`, and on TensorFlow
the compiler fuses the per-variable update.
"""

import keras
import numpy as np
import pytest

from tests.cases import BY_ID, CASE_IDS, CASES, REPRESENTATIVES
from tests.problem import assert_same_run, make_problem, run_keras

# The multi-tensor path is the torch backend's; other backends run the portable path.
pytestmark = pytest.mark.backends("torch")

# Float32 rounding: PyTorch's kernels fuse multiply-adds that the portable path rounds twice,
# and weights near zero are the difference of terms of order 1-10.
RTOL, ATOL = 2e-6, 1e-6


def _assert_same(fast, portable):
    assert_same_run(fast, portable, RTOL, ATOL)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_multi_tensor_equals_portable(case):
    problem = make_problem(steps=25)
    _assert_same(run_keras(case.make(multi_tensor=True), problem), run_keras(case.make(multi_tensor=False), problem))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_multi_tensor_equals_portable_with_schedule_clipping_and_accumulation(case):
    schedule = keras.optimizers.schedules.ExponentialDecay(case.kwargs["learning_rate"], 4, 0.7)
    extra = dict(learning_rate=schedule, clipnorm=2.0, gradient_accumulation_steps=2, weight_decay=0.01)
    problem = make_problem(steps=12)
    _assert_same(
        run_keras(case.make(multi_tensor=True, **extra), problem),
        run_keras(case.make(multi_tensor=False, **extra), problem),
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_multi_tensor_groups_mixed_dtypes(dtype):
    """Weights of two dtypes in one model: each dtype group gets its own multi-tensor step."""
    from tests.cases import BY_ID

    case = BY_ID["adam-amsgrad"]
    problem = make_problem(steps=10)
    results = []
    for multi in (True, False):
        optimizer = case.make(multi_tensor=multi)
        variables = [keras.Variable(w, dtype="float32" if i % 2 else dtype) for i, w in enumerate(problem.weights)]
        for grads in problem.grads:
            optimizer.apply(
                [keras.ops.convert_to_tensor(g, dtype=v.dtype) for g, v in zip(grads, variables)], variables
            )
        results.append([np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(v, "float32"))) for v in variables])
    # The two paths may round differently in half precision (the portable one goes through
    # keras.ops): allow a unit in the last place of the half-precision dtype.
    ulp = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype]
    for fast, portable in zip(*results):
        np.testing.assert_allclose(fast, portable, rtol=ulp, atol=ulp * 1e-2)


def test_multi_tensor_path_is_taken(monkeypatch):
    """One update_step per dtype group, not one per variable."""
    from tests.cases import BY_ID

    calls = []
    case = BY_ID["adam"]
    original = case.cls.update_step
    monkeypatch.setattr(case.cls, "update_step", lambda self, *a: calls.append(1) or original(self, *a))
    problem = make_problem(steps=2)
    run_keras(case.make(multi_tensor=True), problem)
    assert len(calls) == 2
    calls.clear()
    run_keras(case.make(multi_tensor=False), problem)
    assert len(calls) == 2 * len(problem.weights)


def _declared_for_torch(case_id: str) -> bool:
    from keras_adaptive.backend import dispatch

    return BY_ID[case_id].cls in dispatch.TORCH


@pytest.mark.parametrize("case_id", [c for c in REPRESENTATIVES if _declared_for_torch(c)])
def test_weight_decay_on_the_torch_path_spares_excluded_weights(case_id):
    """On the torch path decoupled weight decay is part of the step (PyTorch's fused AdamW
    kernel for Adam, one in-place multiply otherwise): weights excluded from decay keep
    their own update, the others decay, as on the portable path."""
    case = BY_ID[case_id]
    problem = make_problem(steps=10)
    results = []
    for multi in (True, False):
        optimizer = case.make(multi_tensor=multi, weight_decay=0.05)
        variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(problem.weights)]
        optimizer.exclude_from_weight_decay(var_names=["w0"])
        for grads in problem.grads:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        results.append([np.asarray(keras.ops.convert_to_numpy(v)) for v in variables])
    for fast, portable in zip(*results):
        np.testing.assert_allclose(fast, portable, rtol=RTOL, atol=ATOL)
    # The exclusion matters: without it the first weight ends elsewhere.
    optimizer = case.make(multi_tensor=True, weight_decay=0.05)
    variables = [keras.Variable(w) for w in problem.weights]
    for grads in problem.grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    assert np.max(np.abs(np.asarray(keras.ops.convert_to_numpy(variables[0])) - results[0][0])) > 1e-4


def test_stateless_apply_leaves_the_step_count_it_is_given():
    """The torch path increments the step count in place on a plain step; under
    `stateless_apply` that would write into the caller's tensor. The new count must come back
    as the returned value, the given one untouched (as with Keras' own optimizers)."""
    import torch

    import keras_adaptive

    optimizer = keras_adaptive.SGD(learning_rate=0.1, momentum=0.9)
    variable = keras.Variable(np.ones(3, "float32"))
    optimizer.build([variable])
    given = [torch.tensor(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
    at = [v.path for v in optimizer.variables].index(optimizer.iterations.path)
    _, returned = optimizer.stateless_apply(given, [torch.ones(3)], [torch.ones(3)])
    assert int(given[at]) == 0 and int(returned[at]) == 1
