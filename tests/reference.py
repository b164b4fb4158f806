"""NumPy float64 references of each update rule: the golden numbers of the tests.

Written from the formulas in the issue and the papers, independently of keras_adaptive's
code (no shared helpers). Each `*_step(w, g, state, t, lr, **hyper)` takes the weight,
the gradient, the state dict (slot name -> array, missing = zeros), the step count t
(from 1) and the learning rate, and returns the new weight and state; slot names are
those of the optimizer under test, so slots are compared by name.

Each `*_effective_lr(w, state, t, lr, **hyper)` is the optimizer's step size from the
state after t - 1 steps, for update number t: the per-weight factor that multiplies the
update direction (the gradient, the momentum or first moment, Nadam's Nesterov moment,
AdaDelta's h), read off the rule as its paper and docstring write it. `EFFECTIVE_LR` maps
each step function to it.
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
    w,
    g,
    state,
    t,
    lr,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-7,
    amsgrad=False,
    bias_correction=True,
    epsilon_placement="outside",
    weight_decay=0.0,
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


def sgd_effective_lr(w, state, t, lr, momentum=0.0, nesterov=False):
    return np.full_like(w, lr)  # w - lr * (g, v or g + mu v)


def adagrad_effective_lr(w, state, t, lr, initial_accumulator_value=0.0, epsilon=1e-7, epsilon_placement="inside"):
    r = _get(state, "accumulator", w, initial_accumulator_value)
    return lr / _denominator(r, epsilon, epsilon_placement)


def rmsprop_effective_lr(
    w, state, t, lr, rho=0.9, epsilon=1e-7, momentum=0.0, centered=False, epsilon_placement="inside"
):
    d = _get(state, "second_moment", w)
    if centered:
        d = np.maximum(d - _get(state, "first_moment", w) ** 2, 0.0)
    return lr / _denominator(d, epsilon, epsilon_placement)  # the factor of g in lr * g / denominator


def adadelta_effective_lr(w, state, t, lr, rho=0.95, epsilon=1e-6, momentum=0.0):
    rms_delta = np.sqrt(_get(state, "delta_second_moment", w) + epsilon)
    rms_g = np.sqrt(_get(state, "second_moment", w) + epsilon)
    return lr * rms_delta / rms_g  # delta = -(RMS[dx] / RMS[g]) * h, w + lr * delta


def adam_effective_lr(
    w,
    state,
    t,
    lr,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-7,
    amsgrad=False,
    bias_correction=True,
    epsilon_placement="outside",
    weight_decay=0.0,
):
    v = _get(state, "max_second_moment" if amsgrad else "second_moment", w)
    if not bias_correction:
        return lr / _denominator(v, epsilon, epsilon_placement)
    # lr * m_hat / denominator(v_hat) with m_hat = m / (1 - beta_1^t): the factor of m.
    return lr / (1 - beta_1**t) / _denominator(v / (1 - beta_2**t), epsilon, epsilon_placement)


def adamw_effective_lr(w, state, t, lr, weight_decay=0.004, **hyper):
    return adam_effective_lr(w, state, t, lr, **hyper)


def nadam_effective_lr(w, state, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, momentum_decay=0.004):
    v_hat = _get(state, "second_moment", w) / (1 - beta_2**t)
    return lr / (np.sqrt(v_hat) + epsilon)  # the factor of the Nesterov moment


EFFECTIVE_LR = {
    sgd_step: sgd_effective_lr,
    adagrad_step: adagrad_effective_lr,
    rmsprop_step: rmsprop_effective_lr,
    adadelta_step: adadelta_effective_lr,
    adam_step: adam_effective_lr,
    adamw_step: adamw_effective_lr,
    nadam_step: nadam_effective_lr,
}


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
