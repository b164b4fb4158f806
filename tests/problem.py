"""A small optimization problem shared by the tests: weights and gradients of mixed magnitude.

Values are float32 (what the backends use) and handed to the NumPy references as exact
float64 copies, so the only difference between the two is arithmetic precision.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SHAPES = [(4, 3), (5,), (2, 3, 2)]


@dataclasses.dataclass
class Problem:
    weights: list  # float32 arrays
    grads: list  # grads[step][variable], float32 arrays


def make_problem(steps: int = 25, seed: int = 0, shapes=SHAPES) -> Problem:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype("float32") for s in shapes]
    # Each element's scale is 10^u with u uniform in [-3, 1]: gradients from 1e-3 to 10,
    # so that g^2 is far below epsilon for some weights and far above it for others.
    scales = [10.0 ** rng.uniform(-3, 1, size=s) for s in shapes]
    grads = [[(rng.normal(size=s) * scale).astype("float32") for s, scale in zip(shapes, scales)] for _ in range(steps)]
    return Problem(weights, grads)


def run_reference(case, problem: Problem, steps: int | None = None, lr_at=None):
    """Weights and slots after `steps` steps of the case's NumPy reference, in float64."""
    steps = len(problem.grads) if steps is None else steps
    weights = [w.astype("float64") for w in problem.weights]
    states = [{} for _ in weights]
    hyper = case.reference_kwargs()
    for t in range(1, steps + 1):
        lr = case.kwargs.get("learning_rate") if lr_at is None else lr_at(t - 1)
        for i, g in enumerate(problem.grads[t - 1]):
            weights[i], states[i] = case.reference(weights[i], g.astype("float64"), states[i], t, lr, **hyper)
    return weights, states


def run_keras(optimizer, problem: Problem, steps: int | None = None, dtype: str = "float32"):
    """Weights and slots (by name) after `steps` `optimizer.apply` calls, as NumPy arrays."""
    import keras

    steps = len(problem.grads) if steps is None else steps
    variables = [keras.Variable(w, dtype=dtype) for w in problem.weights]
    for t in range(steps):
        optimizer.apply([keras.ops.convert_to_tensor(g, dtype=dtype) for g in problem.grads[t]], variables)
    return [to_numpy(v) for v in variables], slots_of(optimizer, variables)


def slots_of(optimizer, variables) -> list:
    names = optimizer.slot_names()
    return [{n: to_numpy(s) for n, s in zip(names, optimizer.slots(v, *names))} for v in variables]


def to_numpy(x) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def assert_same_run(fast, portable, rtol: float, atol: float) -> None:
    """Two `run_keras` results (weights, slots by name) agree: every weight and every slot."""
    (fast_w, fast_s), (port_w, port_s) = fast, portable
    for i in range(len(port_w)):
        np.testing.assert_allclose(fast_w[i], port_w[i], rtol=rtol, atol=atol, err_msg=f"weight {i}")
        assert fast_s[i].keys() == port_s[i].keys()
        for name in port_s[i]:
            np.testing.assert_allclose(fast_s[i][name], port_s[i][name], rtol=rtol, atol=atol, err_msg=name)
