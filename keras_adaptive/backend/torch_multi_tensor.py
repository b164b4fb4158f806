"""PyTorch's multi-tensor path: one `torch._foreach_*` call per operation over all weights.

On the torch backend Keras runs a custom optimizer's `update_step` one variable at a
time in Python. Here the same `update_step` runs once per (dtype, device) group with
`MultiTensor` arguments: the optimizer's formula is not rewritten, only the arithmetic
it is evaluated with changes.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from keras import backend

from keras_adaptive import _compat
from keras_adaptive._compat import in_stateless_scope

# Keras' torch-backend internals (checked by `_compat`; this path is off where one is missing).
_PARTS = _compat.torch_parts()
get_autocast_scope, get_device, to_torch_dtype = (
    _PARTS[n] for n in ("get_autocast_scope", "get_device", "to_torch_dtype")
)


def tensors_of(variables: Sequence[Any]) -> list:
    """The torch tensors that hold these Keras variables' values.

    `Variable.value` checks the stateless and autocast scopes and the device on every read
    (about 3 µs: most of the Python time of a step over 200 small weights and their slots).
    Outside those scopes, where an optimizer step runs, it is the variable's `_value`."""
    if in_stateless_scope() or get_autocast_scope() is not None or str(get_device()) == "meta":
        return [v.value for v in variables]
    return [v._value for v in variables]


def _operand(x: Any) -> Any:
    if isinstance(x, MultiTensor):
        return x.tensors
    if hasattr(x, "value") and not isinstance(x, torch.Tensor):  # a scalar keras.Variable
        return x.value
    return x


def _temporary_refcount() -> int:
    """`sys.getrefcount(self)` inside a binary-operator method when `self` is an unnamed
    temporary (`a * b + c`: the product is referenced only by the interpreter's stack),
    measured on this interpreter; 0 (never reuse) if a named operand would look the same.

    This is NumPy's temporary elision done in Python: a result that nothing else can see
    may take the next operation in place, which saves an allocation (and, for large
    tensors, the page faults of fresh memory) per operation.
    """

    class Probe:
        def __add__(self, other):
            return sys.getrefcount(self), sys.getrefcount(other)

        def __radd__(self, other):
            return sys.getrefcount(self)

    def probe():
        unnamed = Probe() + Probe()
        unnamed_right = 1.0 + Probe()
        a, b = Probe(), Probe()
        named = a + b
        named_right = 1.0 + a
        return unnamed, named, unnamed_right, named_right

    (self_t, other_t), (self_n, other_n), right_t, right_n = probe()
    if self_t == other_t == right_t and self_t < self_n and other_t < other_n and right_t < right_n:
        return self_t
    return 0


_TEMPORARY = _temporary_refcount()


