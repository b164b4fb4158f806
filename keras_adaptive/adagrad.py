"""AdaGrad: per-weight learning rates from the sum of all squared gradients."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import EPSILON_PLACEMENTS, StepSize, cast, rms_denominator, square
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_choice, check_non_negative


@keras.saving.register_keras_serializable(package="keras_adaptive")
class AdaGrad(AdaptiveOptimizer):
    """AdaGrad with the epsilon placement as an explicit choice.

    Update rule, for step t with gradient g (accumulator r starts at r0):

        (1) r = r + g^2
        (2) eta = alpha / sqrt(r + eps)       (epsilon_placement="inside")
            eta = alpha / (sqrt(r) + eps)     (epsilon_placement="outside")
        (3) w = w - eta * g

    The step size eta (`effective_learning_rate`) only ever shrinks: AdaGrad suits
    sparse, convex problems and stalls on long non-convex runs.

    | symbol | argument                    |
    |--------|-----------------------------|
    | alpha  | `learning_rate`             |
    | r0     | `initial_accumulator_value` |
    | eps    | `epsilon`                   |

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 0.01.
        initial_accumulator_value: r0 >= 0. Default 0.
        epsilon: eps >= 0. Default 1e-7.
        epsilon_placement: "inside" or "outside" the square root. Default "inside".
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.AdaGrad(learning_rate=0.05)

    Differences from its namesakes:
        `keras.optimizers.Adagrad` starts the accumulator at 0.1 and puts epsilon inside:
        `AdaGrad(initial_accumulator_value=0.1)` matches it. `torch.optim.Adagrad`
        (lr_decay=0) puts epsilon outside with eps=1e-10:
        `AdaGrad(epsilon=1e-10, epsilon_placement="outside")` matches it.

    Reference: Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization" (JMLR 2011).
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        initial_accumulator_value: float = 0.0,
        epsilon: float = 1e-7,
        epsilon_placement: str = "inside",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_non_negative("initial_accumulator_value", initial_accumulator_value)
        check_non_negative("epsilon", epsilon)
        check_choice("epsilon_placement", epsilon_placement, EPSILON_PLACEMENTS)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.epsilon_placement = epsilon_placement

    def slot_names(self) -> tuple[str, ...]:
        return ("accumulator",)

    def slot_initializer(self, name: str) -> Any:
        return keras.initializers.Constant(self.initial_accumulator_value)

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        (r,) = self.slots(variable, "accumulator")
        alpha = ops.cast(learning_rate, self.compute_dtype(variable))
        return StepSize(alpha, denominator=rms_denominator(r, self.epsilon, self.epsilon_placement))  # (2)

    def update_step(self, gradient, variable, learning_rate):
        g = cast(gradient, self.compute_dtype(variable))
        (r,) = self.slots(variable, "accumulator")
        self.assign_add(r, square(g))  # (1)
        eta = self.step_size(variable, learning_rate)  # (2)
        self.assign_sub(variable, eta * g)  # (3)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
            "epsilon_placement": self.epsilon_placement,
        }
