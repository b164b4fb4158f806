"""Stochastic gradient descent with heavy-ball or Nesterov momentum."""

from __future__ import annotations

from typing import Any

import keras

from keras_adaptive.math import cast
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.validation import check_bool, check_unit_interval


@keras.saving.register_keras_serializable(package="keras_adaptive")
class SGD(AdaptiveOptimizer):
    """SGD with optional momentum, the learning rate applied after the buffer (PyTorch's form).

    Update rule, for step t with gradient g (momentum buffer v starts at 0):

        without momentum:
        (1) w = w - alpha * g
        with momentum mu > 0:
        (2) v = mu * v + g
        (3) w = w - alpha * v                    (nesterov=False)
            w = w - alpha * (g + mu * v)         (nesterov=True)

    | symbol | argument        |
    |--------|-----------------|
    | alpha  | `learning_rate` |
    | mu     | `momentum`      |

    Args:
        learning_rate: float > 0, a `LearningRateSchedule` or a callable. Default 0.01.
        momentum: mu in [0, 1). Default 0 (plain SGD).
        nesterov: use Nesterov's look-ahead. Needs `momentum > 0`.
        **kwargs: `multi_tensor` and Keras' base optimizer arguments, see `AdaptiveOptimizer`.

    Example:
        >>> opt = keras_adaptive.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)

    Differences from its namesakes:
        `torch.optim.SGD(lr, momentum, nesterov=...)` with `dampening=0` and
        `weight_decay=0` is the same algorithm. `keras.optimizers.SGD` keeps the
        learning rate inside the velocity (`v = mu*v - alpha*g; w += v`): the same numbers
        at a constant learning rate, different ones as soon as a schedule changes it.

    Reference: Polyak (1964); Sutskever et al., "On the importance of initialization and
    momentum in deep learning" (ICML 2013).
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_unit_interval("momentum", momentum)
        check_bool("nesterov", nesterov)
        if nesterov and momentum == 0:
            raise ValueError("Argument `nesterov` is True, which needs `momentum` in (0, 1); got momentum=0.")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.nesterov = nesterov

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum",) if self.momentum > 0 else ()

    def update_step(self, gradient, variable, learning_rate):
        g = cast(gradient, self.compute_dtype(variable))
        eta = self.step_size(variable, learning_rate)  # alpha
        if self.momentum == 0:
            self.assign_sub(variable, eta * g)  # (1)
            return
        (v,) = self.slots(variable, "momentum")
        self.assign(v, self.momentum * v + g)  # (2)
        if self.nesterov:
            self.assign_sub(variable, eta * (g + self.momentum * v))  # (3)
        else:
            self.assign_sub(variable, eta * v)  # (3)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
