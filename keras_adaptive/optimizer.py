"""`AdaptiveOptimizer`: the plumbing every optimizer of the family shares.

It names each optimizer's per-weight state ("slots"), makes it in one call, hands it
to `update_step`, validates Keras' base arguments, and sends the step to a backend fast
path where one exists: PyTorch's multi-tensor and fused kernels on torch, a native Adam
pass on JAX's CPU backend. Subclasses hold only their math.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import keras
import numpy as np
from keras import backend, ops

from keras_adaptive._compat import in_stateless_scope
from keras_adaptive.backend import dispatch
from keras_adaptive.backend.ops import dense, sample
from keras_adaptive.math import StepSize
from keras_adaptive.validation import check_learning_rate, check_non_negative

HALF_PRECISION = ("float16", "bfloat16")

# Saved beside the optimizer's variables ("0", "1", ...): which slots they are, so that a
# checkpoint of another slot layout is refused instead of loaded into the wrong slots.
STATE_LAYOUT_KEY = "keras_adaptive_state_layout"


def _as_dtype_of(variable: Any, value: Any) -> Any:
    dtype = getattr(value, "dtype", None)
    if dtype is None or getattr(value, "is_multi_tensor", False):
        return value  # a Python number, or a MultiTensor (which casts on assignment)
    if backend.standardize_dtype(dtype) == backend.standardize_dtype(variable.dtype):
        return value
    return ops.cast(value, variable.dtype)


def _shape(gradient: Any) -> tuple:
    """A gradient's shape as a tuple. A TensorFlow IndexedSlices may hold its dense shape as a
    Python tuple (Keras' own sparse tests build them so), which its `.shape` cannot read."""
    dense_shape = getattr(gradient, "dense_shape", None)
    if isinstance(dense_shape, (tuple, list)):
        return tuple(dense_shape)
    return tuple(gradient.shape)


class _Sampled:
    """Stands for some weights of several variables, flattened and concatenated, in
    `effective_learning_rate`: `slots()` gathers their state the same way, and the
    element-wise formula does the rest, once for all of them."""

    def __init__(self, variables: list, indices: list) -> None:
        self.parts = list(zip(variables, indices))
        self.shape = (sum(int(np.prod(v.shape)) if i is None else int(i.shape[0]) for v, i in self.parts),)
        self.dtype = variables[0].dtype


class StepObserver(Protocol):
    """What `AdaptiveOptimizer.observing` takes: measurements around one training step."""

    def before_update(self) -> Any:
        """Called before the step updates anything; returns what `after_update` gets as `before`."""

    def after_update(self, gradients: list, variables: list, before: Any) -> None:
        """Called after the step has updated the weights and the optimizer's state."""


class AdaptiveOptimizer(keras.optimizers.Optimizer):
    """Base class of the keras_adaptive optimizers.

    A subclass declares its state with `slot_names()` (and `slot_initializer()` where a
    slot does not start at zero), and writes `update_step` with Python operators and the
    helpers of `keras_adaptive.math`, reading its state with `self.slots(variable, ...)`.

    Args:
        multi_tensor: take the backend's fast path (default). On torch: all variables of
            one dtype and device at once, with PyTorch's fused or `torch._foreach_*`
            kernels. On JAX's CPU backend: Adam and AdamW's float32 weights of 32K elements
            or more in one native pass over memory (`backend/jax_native.py`, compiled on
            first use). `False` runs the portable per-variable `update_step` everywhere.
            Ignored on TensorFlow, whose compiler fuses the update.
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
            raise ValueError(f"Argument `gradient_accumulation_steps` must be None or an integer >= 2, got {steps!r}.")
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.multi_tensor = bool(multi_tensor)

    @property
    def learning_rate(self) -> Any:
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        check_learning_rate(value)
        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    def apply(self, grads: list, trainable_variables: Any = None) -> Any:
        """Keras' `apply`, after checks that leave the optimizer untouched when they fail."""
        grads = list(grads)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    f"Arguments `grads` and `trainable_variables` must have the same length, got "
                    f"{len(grads)} gradients for {len(trainable_variables)} variables."
                )
            for i, (g, v) in enumerate(zip(grads, trainable_variables)):
                if g is not None and _shape(g) != tuple(v.shape):
                    raise ValueError(
                        f"Argument `grads`[{i}] has shape {_shape(g)}, but its variable "
                        f"{getattr(v, 'path', v.name)!r} has shape {tuple(v.shape)}."
                    )
        if callable(self._learning_rate):
            shape = tuple(getattr(self.learning_rate, "shape", ()))  # a callable may return a float
            if shape != ():
                raise ValueError(
                    f"The learning-rate schedule {self._learning_rate!r} must return a scalar, got shape {shape}."
                )
        observer = self._observer
        if observer is None:
            return self._apply(grads, trainable_variables)
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        before = observer.before_update()
        result = self._apply(grads, trainable_variables)
        observer.after_update([None if g is None else dense(g) for g in grads], variables, before)
        return result

    def _apply(self, grads: list, trainable_variables: Any) -> Any:
        if self._is_plain_torch_step(grads, trainable_variables):
            from keras_adaptive.backend import torch_step

            self._backend_update_step(grads, self._trainable_variables, self.learning_rate)
            torch_step.count_step(self._iterations)
            return None
        return super().apply(grads, trainable_variables)

    def _is_plain_torch_step(self, grads: list, trainable_variables: Any) -> bool:
        """Whether Keras' `apply` would do nothing here but the torch step and the step count.

        That is: the torch path outside a stateless scope (`stateless_apply` must see the step
        count's new value as an assignment, not in its caller's tensor), every variable it was
        built with, in order, each with a gradient and none with a constraint or
        `overwrite_with_gradient`, and no clipping, loss scaling, gradient accumulation or EMA.
        Keras' `apply` then only loops over the
        variables in Python (checking, filtering, constraints): about 0.05 ms a step over 200
        small weights, against 0.67 ms for PyTorch's whole fused SGD step."""
        if not (self.built and self._plain_variables and self._takes_torch_path()) or in_stateless_scope():
            return False
        if self.use_ema or self.gradient_accumulation_steps or self.loss_scale_factor is not None:
            return False
        if self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm is not None:
            return False
        built = self._trainable_variables
        if trainable_variables is not None and (
            len(trainable_variables) != len(built) or any(a is not b for a, b in zip(trainable_variables, built))
        ):
            return False
        return len(grads) == len(built) and all(g is not None for g in grads)

    # --- state -------------------------------------------------------------------

    def slot_names(self) -> tuple[str, ...]:
        """Names of the per-weight state variables, in the order they are saved."""
        return ()

    def slot_initializer(self, name: str) -> Any:
        return "zeros"

    def compute_dtype(self, variable: Any) -> str:
        """The dtype of this weight's state and update arithmetic: float32 for float16 and
        bfloat16 weights, else the weight's own. Half-precision moments underflow (the
        square of a 1e-4 gradient is below float16's smallest number) or round away small
        updates (bfloat16 has 8 significant bits)."""
        dtype = backend.standardize_dtype(variable.dtype)
        return "float32" if dtype in HALF_PRECISION else dtype

    def build_step_state(self) -> None:
        """Create state shared by all weights (Nadam's momentum product), after the slots."""

    def advance_step_state(self) -> None:
        """Update the state shared by all weights (Nadam's momentum product), once per step,
        after every weight's `update_step` (on every path: portable, PyTorch's kernels, JAX's
        native pass). Until then a step reads that state as the previous step left it."""

    def build(self, var_list: list) -> None:
        if self.built:
            return
        super().build(var_list)
        self._plain_variables = all(
            v.constraint is None and not getattr(v, "overwrite_with_gradient", False) for v in var_list
        )
        names = self.slot_names()
        self._slot_variables = {name: [] for name in names}
        # Interleaved per weight, as Keras' add_optimizer_variables does: the saved order.
        for variable in var_list:
            for name in names:
                slot = None
                if not self._overwrite_variable_with_gradient(variable):
                    slot = self.add_variable(
                        shape=variable.shape,
                        initializer=self.slot_initializer(name),
                        dtype=self.compute_dtype(variable),
                        name=f"{getattr(variable, 'path', variable.name).replace('/', '_')}_{name}",
                        layout=getattr(variable, "_layout", None),  # slots are sharded as their weight
                    )
                self._slot_variables[name].append(slot)
        self.build_step_state()
        if getattr(self, "_pending_state", None) is not None:
            state, self._pending_state = self._pending_state, None
            self._restore_state(state)

    def slots(self, variable: Any, *names: str) -> list:
        """The state named `names` belonging to `variable` (a model variable, or a
        `MultiTensor` of them on the torch fast path)."""
        if getattr(variable, "is_multi_tensor", False):
            return [variable.gather([self._slot_variables[n][i] for i in variable.indices]) for n in names]
        if isinstance(variable, _Sampled):
            return [
                sample([(self._slot_variables[n][self._get_variable_index(v)], i) for v, i in variable.parts])
                for n in names
            ]
        index = self._get_variable_index(variable)
        return [self._slot_variables[n][index] for n in names]

    def step_count(self):
        """`t` as float32: this update's number, counting from 1 (accumulated micro-steps
        excluded). Kept in float32 because float16 cannot count past 2048 or resolve
        `0.999^t`; cast what is computed from it to the weights' dtype."""
        return ops.cast(self.iterations + 1, "float32")

    # Writes cast the update to the weight's dtype (it is computed in `compute_dtype`).
    def assign(self, variable: Any, value: Any) -> None:
        super().assign(variable, _as_dtype_of(variable, value))

    def assign_add(self, variable: Any, value: Any) -> None:
        super().assign_add(variable, _as_dtype_of(variable, value))

    def assign_sub(self, variable: Any, value: Any) -> None:
        super().assign_sub(variable, _as_dtype_of(variable, value))

    # --- checkpoints -------------------------------------------------------------

    def state_layout(self) -> dict:
        """What the saved state holds: the optimizer, its slot names, its variable count."""
        return {"optimizer": type(self).__name__, "slots": list(self.slot_names()), "variables": len(self.variables)}

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        store[STATE_LAYOUT_KEY] = np.frombuffer(json.dumps(self.state_layout()).encode(), dtype=np.uint8)

    def load_own_variables(self, store: Any) -> None:
        """Restore saved state, or refuse it with a ValueError if it does not fit.

        Keras' base optimizer skips a mismatched state with only a warning (keras issues
        19615, 20128), which silently restarts the moments. Here a state saved by another
        optimizer or configuration (another slot layout: `amsgrad`, `centered`,
        `momentum`...) raises. A state loaded before the optimizer is built (before its
        first step) is kept and restored when it is built.
        """
        state = {key: np.asarray(store[key]) for key in store.keys()}
        if not self.built:
            self._pending_state = state
            return
        self._restore_state(state)

    def _restore_state(self, state: dict) -> None:
        layout = state.pop(STATE_LAYOUT_KEY, None)
        ours = self.state_layout()
        where = f"optimizer {self.name!r} ({ours['optimizer']}, slots {ours['slots']}, {ours['variables']} variables)"
        if layout is not None:
            saved = json.loads(bytes(layout).decode())
            if saved["slots"] != ours["slots"]:
                raise ValueError(
                    f"Cannot restore the state of {where}: the checkpoint was saved by {saved['optimizer']} with "
                    f"slots {saved['slots']}. Build the optimizer with the arguments it was saved with, or load "
                    f"the model weights alone and start a fresh optimizer."
                )
        if len(state) != len(self.variables):
            raise ValueError(
                f"Cannot restore the state of {where}: the checkpoint holds {len(state)} optimizer variables. "
                f"It was saved by another optimizer or configuration, or for another model."
            )
        for i, variable in enumerate(self.variables):
            value = state[str(i)]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Cannot restore the state of {where}: saved variable {i} has shape {tuple(value.shape)}, "
                    f"{variable.path} has shape {tuple(variable.shape)}."
                )
            variable.assign(value)

    # --- monitoring ----------------------------------------------------------------

    _observer = None

    @contextlib.contextmanager
    def observing(self, observer: StepObserver) -> Iterator[None]:
        """Let `observer` measure the steps run (PyTorch) or traced (TensorFlow, JAX) inside.

        Such a step calls `observer.before_update()` before it updates the weights, and
        `observer.after_update(gradients, variables, before)` after: `gradients` are the
        step's, as `apply` received them (dense; scaled by `loss_scale_factor` if set; None
        where a variable got none), `variables` the variables they belong to, `before` what
        `before_update` returned. What the observer measures is its own business (in a traced
        step, tensors of that trace). Steps outside do nothing more than without an observer,
        so a training function for the observed steps can be made apart from the usual one:
        `OptimizerMonitor` does so."""
        # `object.__setattr__`: Keras' own tracks what is set (tens of microseconds per call).
        object.__setattr__(self, "_observer", observer)
        try:
            yield
        finally:
            object.__setattr__(self, "_observer", None)

    def step_size(self, variable: Any, learning_rate: Any) -> StepSize:
        """eta, the per-weight step size of this optimizer's rule, from its state as it is.

        The factor that multiplies the update direction (the gradient, or the momentum/first
        moment): `update_step` writes `w = w - eta * direction` with it (after the slots'
        updates), and `effective_learning_rate` returns it. A subclass writes it once, as
        a `keras_adaptive.math.StepSize`. Here: `alpha`, the learning rate (SGD).
        """
        return StepSize(ops.cast(learning_rate, self.compute_dtype(variable)))

    def effective_learning_rate(self, variable: Any):
        """The per-weight step size this optimizer would apply next, as a tensor shaped like `variable`.

        It is `step_size(variable, learning_rate).value()`, the factor that multiplies the
        update direction (the gradient, or the momentum/first moment): `alpha` for SGD,
        `alpha / sqrt(r + eps)` for AdaGrad, `alpha / (1 - beta_1^t) / (sqrt(v_hat) + eps)`
        for Adam, and so on. Read from the optimizer's current state; call it after at least
        one step.
        """
        eta = self.step_size(variable, self.learning_rate).value()
        if tuple(eta.shape) != tuple(variable.shape):  # a scalar step size: the same for every weight
            eta = ops.full(variable.shape, eta, dtype=backend.standardize_dtype(eta.dtype))
        return eta

    def effective_learning_rate_at(self, variables: Sequence[Any], indices: Sequence[Any]) -> Any:
        """The effective learning rates of some weights of several variables, as one 1-D
        tensor: for each variable in turn, `effective_learning_rate(variable)` flattened
        (row-major) and taken at its flat `indices` (None: all its weights). The same
        numbers, computed from those weights' state alone and in one evaluation of the
        formula (what `OptimizerMonitor` reads every few steps). The variables must share
        a dtype."""
        variables, indices = list(variables), list(indices)
        dtypes = {backend.standardize_dtype(v.dtype) for v in variables}
        if len(variables) != len(indices) or len(dtypes) > 1 or not variables:
            raise ValueError(
                f"Arguments `variables` and `indices` must be as long as each other and name variables of one "
                f"dtype, got {len(variables)} variables of dtypes {sorted(dtypes)} and {len(indices)} indices."
            )
        return self.effective_learning_rate(_Sampled(variables, indices))

    # --- dispatch ------------------------------------------------------------------

    def _takes_torch_path(self) -> bool:
        """Whether this step runs on PyTorch's multi-tensor path (`backend/torch_multi_tensor.py`).

        Not under torch.compile (jit_compile=True): PyTorch's fused kernels have no meta
        implementation, and the multi-tensor path reads scalars; that runs the portable path."""
        if keras.backend.backend() != "torch" or not self.multi_tensor or dispatch.torch_path(self) is None:
            return False
        from keras_adaptive.backend import torch_step

        return torch_step.available()

    def _takes_jax_native_path(self) -> bool:
        """Whether this step's float32 weights take the native kernel (`backend/jax_native.py`)."""
        if keras.backend.backend() != "jax" or not self.multi_tensor:
            return False
        from keras_adaptive.backend import jax_native

        return jax_native.accepts(self)

    def _apply_weight_decay(self, variables: list) -> None:
        # On the fast paths the decay is part of the step (inside PyTorch's fused AdamW, or
        # the JAX kernel, for the weights it takes), saving a pass over the weights.
        if self._takes_torch_path():
            return
        if self._takes_jax_native_path():
            from keras_adaptive.backend import jax_native

            variables = [v for v in variables if not jax_native.takes(self, v)]
        super()._apply_weight_decay(variables)

    def _backend_update_step(self, grads: list, trainable_variables: list, learning_rate: Any) -> None:
        if self._takes_torch_path():
            from keras_adaptive.backend import torch_step

            torch_step.update(self, grads, trainable_variables, learning_rate)
        else:
            grads = [dense(g) for g in grads]
            if self._takes_jax_native_path():
                from keras_adaptive.backend import jax_native

                rest = jax_native.update(self, grads, trainable_variables, learning_rate)
                grads, trainable_variables = [g for g, _ in rest], [v for _, v in rest]
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        self.advance_step_state()

    def get_config(self) -> dict:
        config = super().get_config()
        config["multi_tensor"] = self.multi_tensor
        return config
