"""AdaDelta: step sizes in the units of the weights, from two running averages."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import StepSize, cast, debias, ema, sqrt, square
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_non_negative, check_unit_interval


@keras.saving.register_keras_serializable(package="keras_adaptive")
class AdaDelta(AdaptiveOptimizer):
    """Zeiler's AdaDelta, optionally with an Adam-style first moment.

    Update rule, for step t with gradient g (all state starts at 0):

        (1) r = rho * r + (1 - rho) * g^2
        (2) m = mu * m + (1 - mu) * g;  h = m / (1 - mu^t)    (momentum mu > 0)
            h = g                                             (mu = 0)
        (3) delta = -sqrt(s + eps) / sqrt(r + eps) * h
        (4) s = rho * s + (1 - rho) * delta^2
        (5) w = w + alpha * delta

    The step size (`effective_learning_rate`) is eta = alpha * sqrt(s + eps) / sqrt(r + eps),
    the factor of h in (3) and (5).

    With `momentum=0` and `learning_rate=1.0` (the defaults) this is Algorithm 1 of
    Zeiler's paper exactly, which has no learning rate.

    | symbol | argument        |
    |--------|-----------------|
    | alpha  | `learning_rate` |
    | rho    | `rho`           |
    | mu     | `momentum`      |
    | eps    | `epsilon`       |

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 1.0.
        rho: decay of both averages, in [0, 1). Default 0.95.
        epsilon: eps >= 0. Default 1e-6.
        momentum: mu in [0, 1), the decay of a bias-corrected first moment used in place
            of the raw gradient. Default 0.
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.AdaDelta()                 # the paper's algorithm
        >>> opt = keras_adaptive.AdaDelta(momentum=0.9)     # with a first moment

    Differences from its namesakes:
        `keras.optimizers.Adadelta` has the same rule but `learning_rate=0.001` and
        `epsilon=1e-7` by default: `AdaDelta(learning_rate=0.001, epsilon=1e-7)` matches it.
        `torch.optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6)` has the same rule with rho=0.9:
        `AdaDelta(rho=0.9)` matches it. Neither has the momentum variant.

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (arXiv 1212.5701, 2012).
    """

    def __init__(
        self,
        learning_rate: Any = 1.0,
        rho: float = 0.95,
        epsilon: float = 1e-6,
        momentum: float = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_unit_interval("rho", rho)
        check_non_negative("epsilon", epsilon)
        check_unit_interval("momentum", momentum)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon
        self.momentum = momentum

    def slot_names(self) -> tuple[str, ...]:
        names = ("second_moment", "delta_second_moment")
        return names + ("first_moment",) if self.momentum > 0 else names

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        r, s = self.slots(variable, "second_moment", "delta_second_moment")
        alpha = ops.cast(learning_rate, self.compute_dtype(variable))
        # One root of the ratio: the same number to rounding, and XLA computes it once.
        return StepSize(alpha, factor=sqrt((s + self.epsilon) / (r + self.epsilon)))  # (3)

    def update_step(self, gradient, variable, learning_rate):
        dtype = self.compute_dtype(variable)
        g = cast(gradient, dtype)
        r, s = self.slots(variable, "second_moment", "delta_second_moment")
        self.assign(r, ema(r, square(g), self.rho))  # (1)
        h = g
        if self.momentum > 0:
            (m,) = self.slots(variable, "first_moment")
            self.assign(m, ema(m, g, self.momentum))  # (2)
            h = debias(m, self.momentum, self.step_count(), dtype)
        eta = self.step_size(variable, learning_rate)
        delta = -eta.per_weight(h)  # (3)
        self.assign(s, ema(s, square(delta), self.rho))  # (4)
        self.assign_add(variable, eta.scale * delta)  # (5)

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon, "momentum": self.momentum}
