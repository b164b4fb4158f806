"""What every backend fast path asks of an optimizer before taking its step."""

from __future__ import annotations

from typing import Any


def runs_own_update_step(optimizer: Any, cls: type) -> bool:
    """The optimizer runs `cls.update_step` as shipped: a subclass (or a patch) that changes
    the math is not the algorithm a kernel implements any more, and takes the portable path."""
    if not isinstance(optimizer, cls):
        return False
    method = type(optimizer).update_step
    return method.__module__ == cls.__module__ and method.__qualname__ == f"{cls.__name__}.update_step"
