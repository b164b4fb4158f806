"""RMSProp: AdaGrad with a forgetting average, optionally centered and with momentum."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import EPSILON_PLACEMENTS, StepSize, cast, ema, maximum, rms_denominator, square
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_bool, check_choice, check_non_negative, check_unit_interval


@keras.saving.register_keras_serializable(package="keras_adaptive")
class RMSProp(AdaptiveOptimizer):
    """RMSProp with centering, momentum and epsilon placement as explicit choices.

    Update rule, for step t with gradient g (all state starts at 0):

        (1) r = rho * r + (1 - rho) * g^2
        (2) a = rho * a + (1 - rho) * g            (centered only)
        (3) d = max(r - a^2, 0) if centered, else d = r
        (4) u = g / sqrt(d + eps)                  (epsilon_placement="inside")
            u = g / (sqrt(d) + eps)                (epsilon_placement="outside")
        (5) b = mu * b + u                         (momentum mu > 0 only)
        (6) w = w - alpha * b if mu > 0, else w = w - alpha * u

    The step size (`effective_learning_rate`) is eta = alpha / sqrt(d + eps) (or
    alpha / (sqrt(d) + eps)), the factor of g in (4) and (6).

    | symbol | argument        |
    |--------|-----------------|
    | alpha  | `learning_rate` |
    | rho    | `rho`           |
    | mu     | `momentum`      |
    | eps    | `epsilon`       |

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 0.001.
        rho: decay of the averages, in [0, 1). Default 0.9.
        epsilon: eps >= 0. Default 1e-7.
        momentum: mu in [0, 1). Default 0.
        centered: divide by the estimated variance `r - a^2` instead of the raw second
            moment. Default False.
        epsilon_placement: "inside" or "outside" the square root. Default "inside".
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.RMSProp(learning_rate=1e-3, centered=True)

    Differences from its namesakes:
        `keras.optimizers.RMSprop` has the same defaults and epsilon inside, but keeps
        the learning rate inside the momentum buffer (same numbers at a constant rate).
        `torch.optim.RMSprop(lr, alpha=rho, eps, momentum, centered)` puts epsilon
        outside with eps=1e-8 and alpha=0.99: `RMSProp(rho=0.99, epsilon=1e-8,
        epsilon_placement="outside")` matches it, centered and momentum included.

    Reference: Tieleman and Hinton, Lecture 6.5 of "Neural Networks for Machine
    Learning" (2012); Graves, "Generating Sequences With Recurrent Neural Networks"
    (2013) for the centered form.
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        epsilon: float = 1e-7,
        momentum: float = 0.0,
        centered: bool = False,
        epsilon_placement: str = "inside",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_unit_interval("rho", rho)
        check_non_negative("epsilon", epsilon)
        check_unit_interval("momentum", momentum)
        check_bool("centered", centered)
        check_choice("epsilon_placement", epsilon_placement, EPSILON_PLACEMENTS)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon
        self.momentum = momentum
        self.centered = centered
        self.epsilon_placement = epsilon_placement

    def slot_names(self) -> tuple[str, ...]:
        names = ("second_moment",)
        if self.centered:
            names += ("first_moment",)
        if self.momentum > 0:
            names += ("momentum",)
        return names

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        (r,) = self.slots(variable, "second_moment")
        d = r
        if self.centered:
            (a,) = self.slots(variable, "first_moment")
            # The variance estimate r - a^2 is >= 0 in exact arithmetic, but rounds below 0
            # under steady gradients; clamp it so that sqrt(d) stays real.
            d = maximum(r - square(a), 0.0)  # (3)
        alpha = ops.cast(learning_rate, self.compute_dtype(variable))
        return StepSize(alpha, denominator=rms_denominator(d, self.epsilon, self.epsilon_placement))  # (4)

    def update_step(self, gradient, variable, learning_rate):
        g = cast(gradient, self.compute_dtype(variable))
        (r,) = self.slots(variable, "second_moment")
        self.assign(r, ema(r, square(g), self.rho))  # (1)
        if self.centered:
            (a,) = self.slots(variable, "first_moment")
            self.assign(a, ema(a, g, self.rho))  # (2)
        eta = self.step_size(variable, learning_rate)  # (3), (4)
        u = eta.per_weight(g)  # (4)
        if self.momentum > 0:
            (b,) = self.slots(variable, "momentum")
            self.assign(b, self.momentum * b + u)  # (5)
            u = b
        self.assign_sub(variable, eta.scale * u)  # (6)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rho": self.rho,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
            "centered": self.centered,
            "epsilon_placement": self.epsilon_placement,
        }
