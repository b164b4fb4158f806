"""What every backend fast path asks of an optimizer before taking its step."""

from __future__ import annotations

from typing import Any, Callable

# The methods a subclass may override to change the numbers of a step. A kernel (PyTorch's
# fused or multi-tensor one, the JAX native pass) implements them as shipped: it computes its own
# `t`, state dtype and update, so an optimizer whose class changes any of them is not the
# algorithm the kernel implements any more and takes the portable path.
HOOKS = ("update_step", "step_count", "compute_dtype", "slot_names", "slot_initializer", "build_step_state")


def runs_as_shipped(cls: type) -> Callable[[Any], bool]:
    """A predicate: the optimizer is a `cls` whose class has `cls`'s `HOOKS` as they are now
    (at the kernel's declaration): a subclass, or a patch of `cls` itself, that replaces one
    of them makes it False. A subclass that overrides none of them (one registered under
    another name, say) keeps the kernel."""
    shipped = {hook: getattr(cls, hook) for hook in HOOKS}

    def check(optimizer: Any) -> bool:
        return isinstance(optimizer, cls) and all(getattr(type(optimizer), h) is f for h, f in shipped.items())

    return check
