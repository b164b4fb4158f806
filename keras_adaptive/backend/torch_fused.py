"""PyTorch's own optimizer kernels, for the configurations that are exactly PyTorch's algorithm.

Where an optimizer's configuration is PyTorch's convention (see each class's "Differences
from its namesakes"), PyTorch already has a kernel for the whole step: a fused one
(`torch._fused_adam_`, `_fused_adagrad_`, `_fused_sgd_`: one pass over memory) or its
multi-tensor implementation (`torch.optim.rmsprop._multi_tensor_rmsprop`, ...: in-place
`_foreach_*` operations). Calling it is not a second copy of our math but PyTorch's, which
the registry's peer tests already pin to ours; `tests/test_fast_path.py` checks, on every
case of the registry, that whichever path is dispatched here gives the portable path's numbers.

`KERNELS` holds them by name; which class takes which, and when (its configuration is
exactly `torch.optim`'s algorithm, `keras_adaptive.pytorch`), is declared in
`backend/fast_paths.py`. The kernel runs on the groups it accepts (dtype, device); otherwise
the generic multi-tensor path (`torch_multi_tensor`) evaluates the optimizer's own `update_step`.

Keras' base optimizer has already applied clipping, gradient accumulation and loss scaling
before the update step. Decoupled weight decay is left to the torch step
(`torch_step.update`): a kernel with `takes_weight_decay` gets it as
`Group.weight_decay` (PyTorch's fused AdamW decays in the same pass over memory); the others
get `weight_decay=0` after one in-place multiply. The step count is the optimizer's,
`t = iterations + 1`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from keras_adaptive import _compat
from keras_adaptive.backend import dispatch
from keras_adaptive.backend.torch_multi_tensor import tensors_of

# Dtypes PyTorch's CPU and CUDA kernels take and that our update keeps in its own dtype.
# (In float16/bfloat16 the portable path rounds through keras.ops differently.)
_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Group:
    """One dtype/device group of the step: weights, gradients (same dtype), indices, and the
    decoupled weight decay still to apply to them (0 unless the kernel takes it)."""

    params: list
    grads: list
    indices: list
    weight_decay: float = 0.0

    def slots(self, optimizer: Any, name: str) -> list:
        variables = optimizer._slot_variables[name]
        return tensors_of([variables[i] for i in self.indices])


@dataclass(frozen=True)
class Kernel:
    name: str
    run: Callable[[Any, Group, float, int], None]  # optimizer, group, lr, t
    takes_weight_decay: bool = False  # applies `Group.weight_decay` itself, in the same pass


def _steps(group: Group, t: int) -> list:
    # Read, not written, by the kernels below; on the weights' device, where PyTorch's CUDA
    # kernels read it (its own fused Adam keeps the step there); `torch.full` copies nothing.
    step = torch.full((), float(t), dtype=torch.float32, device=group.params[0].device)
    return [step] * len(group.params)


# --- the kernels ------------------------------------------------------------------------


def _adam_run(optimizer, group: Group, lr: float, t: int) -> None:
    amsgrad = optimizer.amsgrad
    # `_fused_adamw_` multiplies each weight by `1 - lr * wd` before the Adam update, as
    # Keras' decoupled weight decay does; with wd = 0 it is `_fused_adam_`.
    _compat.torch_kernel("fused_adamw")(
        group.params,
        group.grads,
        group.slots(optimizer, "first_moment"),
        group.slots(optimizer, "second_moment"),
        group.slots(optimizer, "max_second_moment") if amsgrad else [],
        _steps(group, t),
        lr=lr,
        beta1=float(optimizer.beta_1),
        beta2=float(optimizer.beta_2),
        weight_decay=group.weight_decay,
        eps=float(optimizer.epsilon),
        amsgrad=amsgrad,
        maximize=False,
    )


def _adagrad_run(optimizer, group: Group, lr: float, t: int) -> None:
    _compat.torch_kernel("fused_adagrad")(
        group.params,
        group.grads,
        group.slots(optimizer, "accumulator"),
        _steps(group, t),
        lr=lr,
        lr_decay=0.0,
        weight_decay=0.0,
        eps=float(optimizer.epsilon),
        maximize=False,
    )


def _sgd_run(optimizer, group: Group, lr: float, t: int) -> None:
    momentum = float(optimizer.momentum)
    _compat.torch_kernel("fused_sgd")(
        group.params,
        group.grads,
        group.slots(optimizer, "momentum") if momentum > 0 else [],
        weight_decay=0.0,
        momentum=momentum,
        lr=lr,
        dampening=0.0,
        nesterov=bool(optimizer.nesterov),
        maximize=False,
        # Our buffer starts at zero, so `mu * 0 + g` is PyTorch's first-step `buf = g`.
        is_first_step=False,
    )


def _rmsprop_run(optimizer, group: Group, lr: float, t: int) -> None:
    momentum = float(optimizer.momentum)  # never centered here: see _rmsprop_accepts
    _compat.torch_kernel("foreach_rmsprop")(
        group.params,
        group.grads,
        group.slots(optimizer, "second_moment"),
        [],
        group.slots(optimizer, "momentum") if momentum > 0 else [],
        _scratch(group),
        lr=lr,
        alpha=float(optimizer.rho),
        eps=float(optimizer.epsilon),
        weight_decay=0.0,
        momentum=momentum,
        centered=False,
        maximize=False,
        differentiable=False,
        capturable=False,
        has_complex=False,
    )


def _adadelta_run(optimizer, group: Group, lr: float, t: int) -> None:
    _compat.torch_kernel("foreach_adadelta")(
        group.params,
        group.grads,
        group.slots(optimizer, "second_moment"),
        group.slots(optimizer, "delta_second_moment"),
        _scratch(group),
        lr=lr,
        rho=float(optimizer.rho),
        eps=float(optimizer.epsilon),
        weight_decay=0.0,
        maximize=False,
        differentiable=False,
        capturable=False,
        has_complex=False,
    )


def _nadam_run(optimizer, group: Group, lr: float, t: int) -> None:
    # PyTorch keeps mu_product and the step per weight and advances both itself; ours is one
    # scalar, P_(t-1) until every weight is updated (`Nadam.advance_step_state` then stores P_t).
    # PyTorch gets scratch copies of it and of t - 1, and leaves our state alone.
    before = float(optimizer._mu_product.value)
    _compat.torch_kernel("foreach_nadam")(
        group.params,
        group.grads,
        group.slots(optimizer, "first_moment"),
        group.slots(optimizer, "second_moment"),
        _scratch(group, before),
        _scratch(group, t - 1),
        beta1=float(optimizer.beta_1),
        beta2=float(optimizer.beta_2),
        lr=lr,
        weight_decay=0.0,
        momentum_decay=float(optimizer.momentum_decay),
        eps=float(optimizer.epsilon),
        decoupled_weight_decay=False,
        maximize=False,
        capturable=False,
        differentiable=False,
        has_complex=False,
    )


def _scratch(group: Group, value: float = 0.0) -> list:
    """Per-weight scalars that PyTorch's multi-tensor functions keep and advance, where ours are
    one scalar or none (step counters, NAdam's mu product): views of one fresh buffer, so that
    advancing them costs one small kernel and leaves our state alone."""
    return list(torch.full((len(group.params),), float(value), dtype=torch.float32).unbind())


# By name, as `backend/fast_paths.py` declares them for each class.
KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel("fused_adamw", _adam_run, takes_weight_decay=True),  # Adam, AdamW, AMSGrad
        Kernel("fused_adagrad", _adagrad_run),
        Kernel("fused_sgd", _sgd_run),
        Kernel("foreach_rmsprop", _rmsprop_run),
        Kernel("foreach_adadelta", _adadelta_run),
        Kernel("foreach_nadam", _nadam_run),
    )
}


def select(optimizer: Any) -> Kernel | None:
    """PyTorch's kernel for this optimizer's class and configuration, or None (generic path)."""
    name = dispatch.torch_kernel_name(optimizer)
    # A PyTorch without this kernel (`_compat` warns once): the generic path.
    return KERNELS[name] if name is not None and _compat.torch_kernel(name) is not None else None


def accepts_group(params: Sequence[torch.Tensor]) -> bool:
    first = params[0]
    return first.dtype in _DTYPES and first.device.type in ("cpu", "cuda")


def describe(optimizer: Any, variables: Sequence[Any] = ()) -> str:
    """Which path a step of this optimizer takes on the torch backend (for benchmarks and logs)."""
    if not getattr(optimizer, "multi_tensor", False):
        return "per-variable"
    kernel = select(optimizer)
    if kernel is None:
        return "multi_tensor"
    if variables and not all(accepts_group([v.value]) for v in variables):
        return f"{kernel.name} + multi_tensor"
    return kernel.name
