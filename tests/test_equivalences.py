"""Identities between members of the family that must hold."""

import numpy as np

import keras_adaptive as ka
from tests import reference as ref
from tests.problem import make_problem, run_keras

RTOL, ATOL = 2e-5, 2e-6


def test_adam_without_first_moment_is_bias_corrected_rmsprop_outside():
    """Adam(beta_1=0) against optax's RMSProp with bias correction and epsilon outside."""
    import jax.numpy as jnp
    import optax

    problem = make_problem(steps=25)
    got, _ = run_keras(ka.Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.95, epsilon=0.05), problem)
    rms = optax.rmsprop(0.01, decay=0.95, eps=0.05, eps_in_sqrt=False, bias_correction=True)
    params = [jnp.asarray(w) for w in problem.weights]
    state = rms.init(params)
    for grads in problem.grads:
        updates, state = rms.update([jnp.asarray(g) for g in grads], state, params)
        params = optax.apply_updates(params, updates)
    for g, w in zip(got, params):
        np.testing.assert_allclose(g, np.asarray(w), rtol=RTOL, atol=ATOL)


def test_adam_without_first_moment_or_bias_correction_is_rmsprop_outside():
    problem = make_problem(steps=25)
    adam, _ = run_keras(
        ka.Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.9, epsilon=0.05, bias_correction=False), problem
    )
    rms, _ = run_keras(ka.RMSProp(learning_rate=0.01, rho=0.9, epsilon=0.05, epsilon_placement="outside"), problem)
    for a, r in zip(adam, rms):
        np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-7)


def test_adamw_without_weight_decay_is_adam():
    problem = make_problem(steps=25)
    adamw, adamw_slots = run_keras(ka.AdamW(learning_rate=0.01, epsilon=0.05, weight_decay=0.0), problem)
    adam, adam_slots = run_keras(ka.Adam(learning_rate=0.01, epsilon=0.05), problem)
    for a, b in zip(adamw, adam):
        np.testing.assert_array_equal(a, b)
    assert adamw_slots[0].keys() == adam_slots[0].keys()


def test_adadelta_without_momentum_is_zeilers_algorithm():
    """Algorithm 1 of the paper (no learning rate): the defaults, and a sensitive epsilon."""
    problem = make_problem(steps=25)
    for kwargs in ({}, {"rho": 0.9, "epsilon": 0.01}):
        got, _ = run_keras(ka.AdaDelta(**kwargs), problem)
        rho, eps = kwargs.get("rho", 0.95), kwargs.get("epsilon", 1e-6)
        for i, w in enumerate(problem.weights):
            want = ref.zeiler_adadelta(w.astype("float64"), [g[i].astype("float64") for g in problem.grads], rho, eps)
            np.testing.assert_allclose(got[i], want, rtol=RTOL, atol=ATOL)
