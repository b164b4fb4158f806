"""Learning-rate schedules: Adam's bias correction written as a schedule.

Adam divides its moments by `1 - beta^t`. Because `m_hat / sqrt(v_hat)` equals
`m / sqrt(v)` times `sqrt(1 - beta_2^t) / (1 - beta_1^t)`, bias correction is a
learning-rate schedule in disguise (exactly so when epsilon is 0):

    rho(t) = sqrt(1 - beta_2^t) / (1 - beta_1^t),   t = 1, 2, ...

With (0.9, 0.999) rho is 0.32 at t=1, dips to 0.15 near t=12 and climbs to 1 over
a few thousand steps: a warmup. With (0.95, 0.95) it starts at 4.47 and falls to 1
within ~100 steps: an early boost. `BiasCorrection` makes this schedule explicit, so
that `Adam(bias_correction=False, learning_rate=BiasCorrection(lr))` is Adam.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.math import bias_correction
from keras_adaptive.validation import check_learning_rate, check_unit_interval

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def bias_correction_factor(t, beta_1: float = 0.9, beta_2: float = 0.999):
    """`rho(t) = sqrt(1 - beta_2^t) / (1 - beta_1^t)` for update number `t` (counting from 1), as float32."""
    t = ops.cast(t, "float32")
    return ops.sqrt(bias_correction(beta_2, t)) / bias_correction(beta_1, t)


@keras.saving.register_keras_serializable(package="keras_adaptive")
class BiasCorrection(LearningRateSchedule):
    """A base learning rate times Adam's bias-correction factor.

        lr(step) = base(step) * sqrt(1 - beta_2^(step + 1)) / (1 - beta_1^(step + 1))

    Keras calls a schedule with `optimizer.iterations` *before* the update, counting
    from 0, while the update it sets the rate for is number `t = step + 1` in Adam's
    notation; hence the `+ 1`. A schedule given as `learning_rate` is evaluated at the
    same `step` Keras passes, so wrapping a warmup keeps its own timing.

    `keras_adaptive.Adam(bias_correction=False, epsilon=0, learning_rate=BiasCorrection(lr))`
    takes the same steps as `keras_adaptive.Adam(epsilon=0, learning_rate=lr)`, up to
    float32 rounding. With epsilon > 0 they differ: bias-corrected Adam's epsilon acts
    as `eps * sqrt(1 - beta_2^t)` in the uncorrected form (small early on), so the
    scheduled form damps early steps of tiny-gradient weights more.

    Args:
        learning_rate: the base rate: a float > 0 or another `LearningRateSchedule`
            (for example a warmup or a cosine decay). Default 0.001.
        beta_1: Adam's first-moment decay, in [0, 1). Default 0.9.
        beta_2: Adam's second-moment decay, in [0, 1). Default 0.999.
        name: optional name.

    Example:
        >>> lr = keras_adaptive.schedules.BiasCorrection(1e-3, beta_1=0.9, beta_2=0.999)
        >>> opt = keras_adaptive.Adam(learning_rate=lr, bias_correction=False)

    Reference: Laing and Orvieto, "Simplifying Adam: Bias Correction Debunked"
    (arXiv 2511.20516, 2025).
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(learning_rate, LearningRateSchedule):
            if callable(learning_rate):
                raise ValueError(
                    "Argument `learning_rate` must be a positive float or a LearningRateSchedule, got the "
                    f"callable {learning_rate!r}, which could not be serialized."
                )
            check_learning_rate(learning_rate)
            learning_rate = float(learning_rate)
        check_unit_interval("beta_1", beta_1)
        check_unit_interval("beta_2", beta_2)
        self.learning_rate = learning_rate
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.name = name

    def factor(self, step):
        """The bias-correction factor applied at Keras' 0-based `step` (update `t = step + 1`)."""
        return bias_correction_factor(ops.cast(step, "float32") + 1.0, self.beta_1, self.beta_2)

    def __call__(self, step):
        base = self.learning_rate
        if isinstance(base, LearningRateSchedule):
            base = ops.cast(base(step), "float32")
        return base * self.factor(step)

    def get_config(self) -> dict:
        learning_rate = self.learning_rate
        if isinstance(learning_rate, LearningRateSchedule):
            learning_rate = keras.optimizers.schedules.serialize(learning_rate)
        return {"learning_rate": learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> BiasCorrection:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(config["learning_rate"])
        return cls(**config)