def _as_number(x: Any) -> Any:
    """x as a Python float if it is a real scalar we can read for free: a Python number, or a
    0-d floating tensor on the CPU (`.item()` of a CUDA tensor would wait for the device)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    x = _operand(x)
    if isinstance(x, torch.Tensor) and x.dim() == 0 and x.device.type == "cpu" and x.is_floating_point():
        return x.item()
    return None


# Lazy linear combinations not yet evaluated in the current step (see MultiTensor._terms):
# before any write, those that read the written tensors are evaluated, so a lazy value
# always has the value the expression had where it was written.
class _Pending(threading.local):
    def __init__(self) -> None:
        self.refs: list = []  # weak references: per thread, since optimizers may step in parallel threads


_PENDING = _Pending()


class MultiTensor:
    """Same-dtype torch tensors that behave, for the optimizer's math, like one tensor.

    Arithmetic maps to `torch._foreach_*`, with two ways of not allocating:

    - A result of that arithmetic is marked `temporary`; when such a result is an
      operator's operand and nothing but the expression being evaluated refers to it (an
      unnamed intermediate, see `_temporary_refcount`), the operation reuses its buffers.
    - A sum of tensors times Python numbers (`beta * m + (1 - beta) * g`) stays lazy, a
      list of (coefficient, tensors) terms, until it is read: assigned to one of its own
      terms it is computed in place (`m *= beta; m += (1 - beta) * g`), added to or
      subtracted from a weight it becomes `add_(..., alpha=)` calls, anything else
      evaluates it once into a new temporary.

    Weights, gradients and slots are never temporaries: they are written only by `assign*`.
    """

    is_multi_tensor = True
    __slots__ = ("_tensors", "_terms", "indices", "temporary", "__weakref__")

    def __init__(
        self,
        tensors: Sequence[torch.Tensor] = (),
        indices: Sequence[int] = (),
        temporary: bool = False,
        terms: list | None = None,
    ) -> None:
        self._tensors = None if terms is not None else list(tensors)
        self._terms = terms  # [(coefficient, tensor list)] while lazy
        self.indices = list(indices)  # positions of these weights in the optimizer's variable list
        self.temporary = temporary or terms is not None
        if terms is not None:
            _PENDING.refs.append(weakref.ref(self))

    @property
    def tensors(self) -> list:
        if self._tensors is None:
            (c0, first), *rest = self._terms
            out = torch._foreach_mul(first, c0)
            for c, tensors in rest:
                torch._foreach_add_(out, tensors, alpha=c)
            self._tensors, self._terms = out, None
        return self._tensors

    def _linear_terms(self) -> list:
        return self._terms if self._tensors is None else [(1.0, self._tensors)]

    def gather(self, variables: Sequence[Any]) -> MultiTensor:
        return MultiTensor(tensors_of(variables), self.indices)

    @property
    def dtype(self) -> str:
        tensors = self._tensors if self._tensors is not None else self._terms[0][1]
        return backend.standardize_dtype(tensors[0].dtype)

    def cast(self, dtype: str) -> MultiTensor:
        if backend.standardize_dtype(dtype) == self.dtype:
            return self
        torch_dtype = to_torch_dtype(dtype)
        return MultiTensor([t.to(torch_dtype) for t in self.tensors], self.indices, temporary=True)

    # Arithmetic. Each method tests its own operands' reference counts (a helper would
    # add references of its own): `sys.getrefcount(x) <= _TEMPORARY` means that only the
    # expression being evaluated holds `x`.
    def __add__(self, other):
        if (
            self.temporary
            and (self._tensors is not None or not isinstance(other, MultiTensor))
            and sys.getrefcount(self) <= _TEMPORARY
        ):
            self._fold(other, 1.0)
            return self
        if isinstance(other, MultiTensor):
            if other.temporary and other._tensors is not None and sys.getrefcount(other) <= _TEMPORARY:
                other._fold(self, 1.0)
                return other
            return MultiTensor(terms=self._linear_terms() + other._linear_terms())
        return MultiTensor(torch._foreach_add(self.tensors, _operand(other)), temporary=True)

    def __radd__(self, other):
        if self.temporary and sys.getrefcount(self) <= _TEMPORARY:  # lazy: evaluated into new buffers
            torch._foreach_add_(self.tensors, _operand(other))
            return self
        return MultiTensor(torch._foreach_add(self.tensors, _operand(other)), temporary=True)

    def __sub__(self, other):
        if (
            self.temporary
            and (self._tensors is not None or not isinstance(other, MultiTensor))
            and sys.getrefcount(self) <= _TEMPORARY
        ):
            self._fold(other, -1.0)
            return self
        if isinstance(other, MultiTensor):
            return MultiTensor(terms=self._linear_terms() + [(-c, t) for c, t in other._linear_terms()])
        return MultiTensor(torch._foreach_sub(self.tensors, _operand(other)), temporary=True)

    def __rsub__(self, other):
        if self.temporary and sys.getrefcount(self) <= _TEMPORARY:  # lazy: evaluated into new buffers
            result = self.tensors
            torch._foreach_neg_(result)
        else:
            result = torch._foreach_neg(self.tensors)
        torch._foreach_add_(result, _operand(other))
        return self if result is self._tensors else MultiTensor(result, temporary=True)

    def __mul__(self, other):
        if self.temporary and self._tensors is not None and sys.getrefcount(self) <= _TEMPORARY:
            torch._foreach_mul_(self.tensors, _operand(other))
            return self
        number = _as_number(other)
        if number is not None:
            return MultiTensor(terms=[(c * number, t) for c, t in self._linear_terms()])
        if (
            isinstance(other, MultiTensor)
            and other.temporary
            and other._tensors is not None
            and sys.getrefcount(other) <= _TEMPORARY
        ):
            torch._foreach_mul_(other.tensors, self.tensors)
            return other
        return MultiTensor(torch._foreach_mul(self.tensors, _operand(other)), temporary=True)

    def __rmul__(self, other):
        if self.temporary and self._tensors is not None and sys.getrefcount(self) <= _TEMPORARY:
            torch._foreach_mul_(self.tensors, _operand(other))
            return self
        number = _as_number(other)
        if number is not None:
            return MultiTensor(terms=[(number * c, t) for c, t in self._linear_terms()])
        return MultiTensor(torch._foreach_mul(self.tensors, _operand(other)), temporary=True)

    def __truediv__(self, other):
        if self.temporary and sys.getrefcount(self) <= _TEMPORARY:  # lazy: evaluated into new buffers
            torch._foreach_div_(self.tensors, _operand(other))
            return self
        return MultiTensor(torch._foreach_div(self.tensors, _operand(other)), temporary=True)

    def __rtruediv__(self, other):
        if self.temporary and sys.getrefcount(self) <= _TEMPORARY:  # lazy: evaluated into new buffers
            result = self.tensors
            torch._foreach_reciprocal_(result)
        else:
            result = torch._foreach_reciprocal(self.tensors)
        torch._foreach_mul_(result, _operand(other))
        return self if result is self._tensors else MultiTensor(result, temporary=True)

    def __neg__(self):
        if self.temporary and self._tensors is not None and sys.getrefcount(self) <= _TEMPORARY:
            torch._foreach_neg_(self.tensors)
            return self
        return MultiTensor(terms=[(-c, t) for c, t in self._linear_terms()])

    def _fold(self, other, sign: float) -> None:
        """self += sign * other, in place (self is a temporary: a lazy one is evaluated first)."""
        self.tensors  # noqa: B018
        if isinstance(other, MultiTensor):
            for c, tensors in other._linear_terms():
                torch._foreach_add_(self._tensors, tensors, alpha=sign * c)
        elif sign > 0:
            torch._foreach_add_(self._tensors, _operand(other))
        else:
            torch._foreach_sub_(self._tensors, _operand(other))

    # Named functions (called through `keras_adaptive.math`, whose own reference to the
    # argument makes a temporary look named: these allocate unless given a temporary
    # directly).
    def sqrt(self):
        return MultiTensor(torch._foreach_sqrt(self.tensors), temporary=True)

    def square(self):
        tensors = self.tensors
        return MultiTensor(torch._foreach_mul(tensors, tensors), temporary=True)

    def maximum(self, other):
        return MultiTensor(torch._foreach_maximum(self.tensors, _operand(other)), temporary=True)

    # Writes, in place, as keras.Variable's assign* (so `optimizer.assign*` works unchanged);
    # a value computed in a wider dtype (float32 for half-precision weights) is rounded to ours.
    def _before_write(self, value: Any) -> None:
        """Evaluate the pending lazy values that read our tensors, before they change."""
        first = self._tensors[0]
        for ref in list(_PENDING.refs):
            lazy = ref()
            if lazy is None or lazy._tensors is not None:
                _PENDING.refs.remove(ref)
            elif lazy is not value and any(t[0] is first for _, t in lazy._terms):
                lazy.tensors  # noqa: B018 (evaluates it)
                _PENDING.refs.remove(ref)

    def _lazy_in_own_dtype(self, value: Any) -> bool:
        return (
            isinstance(value, MultiTensor)
            and value._tensors is None
            and value._terms[0][1][0].dtype == self._tensors[0].dtype
        )

    def assign(self, value) -> None:
        self._before_write(value)
        if self._lazy_in_own_dtype(value):
            terms = value._terms
            own = [c for c, t in terms if t[0] is self._tensors[0]]
            if len(own) == 1:  # x = a*x + b*y + ...: scale x in place, then add the rest
                torch._foreach_mul_(self._tensors, own[0])
                for c, tensors in terms:
                    if tensors[0] is not self._tensors[0]:
                        torch._foreach_add_(self._tensors, tensors, alpha=c)
                return
        torch._foreach_copy_(self._tensors, _operand(value))

    def assign_add(self, value) -> None:
        self._before_write(value)
        if self._lazy_in_own_dtype(value) and not any(t[0] is self._tensors[0] for _, t in value._terms):
            for c, tensors in value._terms:
                torch._foreach_add_(self._tensors, tensors, alpha=c)
            return
        torch._foreach_add_(self._tensors, _operand(value))

    def assign_sub(self, value) -> None:
        self._before_write(value)
        if self._lazy_in_own_dtype(value) and not any(t[0] is self._tensors[0] for _, t in value._terms):
            for c, tensors in value._terms:
                torch._foreach_add_(self._tensors, tensors, alpha=-c)
            return
        torch._foreach_sub_(self._tensors, _operand(value))
