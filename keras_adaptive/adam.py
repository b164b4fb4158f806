"""Adam (Algorithm 1 of Kingma and Ba), AMSGrad, Adam without bias correction, and AdamW."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import EPSILON_PLACEMENTS, StepSize, cast, debias_factor, ema, maximum, rms_denominator, square
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_bool, check_choice, check_non_negative, check_unit_interval


@keras.saving.register_keras_serializable(package="keras_adaptive")
class Adam(AdaptiveOptimizer):
    """Adam as in the paper's Algorithm 1, with AMSGrad and bias correction as choices.

    Update rule, for step t with gradient g (all state starts at 0):

        (1) m = beta_1 * m + (1 - beta_1) * g
        (2) v = beta_2 * v + (1 - beta_2) * g^2
        (3) v_max = max(v_max, v), used as v from here on   (amsgrad=True only)
        (4) m_hat = m / (1 - beta_1^t), v_hat = v / (1 - beta_2^t)   (bias_correction=True)
            m_hat = m,                  v_hat = v                    (bias_correction=False)
        (5) w = w - alpha * m_hat / (sqrt(v_hat) + eps)     (epsilon_placement="outside")
            w = w - alpha * m_hat / sqrt(v_hat + eps)       (epsilon_placement="inside")

    The step size (`effective_learning_rate`) is the factor of m in (5):
    eta = alpha / (1 - beta_1^t) / (sqrt(v_hat) + eps) (without bias correction: alpha / ...).

    | symbol | argument        |
    |--------|-----------------|
    | alpha  | `learning_rate` |
    | beta_1 | `beta_1`        |
    | beta_2 | `beta_2`        |
    | eps    | `epsilon`       |

    Bias correction acts like a learning-rate schedule `sqrt(1 - beta_2^t) / (1 - beta_1^t)`
    (exactly so when eps = 0): a warmup for the default betas.

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 0.001.
        beta_1: decay of the first moment, in [0, 1). Default 0.9.
        beta_2: decay of the second moment, in [0, 1). Default 0.999.
        epsilon: eps >= 0. Default 1e-7.
        amsgrad: divide by the running maximum of v (Reddi et al.). Default False.
        bias_correction: divide the moments by `1 - beta^t`. Default True.
        epsilon_placement: "outside" (the paper, PyTorch) or "inside" the square root.
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.Adam(learning_rate=3e-4, amsgrad=True)
        >>> simplified = keras_adaptive.Adam(bias_correction=False)

    Differences from its namesakes:
        `keras.optimizers.Adam` uses the "epsilon hat" form
        `alpha * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + eps)`, which equals
        this one only when eps = 0 (and its AMSGrad takes the maximum of the uncorrected v).
        `torch.optim.Adam(lr, betas, eps=1e-8, amsgrad)` with `weight_decay=0` is the same
        algorithm: `Adam(epsilon=1e-8)` matches it. PyTorch's `weight_decay` on Adam is an
        L2 term added to the gradient; here `weight_decay` is Keras' decoupled decay.

    References: Kingma and Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015);
    Reddi, Kale and Kumar, "On the Convergence of Adam and Beyond" (ICLR 2018); Laing and
    Orvieto, "Simplifying Adam: Bias Correction Debunked" (arXiv 2511.20516, 2025).
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        bias_correction: bool = True,
        epsilon_placement: str = "outside",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_unit_interval("beta_1", beta_1)
        check_unit_interval("beta_2", beta_2)
        check_non_negative("epsilon", epsilon)
        check_bool("amsgrad", amsgrad)
        check_bool("bias_correction", bias_correction)
        check_choice("epsilon_placement", epsilon_placement, EPSILON_PLACEMENTS)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        self.bias_correction = bias_correction
        self.epsilon_placement = epsilon_placement

    def slot_names(self) -> tuple[str, ...]:
        names = ("first_moment", "second_moment")
        return names + ("max_second_moment",) if self.amsgrad else names

    def step_scalars(self, learning_rate: Any, dtype: str) -> tuple:
        """`(alpha / (1 - beta_1^t), 1 / (1 - beta_2^t))` as scalars of `dtype`, the scalars of (4)
        and (5); `(alpha, None)` without bias correction. Shared with the native JAX kernel."""
        alpha = ops.cast(learning_rate, dtype)
        if not self.bias_correction:
            return alpha, None
        t = self.step_count()
        return alpha * debias_factor(self.beta_1, t, dtype), debias_factor(self.beta_2, t, dtype)

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        (v,) = self.slots(variable, "max_second_moment" if self.amsgrad else "second_moment")
        alpha_hat, c_2 = self.step_scalars(
            learning_rate, self.compute_dtype(variable)
        )  # (4): m_hat's 1 / (1 - beta_1^t)
        v_hat = v if c_2 is None else v * c_2  # (4)
        return StepSize(alpha_hat, denominator=rms_denominator(v_hat, self.epsilon, self.epsilon_placement))  # (5)

    def update_step(self, gradient, variable, learning_rate):
        g = cast(gradient, self.compute_dtype(variable))
        m, v = self.slots(variable, "first_moment", "second_moment")
        self.assign(m, ema(m, g, self.beta_1))  # (1)
        self.assign(v, ema(v, square(g), self.beta_2))  # (2)
        if self.amsgrad:
            (v_max,) = self.slots(variable, "max_second_moment")
            self.assign(v_max, maximum(v_max, v))  # (3)
        eta = self.step_size(variable, learning_rate)  # (4)
        self.assign_sub(variable, eta * m)  # (5)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
            "bias_correction": self.bias_correction,
            "epsilon_placement": self.epsilon_placement,
        }


@keras.saving.register_keras_serializable(package="keras_adaptive")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), on by default.

    Update rule: first `(0) w = w - alpha * lambda * w`, with lambda = `weight_decay`,
    then steps (1)-(5) of `Adam`. The decay is Keras' base-optimizer weight decay,
    which is exactly this; `AdamW(weight_decay=0)` is `Adam`.

    Args:
        weight_decay: lambda >= 0. Default 0.004 (Keras' default; PyTorch's is 0.01).
        Others as `Adam`.

    Differences from its namesakes:
        `torch.optim.AdamW(lr, betas, eps=1e-8, weight_decay)` is the same algorithm:
        `AdamW(epsilon=1e-8, weight_decay=0.01)` matches it. `keras.optimizers.AdamW`
        differs as `keras.optimizers.Adam` does (the epsilon-hat form).

    Reference: Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
    """

    def __init__(
        self, learning_rate: Any = 0.001, weight_decay: float = 0.004, name: str | None = None, **kwargs: Any
    ) -> None:
        # Adam treats a missing decay as none; AdamW without its decay is a mistake, not Adam.
        check_non_negative("weight_decay", weight_decay)
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
