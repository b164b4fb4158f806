"""PyTorch's multi-tensor path: one `torch._foreach_*` call per operation over all weights.

On the torch backend Keras runs a custom optimizer's `update_step` one variable at a
time in Python. Here the same `update_step` runs once per (dtype, device) group with
`MultiTensor` arguments: the optimizer's formula is not rewritten, only the arithmetic
it is evaluated with changes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch
from keras import backend


def _operand(x: Any) -> Any:
    if isinstance(x, MultiTensor):
        return x.tensors
    if hasattr(x, "value") and not isinstance(x, torch.Tensor):  # a scalar keras.Variable
        return x.value
    return x


class MultiTensor:
    """Same-dtype torch tensors that behave, for the optimizer's math, like one tensor."""

    is_multi_tensor = True
    __slots__ = ("tensors", "indices")

    def __init__(self, tensors: Sequence[torch.Tensor], indices: Sequence[int] = ()) -> None:
        self.tensors = list(tensors)
        self.indices = list(indices)  # positions of these weights in the optimizer's variable list

    def gather(self, variables: Sequence[Any]) -> "MultiTensor":
        return MultiTensor([v.value for v in variables], self.indices)

    @property
    def dtype(self) -> str:
        return backend.standardize_dtype(self.tensors[0].dtype)

    # Arithmetic, out of place: each returns a new MultiTensor.
    def __add__(self, other):
        return MultiTensor(torch._foreach_add(self.tensors, _operand(other)))

    __radd__ = __add__

    def __sub__(self, other):
        return MultiTensor(torch._foreach_sub(self.tensors, _operand(other)))

    def __rsub__(self, other):
        return MultiTensor(torch._foreach_add(torch._foreach_neg(self.tensors), _operand(other)))

    def __mul__(self, other):
        return MultiTensor(torch._foreach_mul(self.tensors, _operand(other)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return MultiTensor(torch._foreach_div(self.tensors, _operand(other)))

    def __rtruediv__(self, other):
        return MultiTensor(torch._foreach_mul(torch._foreach_reciprocal(self.tensors), _operand(other)))

    def __neg__(self):
        return MultiTensor(torch._foreach_neg(self.tensors))

    def sqrt(self):
        return MultiTensor(torch._foreach_sqrt(self.tensors))

    def square(self):
        return MultiTensor(torch._foreach_mul(self.tensors, self.tensors))

    def maximum(self, other):
        return MultiTensor(torch._foreach_maximum(self.tensors, _operand(other)))

    # Writes, in place, as keras.Variable's assign* (so `optimizer.assign*` works unchanged).
    def assign(self, value) -> None:
        torch._foreach_copy_(self.tensors, _operand(value))

    def assign_add(self, value) -> None:
        torch._foreach_add_(self.tensors, _operand(value))

    def assign_sub(self, value) -> None:
        torch._foreach_sub_(self.tensors, _operand(value))


@torch.no_grad()
def update(optimizer: Any, grads: Sequence[Any], variables: Sequence[Any], learning_rate: Any) -> None:
    """One step over all weights, per group of same-dtype, same-device weights: PyTorch's
    own kernel where `torch_fused.DISPATCH` has one for this optimizer's configuration,
    else the optimizer's `update_step` evaluated once with `MultiTensor` arguments."""
    from keras_adaptive.backend import torch_fused

    groups: dict = defaultdict(list)
    for grad, variable in zip(grads, variables):
        value = variable.value
        groups[(value.dtype, value.device)].append((grad, value, optimizer._get_variable_index(variable)))
    kernel = torch_fused.select(optimizer)
    lr = step = None
    for members in groups.values():
        grad_list, value_list, indices = zip(*members)
        grad_list = [g.to(v.dtype) for g, v in zip(grad_list, value_list)]
        if kernel is not None and torch_fused.accepts_group(value_list):
            if lr is None:
                lr = float(_operand(learning_rate))
                step = int(_operand(optimizer.iterations)) + 1  # = optimizer.step_count()
            kernel.run(optimizer, torch_fused.Group(list(value_list), grad_list, list(indices)), lr, step)
            continue
        optimizer.update_step(MultiTensor(grad_list, indices), MultiTensor(value_list, indices), learning_rate)
