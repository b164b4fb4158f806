"""Nadam: Adam with Nesterov momentum and Dozat's momentum schedule."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import StepSize, cast, debias, ema, nadam_momentum, rms_denominator, square
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_non_negative, check_unit_interval


@keras.saving.register_keras_serializable(package="keras_adaptive")
class Nadam(AdaptiveOptimizer):
    """Dozat's Nadam, with the momentum schedule of `torch.optim.NAdam`.

    Update rule, for step t with gradient g (m, v start at 0; the product P_0 = 1):

        (0) mu_t = beta_1 * (1 - 0.5 * 0.96^(psi * t));  P_t = P_(t-1) * mu_t
        (1) m = beta_1 * m + (1 - beta_1) * g
        (2) v = beta_2 * v + (1 - beta_2) * g^2
        (3) v_hat = v / (1 - beta_2^t)
        (4) w = w - alpha * ((1 - mu_t) / (1 - P_t) * g
                             + mu_(t+1) / (1 - P_t * mu_(t+1)) * m) / (sqrt(v_hat) + eps)

    The step size (`effective_learning_rate`) is eta = alpha / (sqrt(v_hat) + eps), the
    factor of the Nesterov moment (the sum in parentheses) in (4). P is kept as P_(t-1)
    during the step and stored as P_t after every weight's update (`advance_step_state`).

    | symbol | argument         |
    |--------|------------------|
    | alpha  | `learning_rate`  |
    | beta_1 | `beta_1`         |
    | beta_2 | `beta_2`         |
    | psi    | `momentum_decay` |
    | eps    | `epsilon`        |

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 0.001.
        beta_1, beta_2: moment decays in [0, 1). Defaults 0.9, 0.999.
        epsilon: eps >= 0, added outside the root. Default 1e-7.
        momentum_decay: psi > 0 in the schedule. Default 0.004 (Dozat, PyTorch).
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.Nadam(learning_rate=2e-3)

    Differences from its namesakes:
        `torch.optim.NAdam(lr, betas, eps=1e-8, momentum_decay=4e-3)` is the same
        algorithm: `Nadam(epsilon=1e-8)` matches it. `keras.optimizers.Nadam` (3.15) uses
        `0.96^t` in the schedule, i.e. `momentum_decay=1.0`, which makes mu_t reach beta_1
        within a few dozen steps. optax's `nadam` has no schedule (`mu_t = beta_1`).

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR workshop 2016).
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        momentum_decay: float = 0.004,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_unit_interval("beta_1", beta_1)
        check_unit_interval("beta_2", beta_2)
        check_non_negative("epsilon", epsilon)
        check_non_negative("momentum_decay", momentum_decay)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.momentum_decay = momentum_decay

    def slot_names(self) -> tuple[str, ...]:
        return ("first_moment", "second_moment")

    def build_step_state(self) -> None:
        # One scalar for the whole model; float32 so that it does not round to 1 in float16.
        self._mu_product = self.add_variable((), initializer="ones", dtype="float32", name="mu_product")

    def momentum_product(self, t: Any) -> Any:
        """(0) P_t = P_(t-1) * mu_t, from the stored P_(t-1), in float32."""
        return ops.convert_to_tensor(self._mu_product) * nadam_momentum(self.beta_1, t, self.momentum_decay)

    def advance_step_state(self) -> None:
        self.assign(self._mu_product, self.momentum_product(self.step_count()))  # (0), for the next step

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        dtype = self.compute_dtype(variable)
        (v,) = self.slots(variable, "second_moment")
        v_hat = debias(v, self.beta_2, self.step_count(), dtype)  # (3)
        return StepSize(ops.cast(learning_rate, dtype), denominator=rms_denominator(v_hat, self.epsilon, "outside"))

    def update_step(self, gradient, variable, learning_rate):
        dtype = self.compute_dtype(variable)
        g = cast(gradient, dtype)
        t = self.step_count()
        mu = nadam_momentum(self.beta_1, t, self.momentum_decay)
        mu_next = nadam_momentum(self.beta_1, t + 1, self.momentum_decay)
        product = self.momentum_product(t)  # (0)
        gradient_weight = ops.cast((1 - mu) / (1 - product), dtype)
        moment_weight = ops.cast(mu_next / (1 - product * mu_next), dtype)
        m, v = self.slots(variable, "first_moment", "second_moment")
        self.assign(m, ema(m, g, self.beta_1))  # (1)
        self.assign(v, ema(v, square(g), self.beta_2))  # (2)
        eta = self.step_size(variable, learning_rate)  # (3)
        nesterov_moment = gradient_weight * g + moment_weight * m
        self.assign_sub(variable, eta * nesterov_moment)  # (4)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "momentum_decay": self.momentum_decay,
        }
