"""One torch step over all weights: PyTorch's kernel where one is declared for the optimizer's
configuration (`torch_fused`), else its own `update_step` over `MultiTensor`s
(`torch_multi_tensor`), per group of same-dtype, same-device weights."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from keras_adaptive import _compat
from keras_adaptive.backend import torch_fused
from keras_adaptive.backend.torch_multi_tensor import _PENDING, MultiTensor, _operand, tensors_of


def available() -> bool:
    """Whether a torch step can take this path now: not under torch.compile (jit_compile=True:
    PyTorch's fused kernels have no meta implementation, and the multi-tensor path reads
    scalars, so the portable path runs there), and with what `_compat` found it needs."""
    return not torch.compiler.is_compiling() and _compat.torch_fast_path_available()


def count_step(iterations: Any) -> None:
    """`iterations += 1` in place: Keras' assign_add makes a new tensor."""
    tensors_of([iterations])[0].add_(1)


@torch.no_grad()
def update(optimizer: Any, grads: Sequence[Any], variables: Sequence[Any], learning_rate: Any) -> None:
    """One step over all weights, per group of same-dtype, same-device weights: PyTorch's
    own kernel where `torch_fused.select` finds one for this optimizer's configuration,
    else the optimizer's `update_step` evaluated once with `MultiTensor` arguments.

    Decoupled weight decay (`w -= lr * wd * w`, which Keras' base optimizer applies in a
    pass of its own on the other paths) happens here too: inside the kernel where the
    kernel takes it (PyTorch's fused AdamW), else as one in-place multiply per group."""
    wd = optimizer.weight_decay or 0.0
    groups: dict = defaultdict(list)
    # The variables the optimizer was built with, in order (a plain step): index = position.
    built = variables is optimizer._trainable_variables
    for position, (grad, variable, value) in enumerate(zip(grads, variables, tensors_of(variables))):
        decays = bool(wd) and optimizer._use_weight_decay(variable)
        index = position if built else optimizer._get_variable_index(variable)
        groups[(value.dtype, value.device, decays)].append((grad, value, index))
    _PENDING.refs.clear()
    kernel = torch_fused.select(optimizer)
    if kernel is not None or wd:  # read on the host only when a kernel or the decay needs them
        lr = float(_operand(learning_rate))
        step = int(_operand(optimizer.iterations)) + 1  # = optimizer.step_count()
    for (_, _, decays), members in groups.items():
        grad_list, value_list, indices = zip(*members)
        grad_list = [g if g.dtype == v.dtype else g.to(v.dtype) for g, v in zip(grad_list, value_list)]
        fused = kernel is not None and torch_fused.accepts_group(value_list)
        group_wd = wd if decays else 0.0
        if group_wd and not (fused and kernel.takes_weight_decay):
            torch._foreach_mul_(list(value_list), 1.0 - group_wd * lr)
            group_wd = 0.0
        if fused:
            kernel.run(optimizer, torch_fused.Group(list(value_list), grad_list, list(indices), group_wd), lr, step)
            continue
        optimizer.update_step(MultiTensor(grad_list, indices), MultiTensor(value_list, indices), learning_rate)
