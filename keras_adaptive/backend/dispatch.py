"""Which optimizers take which backend fast path: the registry the backends read.

The fast paths are declared once per backend in `backend/fast_paths.py`, keyed by the
exact class. This module holds the declarations and answers for an optimizer; it imports
no optimizer class, so the base class can ask it without an import cycle.

A subclass takes no fast path of its parent unless it opts in explicitly, with a class
attribute `same_math_as = Parent` (not inherited by its own subclasses). Even then a kernel
(PyTorch's, the JAX native pass) runs only while it keeps the parent's math: a kernel
implements `HOOKS` as shipped, computing its own `t`, state dtype and update, so a class that
replaces any of them runs its own hooks (on torch over `MultiTensor`s, elsewhere per variable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The methods a subclass may override to change the numbers of a step (`step_scalars` and
# `momentum_product` are Adam's and Nadam's only: looked up with a default).
HOOKS = (
    "update_step",
    "step_size",
    "step_scalars",
    "step_count",
    "compute_dtype",
    "slot_names",
    "slot_initializer",
    "build_step_state",
    "advance_step_state",
    "momentum_product",
)


@dataclass(frozen=True)
class TorchPath:
    """The torch fast path of a class: its `update_step` over `MultiTensor`s (always), and
    PyTorch's kernel `kernel` (a name of `torch_fused.KERNELS`) where `takes_kernel` holds
    for the optimizer's configuration."""

    kernel: str | None
    takes_kernel: Callable[[Any], bool]


TORCH: dict[type, TorchPath] = {}
JAX: dict[type, str] = {}  # class -> the JAX kernel's name (`jax_native` for now)
_SHIPPED: dict[type, dict] = {}  # class -> its HOOKS as declared


def _declare(cls: type) -> None:
    _SHIPPED.setdefault(cls, {hook: getattr(cls, hook, None) for hook in HOOKS})


def declare_torch(cls: type, kernel: str | None = None, takes_kernel: Callable[[Any], bool] = lambda o: True) -> None:
    _declare(cls)
    TORCH[cls] = TorchPath(kernel, takes_kernel)


def declare_jax(cls: type, kernel: str) -> None:
    _declare(cls)
    JAX[cls] = kernel


def declared_class(optimizer: Any) -> type | None:
    """The declared class whose fast paths this optimizer may take: its own class if declared,
    the one it names in `same_math_as` if it opts in, else None."""
    own = type(optimizer)
    cls = own.__dict__.get("same_math_as", own)
    return cls if cls in _SHIPPED and isinstance(optimizer, cls) else None


def keeps_shipped_math(optimizer: Any, cls: type) -> bool:
    """The optimizer's class has `cls`'s `HOOKS` as declared: a subclass, or a patch of `cls`
    itself, that replaces one of them is not the algorithm a kernel implements."""
    own = type(optimizer)
    return all(getattr(own, hook, None) is f for hook, f in _SHIPPED[cls].items())


def torch_path(optimizer: Any) -> TorchPath | None:
    """The optimizer's torch path. Its generic part evaluates the optimizer's own hooks (its
    `update_step` over `MultiTensor`s), so only the kernel asks for the math as shipped."""
    return TORCH.get(declared_class(optimizer))


def torch_kernel_name(optimizer: Any) -> str | None:
    """The PyTorch kernel for this optimizer's class and configuration, or None."""
    cls = declared_class(optimizer)
    path = TORCH.get(cls)
    if path is None or path.kernel is None or not keeps_shipped_math(optimizer, cls):
        return None
    return path.kernel if path.takes_kernel(optimizer) else None


def jax_kernel_name(optimizer: Any) -> str | None:
    cls = declared_class(optimizer)
    return JAX.get(cls) if cls in JAX and keeps_shipped_math(optimizer, cls) else None
