"""`AdaptiveOptimizer`: the plumbing every optimizer of the family shares.

It names each optimizer's per-weight state ("slots"), makes it in one call, hands it
to `update_step`, validates Keras' base arguments, and on the torch backend sends the
whole step through PyTorch's multi-tensor operations. Subclasses hold only their math.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_adaptive.validation import check_learning_rate, check_non_negative


def _dense(gradient: Any) -> Any:
    """Sparse gradients (TensorFlow's IndexedSlices, JAX's BCOO) as dense tensors.

    Every row's moments decay at each step, so the update is dense anyway; and the
    element-wise math must see each row's gradient summed over repeated indices
    (square of the sum, not sum of the squares), which the dense form guarantees.
    """
    if type(gradient).__name__ == "IndexedSlices":
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    if hasattr(gradient, "todense"):
        return gradient.todense()
    return gradient


class AdaptiveOptimizer(keras.optimizers.Optimizer):
    """Base class of the keras_adaptive optimizers.

    A subclass declares its state with `slot_names()` (and `slot_initializer()` where a
    slot does not start at zero), and writes `update_step` with Python operators and the
    helpers of `keras_adaptive.math`, reading its state with `self.slots(variable, ...)`.

    Args:
        multi_tensor: on the torch backend, update all variables of one dtype and device
            at once with `torch._foreach_*` operations (default). `False` runs the
            portable per-variable `update_step`, as on the other backends. Ignored on
            TensorFlow and JAX, where the compiler fuses the update.
        **kwargs: Keras' base optimizer arguments (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`, `name`).
    """

    def __init__(self, learning_rate: Any, multi_tensor: bool = True, **kwargs: Any) -> None:
        check_learning_rate(learning_rate)
        if kwargs.get("weight_decay") is not None:
            check_non_negative("weight_decay", kwargs["weight_decay"])
        for name in ("clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor"):
            if kwargs.get(name) is not None:
                check_non_negative(name, kwargs[name])
        steps = kwargs.get("gradient_accumulation_steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
            raise ValueError(
                f"Argument `gradient_accumulation_steps` must be None or an integer >= 2, got {steps!r}."
            )
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.multi_tensor = bool(multi_tensor)

    # --- state -------------------------------------------------------------------

    def slot_names(self) -> tuple[str, ...]:
        """Names of the per-weight state variables, in the order they are saved."""
        return ()

    def slot_initializer(self, name: str) -> Any:
        return "zeros"

    def build(self, var_list: list) -> None:
        if self.built:
            return
        super().build(var_list)
        names = list(self.slot_names())
        slots = ()
        if names:
            slots = self.add_optimizer_variables(var_list, names, [self.slot_initializer(n) for n in names])
        self._slot_variables = dict(zip(names, slots))

    def slots(self, variable: Any, *names: str) -> list:
        """The state named `names` belonging to `variable` (a model variable, or a
        `MultiTensor` of them on the torch fast path)."""
        if getattr(variable, "is_multi_tensor", False):
            return [variable.gather([self._slot_variables[n][i] for i in variable.indices]) for n in names]
        index = self._get_variable_index(variable)
        return [self._slot_variables[n][index] for n in names]

    def step_count(self):
        """`t` as float32: this update's number, counting from 1 (accumulated micro-steps
        excluded). Kept in float32 because float16 cannot count past 2048 or resolve
        `0.999^t`; cast what is computed from it to the weights' dtype."""
        return ops.cast(self.iterations + 1, "float32")

    # --- monitoring ----------------------------------------------------------------

    def effective_learning_rate(self, variable: Any):
        """The per-weight step size this optimizer would apply next, as a tensor shaped like `variable`.

        It is the factor that multiplies the update direction (the gradient, or the
        momentum/first moment): `alpha` for SGD, `alpha / sqrt(r + eps)` for AdaGrad,
        `alpha / (1 - beta_1^t) / (sqrt(v_hat) + eps)` for Adam, and so on. Read from the
        optimizer's current state; call it after at least one step.
        """
        return ops.full(variable.shape, ops.cast(self.learning_rate, variable.dtype))

    # --- dispatch ------------------------------------------------------------------

    def _backend_update_step(self, grads: list, trainable_variables: list, learning_rate: Any) -> None:
        if keras.backend.backend() == "torch" and self.multi_tensor:
            from keras_adaptive.backend import torch_multi_tensor

            torch_multi_tensor.update(self, grads, trainable_variables, learning_rate)
            return
        super()._backend_update_step([_dense(g) for g in grads], trainable_variables, learning_rate)

    def get_config(self) -> dict:
        config = super().get_config()
        config["multi_tensor"] = self.multi_tensor
        return config
