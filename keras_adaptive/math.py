"""The pieces the adaptive-optimizer family shares, each named after the math.

Every function takes either Keras tensors/variables or a `MultiTensor` (a list of
torch tensors that does arithmetic with one `torch._foreach_*` call per operation,
see `keras_adaptive.backend.torch_multi_tensor`). Writing the update rules with
these functions and Python operators is what lets one `update_step` serve both the
portable per-variable path and PyTorch's multi-tensor path: the math lives once.
"""

from __future__ import annotations

import math as pymath
from typing import Any

from keras import ops

EPSILON_PLACEMENTS = ("inside", "outside")


def _is_multi_tensor(x: Any) -> bool:
    return getattr(x, "is_multi_tensor", False)


def cast(x, dtype: str):
    return x.cast(dtype) if _is_multi_tensor(x) else ops.cast(x, dtype)


def sqrt(x):
    return x.sqrt() if _is_multi_tensor(x) else ops.sqrt(x)


def square(x):
    return x.square() if _is_multi_tensor(x) else ops.square(x)


def maximum(x, y):
    return x.maximum(y) if _is_multi_tensor(x) else ops.maximum(x, y)


def ema(average, value, decay):
    """Exponential moving average: `decay * average + (1 - decay) * value`."""
    return decay * average + (1.0 - decay) * value


def bias_correction(beta: float, step):
    """`1 - beta^t`: the share of an EMA started at zero that is real signal after t steps.

    Computed as `-expm1(t * log(beta))`: `1 - beta^t` in float32 loses digits to
    cancellation when beta^t is near 1 (1e-5 relative at beta=0.999, t=1).
    """
    if beta == 0:
        return ops.ones_like(step)
    return -ops.expm1(step * pymath.log(beta))


def debias_factor(beta: float, step, dtype: str):
    """`1 / (1 - beta^t)` as a scalar of `dtype`: what `debias` multiplies by."""
    return ops.cast(1.0 / bias_correction(beta, step), dtype)


def debias(average, beta: float, step, dtype: str):
    """`average / (1 - beta^t)`: an EMA started at zero, bias-corrected.

    Multiplied by the correction's reciprocal, a scalar: one division per step rather than
    one per weight. TensorFlow's XLA keeps a division by a broadcast scalar element-wise (JAX's
    turns it into this product itself): Adam's two corrections as divisions made its 16M-weight
    TensorFlow step 6-9% slower than Keras' own Adam, which folds them into the learning rate."""
    return average * debias_factor(beta, step, dtype)


class StepSize:
    """A per-weight step size `eta = scale * factor / denominator`: a scalar (the learning rate
    and whatever scalar correction the rule has) times a per-weight part, either factor or
    denominator or none being absent (1).

    Each optimizer writes its `eta` once (`AdaptiveOptimizer.step_size`): its `update_step`
    applies it to the update direction d, `eta * d`, and `effective_learning_rate` returns
    `eta.value()`. `eta * d` is evaluated as `scale * (d * factor / denominator)`, the scalar
    last: on PyTorch's multi-tensor path that product stays lazy and is folded into the write
    of the weight (`w.add_(u, alpha=-scale)`), and it divides by the denominator rather than
    multiplying by a reciprocal (one pass fewer, and the rounding of `d / denominator`).
    """

    __slots__ = ("scale", "factor", "denominator")

    def __init__(self, scale: Any, factor: Any = None, denominator: Any = None) -> None:
        self.scale = scale
        self.factor = factor
        self.denominator = denominator

    def per_weight(self, direction: Any) -> Any:
        """`direction * factor / denominator`: `eta * direction` without the scalar."""
        if self.factor is not None:
            direction = self.factor * direction
        return direction if self.denominator is None else direction / self.denominator

    def __mul__(self, direction: Any) -> Any:
        """`eta * direction`."""
        unscaled = self.per_weight(direction)  # named: the product below stays lazy on PyTorch's path
        return self.scale * unscaled

    def value(self) -> Any:
        """`eta` itself: the scalar where it has no per-weight part."""
        eta = self.scale if self.factor is None else self.scale * self.factor
        return eta if self.denominator is None else eta / self.denominator


def rms_denominator(second_moment, epsilon: float, placement: str):
    """`sqrt(v + eps)` ("inside", Keras' RMSprop and AdaGrad) or `sqrt(v) + eps` ("outside", PyTorch, Adam's paper)."""
    if placement == "inside":
        return sqrt(second_moment + epsilon)
    return sqrt(second_moment) + epsilon


def nadam_momentum(beta_1: float, step, momentum_decay: float):
    """Dozat's momentum schedule `mu_t = beta_1 * (1 - 0.5 * 0.96^(momentum_decay * t))`."""
    return beta_1 * (1.0 - 0.5 * ops.power(ops.cast(0.96, step.dtype), step * momentum_decay))
