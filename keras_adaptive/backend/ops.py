"""Tensor operations written per backend, for what Keras' portable ops do slowly or not at all.

The optimizers' math is portable (`keras_adaptive.math`); what lives here is plumbing around it
that reads each backend's own tensors: sparse gradients made dense, samples of weights gathered
for `effective_learning_rate_at`, and the norms `OptimizerMonitor` takes inside training steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops


def dense(gradient: Any) -> Any:
    """Sparse gradients (TensorFlow's IndexedSlices, JAX's BCOO) as dense tensors.

    Every row's moments decay at each step, so the update is dense anyway; and the
    element-wise math must see each row's gradient summed over repeated indices
    (square of the sum, not sum of the squares), which the dense form guarantees.
    """
    if type(gradient).__name__ == "IndexedSlices":
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    if hasattr(gradient, "todense"):
        return gradient.todense()
    return gradient


def sample(parts: Sequence[tuple]) -> Any:
    """The values of `(variable, flat indices or None for all)` pairs, flattened and concatenated.

    The backends' own gathers where Keras' cost more: on PyTorch each Keras op costs
    microseconds of Python (80 -> 23 us for the MNIST MLP's samples), and on TensorFlow
    Keras' `take` adds graph nodes to correct negative indices, which these are not."""
    name = keras.backend.backend()
    if name == "torch":
        import torch

        flats = [v.value.reshape(-1) for v, _ in parts]
        return torch.cat([x if i is None else x.index_select(0, i) for x, (_, i) in zip(flats, parts)])
    if name == "tensorflow":
        import tensorflow as tf

        flats = [tf.reshape(v.value, [-1]) for v, _ in parts]
        return tf.concat([x if i is None else tf.gather(x, i) for x, (_, i) in zip(flats, parts)], 0)
    flats = [ops.reshape(v, (-1,)) for v, _ in parts]
    return ops.concatenate([x if i is None else ops.take(x, i) for x, (_, i) in zip(flats, parts)])


def l2_norms(tensors: Sequence[Any]) -> Any:
    """The L2 norm of each tensor, as one float32 vector.

    It runs inside monitored training steps, so with as few operations as each backend
    allows: one multi-tensor call on PyTorch (each Keras op there costs microseconds of
    Python), one reduction per tensor on TensorFlow (whose executor charges per graph node:
    square-sum-sqrt cost a CPU MNIST step 5%)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.stack(torch._foreach_norm(list(tensors), dtype=torch.float32))
    if backend == "tensorflow":
        import tensorflow as tf

        # l2_loss is sum(t^2) / 2 in one node, and XLA has it (it has no EuclideanNorm).
        return tf.sqrt(2.0 * tf.stack([tf.nn.l2_loss(tf.cast(t, "float32")) for t in tensors]))
    # XLA runs each reduction as a loop of its own, whose launch costs more than these small
    # sums: tensors of one shape are stacked and reduced together. (Squaring a stack also
    # keeps XLA from sharing a gradient's square with the update's fused loop.)
    by_shape: dict = {}
    for i, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(i)
    sums = [
        ops.sum(
            ops.square(ops.stack([ops.cast(tensors[i], "float32") for i in group])),
            axis=tuple(range(1, len(shape) + 1)),
        )
        for shape, group in by_shape.items()
    ]
    order = np.argsort([i for group in by_shape.values() for i in group])
    return ops.sqrt(ops.take(ops.concatenate(sums), ops.convert_to_tensor(order.astype("int32"))))
