"""NumPy float64 references of each update rule: the golden numbers of the tests.

Written from the formulas in the issue and the papers, independently of keras_adaptive's
code (no shared helpers). Each `*_step(w, g, state, t, lr, **hyper)` takes the weight,
the gradient, the state dict (slot name -> array, missing = zeros), the step count t
(from 1) and the learning rate, and returns the new weight and state; slot names are
those of the optimizer under test, so slots are compared by name.
"""

from __future__ import annotations

import numpy as np


def _get(state, name, like, initial=0.0):
    return state.get(name, np.full_like(like, initial))


def _denominator(x, eps, placement):
    return np.sqrt(x + eps) if placement == "inside" else np.sqrt(x) + eps


def sgd_step(w, g, state, t, lr, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g, {}
    v = momentum * _get(state, "momentum", w) + g
    direction = g + momentum * v if nesterov else v
    return w - lr * direction, {"momentum": v}


def adagrad_step(w, g, state, t, lr, initial_accumulator_value=0.0, epsilon=1e-7, epsilon_placement="inside"):
    r = _get(state, "accumulator", w, initial_accumulator_value) + g * g
    return w - lr * g / _denominator(r, epsilon, epsilon_placement), {"accumulator": r}


def rmsprop_step(w, g, state, t, lr, rho=0.9, epsilon=1e-7, momentum=0.0, centered=False, epsilon_placement="inside"):
    new = {"second_moment": rho * _get(state, "second_moment", w) + (1 - rho) * g * g}
    d = new["second_moment"]
    if centered:
        new["first_moment"] = rho * _get(state, "first_moment", w) + (1 - rho) * g
        d = np.maximum(d - new["first_moment"] ** 2, 0.0)
    u = g / _denominator(d, epsilon, epsilon_placement)
    if momentum > 0:
        new["momentum"] = momentum * _get(state, "momentum", w) + u
        u = new["momentum"]
    return w - lr * u, new


def adadelta_step(w, g, state, t, lr, rho=0.95, epsilon=1e-6, momentum=0.0):
    r = rho * _get(state, "second_moment", w) + (1 - rho) * g * g
    new = {"second_moment": r}
    h = g
    if momentum > 0:
        new["first_moment"] = momentum * _get(state, "first_moment", w) + (1 - momentum) * g
        h = new["first_moment"] / (1 - momentum**t)
    s = _get(state, "delta_second_moment", w)
    delta = -np.sqrt(s + epsilon) / np.sqrt(r + epsilon) * h
    new["delta_second_moment"] = rho * s + (1 - rho) * delta * delta
    return w + lr * delta, new


def adam_step(
    w, g, state, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, bias_correction=True,
    epsilon_placement="outside", weight_decay=0.0,
):
    w = w - lr * weight_decay * w  # decoupled decay (AdamW), before the update
    m = beta_1 * _get(state, "first_moment", w) + (1 - beta_1) * g
    v = beta_2 * _get(state, "second_moment", w) + (1 - beta_2) * g * g
    new = {"first_moment": m, "second_moment": v}
    if amsgrad:
        v = new["max_second_moment"] = np.maximum(_get(state, "max_second_moment", w), v)
    if bias_correction:
        m, v = m / (1 - beta_1**t), v / (1 - beta_2**t)
    return w - lr * m / _denominator(v, epsilon, epsilon_placement), new


def adamw_step(w, g, state, t, lr, weight_decay=0.004, **hyper):
    return adam_step(w, g, state, t, lr, weight_decay=weight_decay, **hyper)


def nadam_step(w, g, state, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, momentum_decay=0.004):
    def mu(step):
        return beta_1 * (1 - 0.5 * 0.96 ** (momentum_decay * step))

    product = np.prod([mu(i) for i in range(1, t + 1)])  # recomputed from scratch: no carried state
    m = beta_1 * _get(state, "first_moment", w) + (1 - beta_1) * g
    v = beta_2 * _get(state, "second_moment", w) + (1 - beta_2) * g * g
    v_hat = v / (1 - beta_2**t)
    direction = (1 - mu(t)) / (1 - product) * g + mu(t + 1) / (1 - product * mu(t + 1)) * m
    return w - lr * direction / (np.sqrt(v_hat) + epsilon), {"first_moment": m, "second_moment": v}


def zeiler_adadelta(w, grads, rho, epsilon):
    """Algorithm 1 of Zeiler (2012), transcribed line by line, for the equivalence test."""
    e_g2 = np.zeros_like(w)
    e_dx2 = np.zeros_like(w)
    for g in grads:
        e_g2 = rho * e_g2 + (1 - rho) * g**2  # accumulate gradient
        rms_dx = np.sqrt(e_dx2 + epsilon)
        rms_g = np.sqrt(e_g2 + epsilon)
        dx = -(rms_dx / rms_g) * g  # compute update
        e_dx2 = rho * e_dx2 + (1 - rho) * dx**2  # accumulate updates
        w = w + dx  # apply update
    return w
