"""Each case configured with another framework's conventions matches that framework's optimizer.

torch.optim and optax run in float32 on the CPU, in this process, whatever the Keras backend;
Keras' built-ins run on the backend under test. Tolerances are float32 rounding over 25 steps.
"""

import numpy as np
import pytest

from tests.cases import CASES
from tests.problem import make_problem, run_keras

RTOL, ATOL = 2e-5, 2e-6


def _ids(cases):
    return [c.id for c in cases]


def run_torch(case, problem):
    import torch

    params = [torch.tensor(w, requires_grad=True) for w in problem.weights]
    name, kwargs = case.torch
    optimizer = getattr(torch.optim, name)(params, **kwargs, foreach=False)
    for grads in problem.grads:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        optimizer.step()
    return [p.detach().numpy().astype("float64") for p in params]


def run_optax(case, problem):
    import jax.numpy as jnp
    import optax

    transform = case.optax()
    params = [jnp.asarray(w) for w in problem.weights]
    state = transform.init(params)
    for grads in problem.grads:
        updates, state = transform.update([jnp.asarray(g) for g in grads], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p, dtype="float64") for p in params]


TORCH_CASES = [c for c in CASES if c.torch]
OPTAX_CASES = [c for c in CASES if c.optax]
KERAS_CASES = [c for c in CASES if c.keras]


def _assert_close(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"weight {i}")


@pytest.mark.parametrize("case", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_matches_torch_optim(case):
    problem = make_problem(steps=25)
    got, _ = run_keras(case.make(), problem)
    _assert_close(got, run_torch(case, problem))


@pytest.mark.parametrize("case", OPTAX_CASES, ids=_ids(OPTAX_CASES))
def test_matches_optax(case):
    problem = make_problem(steps=25)
    got, _ = run_keras(case.make(), problem)
    _assert_close(got, run_optax(case, problem))


@pytest.mark.parametrize("case", KERAS_CASES, ids=_ids(KERAS_CASES))
def test_matches_keras_builtin(case):
    problem = make_problem(steps=25)
    got, _ = run_keras(case.make(), problem)
    _assert_close(got, _run_builtin(case.keras(), problem))


def _run_builtin(optimizer, problem):
    import keras

    from tests.problem import to_numpy

    variables = [keras.Variable(w) for w in problem.weights]
    for grads in problem.grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    return [to_numpy(v) for v in variables]


def test_every_pytorch_namesake_is_covered():
    """SGD, Adagrad, RMSprop (centered, momentum), Adadelta, Adam (AMSGrad), AdamW, NAdam."""
    names = {c.torch[0] for c in TORCH_CASES}
    assert names == {"SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam"}
    rms = [c.torch[1] for c in TORCH_CASES if c.torch[0] == "RMSprop"]
    assert any(k.get("centered") and k.get("momentum") for k in rms)
    assert any(c.torch[1].get("amsgrad") for c in TORCH_CASES if c.torch[0] == "Adam")
