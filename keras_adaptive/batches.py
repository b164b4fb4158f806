"""Training batches read once, so that every run of a comparison sees the same ones in the same order.

`Batches(data, epochs=..., steps_per_epoch=..., batch_size=..., seed=...)` accepts what
`model.fit` accepts as data: NumPy arrays `(x, y)` (shuffled each epoch from `seed`, as the
page's tasks are), a `tf.data.Dataset`, a `keras.utils.PyDataset`, or any iterable or generator
of `(x, y)` batches (read in its own order). Batches are read into NumPy arrays when the object
is made: a generator can be read only once, a dataset may reshuffle each time it is read, and a
comparison is fair only if every optimizer trains on the same batches. `x` may be an array or a
dict or list of arrays (a model with several inputs); `y` an array.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

Batch = tuple[Any, np.ndarray]


def _to_numpy(value: Any, argument: str) -> Any:
    if isinstance(value, dict):
        return {k: _to_numpy(v, argument) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v, argument) for v in value]
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # TF tensors (torch: through __array__)
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(f"Argument `{argument}` holds a value NumPy cannot read as an array: {type(value).__name__}.")
    return array


def _pair(element: Any, argument: str) -> Batch:
    if not isinstance(element, (tuple, list)) or len(element) != 2:
        got = f"a {type(element).__name__}" + (f" of {len(element)}" if isinstance(element, (tuple, list)) else "")
        raise ValueError(f"Argument `{argument}` must give (x, y) batches, got {got}.")
    x, y = element
    return _to_numpy(x, argument), _to_numpy(y, argument)


def _length(x: Any) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, list):
        x = x[0]
    return len(x)


def _take(x: Any, indices: np.ndarray) -> Any:
    if isinstance(x, dict):
        return {k: v[indices] for k, v in x.items()}
    if isinstance(x, list):
        return [v[indices] for v in x]
    return x[indices]


def _looks_like_batch(value: Any) -> bool:
    def sized(v: Any) -> bool:
        return isinstance(v, (dict, list, tuple)) or getattr(v, "ndim", 0) > 0

    return isinstance(value, (tuple, list)) and len(value) == 2 and all(sized(v) for v in value)


def is_arrays(data: Any) -> bool:
    """Whether `data` is arrays `(x, y)` rather than a list of (x, y) batches: a pair whose
    `y` is an array (a list of two batches has a batch, a pair, in second place)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2 or hasattr(data[0], "__next__"):
        return False
    return not (_looks_like_batch(data[0]) and _looks_like_batch(data[1]))


def as_arrays(data: Any, argument: str = "data") -> Batch:
    """Arrays `(x, y)` as NumPy, checked: as many samples in x as in y."""
    x, y = _pair(data, argument)
    if _length(x) != len(y):
        raise ValueError(f"Argument `{argument}`: x has {_length(x)} samples but y has {len(y)}.")
    return x, y


def _is_pydataset(data: Any) -> bool:
    return hasattr(data, "on_epoch_end") and hasattr(data, "__getitem__") and hasattr(data, "num_batches")


class Batches:
    """`epochs` lists of `(x, y)` NumPy batches (`self.epochs[e][b]`), fixed when made."""

    def __init__(
        self,
        data: Any,
        *,
        epochs: int = 1,
        steps_per_epoch: int | None = None,
        batch_size: int | None = None,
        seed: int = 0,
        argument: str = "data",
    ) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"Argument `epochs` must be a positive integer, got {epochs!r}.")
        if steps_per_epoch is not None and (
            isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
        ):
            raise ValueError(f"Argument `steps_per_epoch` must be a positive integer or None, got {steps_per_epoch!r}.")
        self.argument = argument
        if is_arrays(data):
            self.epochs = self._from_arrays(
                data, epochs, steps_per_epoch, 32 if batch_size is None else batch_size, seed
            )
        elif hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset: each epoch reads it from its start
            self.epochs = [self._read(iter(data.as_numpy_iterator()), steps_per_epoch, e) for e in range(epochs)]
        elif _is_pydataset(data):
            self.epochs = []
            for _ in range(epochs):
                n = data.num_batches
                if n is None and steps_per_epoch is None:
                    raise ValueError(f"Argument `steps_per_epoch` is needed: the PyDataset `{argument}` has no length.")
                count = steps_per_epoch if steps_per_epoch is not None else n
                self.epochs.append([_pair(data[i % n if n else i], argument) for i in range(count)])
                data.on_epoch_end()
        elif hasattr(data, "__iter__") or hasattr(data, "__next__"):
            if epochs > 1 and steps_per_epoch is None and iter(data) is data:
                raise ValueError(
                    f"Argument `steps_per_epoch` is needed with {epochs} epochs: `{argument}` is a generator or "
                    "iterator, which can be read only once."
                )
            iterator = iter(data)
            self.epochs = []
            for e in range(epochs):
                self.epochs.append(self._read(iterator, steps_per_epoch, e))
                if iter(data) is not data:  # an iterable (a list of batches): each epoch from its start
                    iterator = iter(data)
        else:
            raise ValueError(
                f"Argument `{argument}` must be NumPy arrays (x, y), a tf.data.Dataset, a keras.utils.PyDataset or "
                f"an iterable of (x, y) batches, got {type(data).__name__}."
            )

    def _read(self, iterator: Iterator, steps: int | None, epoch: int) -> list[Batch]:
        out = []
        for element in iterator:
            out.append(_pair(element, self.argument))
            if steps is not None and len(out) == steps:
                break
        if not out or (steps is not None and len(out) < steps):
            raise ValueError(
                f"Argument `{self.argument}` ran out of batches in epoch {epoch + 1}: got {len(out)}"
                + (f" of steps_per_epoch={steps}." if steps is not None else ".")
            )
        return out

    def _from_arrays(self, data: Any, epochs: int, steps: int | None, batch_size: int, seed: int) -> list:
        x, y = as_arrays(data, self.argument)
        n = _length(x)
        if n == 0:
            raise ValueError(f"Argument `{self.argument}` has no samples.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Argument `batch_size` must be a positive integer, got {batch_size!r}.")
        rng = np.random.default_rng([seed, 2])  # as the page's tasks draw their batch order
        result = []
        for _ in range(epochs):
            if steps is None:  # one pass, the last batch smaller, as fit makes it
                order = rng.permutation(n)
                starts = range(0, n, batch_size)
            else:  # `steps` full batches, from as many permutations as that takes (as gui/tasks.batch_order)
                order = np.concatenate([rng.permutation(n) for _ in range(-(-steps * batch_size // n))])
                starts = range(0, steps * batch_size, batch_size)
            result.append([(_take(x, order[i : i + batch_size]), y[order[i : i + batch_size]]) for i in starts])
        return result

    @property
    def steps_per_epoch(self) -> int:
        return len(self.epochs[0])

    def __iter__(self) -> Iterator[Batch]:
        for epoch in self.epochs:
            yield from epoch
