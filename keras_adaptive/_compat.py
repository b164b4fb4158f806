"""Every private part of Keras and PyTorch that keras_adaptive uses, looked up here, once.

Keras 3 and PyTorch do not promise these; a release may rename any of them. So each is
checked at import, and what happens when one is missing is decided here:

- Keras' base-optimizer internals that `AdaptiveOptimizer` is built on (the methods it
  overrides or calls, the attributes it reads) are required: without one, importing
  keras_adaptive raises an ImportError naming the Keras version and what it lacks.
- What only a fast path needs (Keras' torch-backend helpers and a variable's `_value`,
  PyTorch's fused and multi-tensor kernels) is optional: where a piece is missing, the fast
  path that needs it is off, the portable path runs (the same numbers, slower), and a
  RuntimeWarning says so once, naming the version and the piece (`torch_missing`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import keras
from keras.src.optimizers.base_optimizer import BaseOptimizer

# Methods of Keras' base optimizer that AdaptiveOptimizer overrides or calls.
KERAS_METHODS = (
    "_backend_update_step",
    "_apply_weight_decay",
    "_get_current_learning_rate",
    "_get_variable_index",
    "_overwrite_variable_with_gradient",
    "_use_weight_decay",
)
# Attributes Keras' base optimizer sets, by the method that sets them (read, never written, here).
KERAS_ATTRIBUTES = {"__init__": ("_learning_rate", "_iterations", "_trainable_variables")}

# PyTorch's kernels that `backend/torch_fused.py` calls: (module, name).
TORCH_KERNELS = {
    "fused_adamw": ("torch", "_fused_adamw_"),
    "fused_adagrad": ("torch", "_fused_adagrad_"),
    "fused_sgd": ("torch", "_fused_sgd_"),
    "foreach_rmsprop": ("torch.optim.rmsprop", "_multi_tensor_rmsprop"),
    "foreach_adadelta": ("torch.optim.adadelta", "_multi_tensor_adadelta"),
    "foreach_nadam": ("torch.optim.nadam", "_multi_tensor_nadam"),
}
# The `torch._foreach_*` operations of the generic multi-tensor path (`backend/torch_multi_tensor.py`).
TORCH_FOREACH = (
    "add",
    "add_",
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
    "neg",
    "neg_",
    "reciprocal",
    "reciprocal_",
    "sqrt",
    "maximum",
    "copy_",
)


def _unsupported(what: str) -> None:
    raise ImportError(
        f"keras_adaptive does not support keras {keras.__version__}: {what}. Install a Keras 3 release that "
        f"keras_adaptive's pyproject.toml allows."
    )


def _check_keras() -> None:
    for name in KERAS_METHODS:
        if not callable(getattr(BaseOptimizer, name, None)):
            _unsupported(f"its base optimizer has no method `{name}`")
    for method, names in KERAS_ATTRIBUTES.items():
        assigned = getattr(BaseOptimizer, method).__code__.co_names
        for name in names:
            if name not in assigned:
                _unsupported(f"its base optimizer's `{method}` no longer sets `{name}`")


_check_keras()

try:
    from keras.src.backend.common.stateless_scope import in_stateless_scope  # noqa: F401 (used by optimizer.py)
except ImportError:
    _unsupported("`keras.src.backend.common.stateless_scope.in_stateless_scope` is missing")


def train_on_batch(model, x, y) -> dict:
    """`model.train_on_batch(x, y, return_dict=True)`, giving this batch's own loss and metrics on
    every Keras the package supports. Keras 3.10 (the floor) does not reset the metrics between
    calls, so its train_on_batch returns their running mean since the last reset (measured: a
    second batch whose own loss was 1.119 came back as 1.074, its mean with the first); Keras
    3.15 resets them at each call. Resetting first gives the batch's own values on both."""
    model.reset_metrics()
    return model.train_on_batch(x, y, return_dict=True)


# --- PyTorch (imported only on the torch backend) ---------------------------------------


@functools.cache
def torch_parts() -> dict:
    """Keras' torch-backend helpers and PyTorch's kernels that the torch fast path uses, by name;
    None for each that this Keras or PyTorch lacks."""
    import importlib

    import torch

    parts: dict = {}
    try:
        from keras.src.backend.common.variables import get_autocast_scope
        from keras.src.backend.torch.core import Variable, get_device, to_torch_dtype

        has_value = "_value" in Variable._initialize.__code__.co_names or "_value" in (
            Variable._direct_assign.__code__.co_names
        )
        parts.update(
            get_autocast_scope=get_autocast_scope,
            get_device=get_device,
            to_torch_dtype=to_torch_dtype,
            variable_value=(lambda v: v._value) if has_value else None,
        )
    except (ImportError, AttributeError):
        parts.update(get_autocast_scope=None, get_device=None, to_torch_dtype=None, variable_value=None)
    for op in TORCH_FOREACH:
        parts[f"_foreach_{op}"] = getattr(torch, f"_foreach_{op}", None)
    for kernel, (module, name) in TORCH_KERNELS.items():
        try:
            parts[kernel] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            parts[kernel] = None
    return parts


def torch_missing(names: tuple = ()) -> list:
    """What the torch fast path needs (all of its generic part, and the kernels in `names`) and
    this Keras or PyTorch lacks; empty when it can run."""
    generic = ("get_autocast_scope", "get_device", "to_torch_dtype", "variable_value") + tuple(
        f"_foreach_{op}" for op in TORCH_FOREACH
    )
    parts = torch_parts()
    return [name for name in generic + tuple(names) if parts[name] is None]


@functools.cache
def torch_fast_path_available() -> bool:
    """Whether the generic torch multi-tensor path can run; warns once where it cannot."""
    missing = torch_missing()
    if missing:
        import torch

        warnings.warn(
            f"keras_adaptive's PyTorch fast path is off with keras {keras.__version__} and torch "
            f"{torch.__version__}, which lack {missing}; the portable path runs (the same numbers, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
    return not missing


@functools.cache
def torch_kernel(name: str) -> Callable | None:
    """PyTorch's kernel `name` (a key of `TORCH_KERNELS`), or None with a warning, once, if missing."""
    kernel = torch_parts()[name]
    if kernel is None:
        import torch

        module, attribute = TORCH_KERNELS[name]
        warnings.warn(
            f"torch {torch.__version__} has no `{module}.{attribute}`: keras_adaptive's steps that would use it "
            f"run its generic multi-tensor path (the same numbers, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
    return kernel
