"""The pieces the adaptive-optimizer family shares, each named after the math.

Every function takes either Keras tensors/variables or a `MultiTensor` (a list of
torch tensors that does arithmetic with one `torch._foreach_*` call per operation,
see `keras_adaptive.backend.torch_multi_tensor`). Writing the update rules with
these functions and Python operators is what lets one `update_step` serve both the
portable per-variable path and PyTorch's multi-tensor path: the math lives once.
"""

from __future__ import annotations

import math as pymath
from typing import Any

import keras
import numpy as np
from keras import ops

EPSILON_PLACEMENTS = ("inside", "outside")


def _is_multi_tensor(x: Any) -> bool:
    return getattr(x, "is_multi_tensor", False)


def cast(x, dtype: str):
    return x.cast(dtype) if _is_multi_tensor(x) else ops.cast(x, dtype)


def sqrt(x):
    return x.sqrt() if _is_multi_tensor(x) else ops.sqrt(x)


def square(x):
    return x.square() if _is_multi_tensor(x) else ops.square(x)


def maximum(x, y):
    return x.maximum(y) if _is_multi_tensor(x) else ops.maximum(x, y)


def ema(average, value, decay):
    """Exponential moving average: `decay * average + (1 - decay) * value`."""
    return decay * average + (1.0 - decay) * value


def bias_correction(beta: float, step):
    """`1 - beta^t`: the share of an EMA started at zero that is real signal after t steps.

    Computed as `-expm1(t * log(beta))`: `1 - beta^t` in float32 loses digits to
    cancellation when beta^t is near 1 (1e-5 relative at beta=0.999, t=1).
    """
    if beta == 0:
        return ops.ones_like(step)
    return -ops.expm1(step * pymath.log(beta))


def debias_factor(beta: float, step, dtype: str):
    """`1 / (1 - beta^t)` as a scalar of `dtype`: what `debias` multiplies by."""
    return ops.cast(1.0 / bias_correction(beta, step), dtype)


def debias(average, beta: float, step, dtype: str):
    """`average / (1 - beta^t)`: an EMA started at zero, bias-corrected.

    Multiplied by the correction's reciprocal, a scalar: one division per step rather than
    one per weight. TensorFlow's XLA keeps a division by a broadcast scalar element-wise (JAX's
    turns it into this product itself): Adam's two corrections as divisions made its 16M-weight
    TensorFlow step 6-9% slower than Keras' own Adam, which folds them into the learning rate."""
    return average * debias_factor(beta, step, dtype)


def rms_denominator(second_moment, epsilon: float, placement: str):
    """`sqrt(v + eps)` ("inside", Keras' RMSprop and AdaGrad) or `sqrt(v) + eps` ("outside", PyTorch, Adam's paper)."""
    if placement == "inside":
        return sqrt(second_moment + epsilon)
    return sqrt(second_moment) + epsilon


def nadam_momentum(beta_1: float, step, momentum_decay: float):
    """Dozat's momentum schedule `mu_t = beta_1 * (1 - 0.5 * 0.96^(momentum_decay * t))`."""
    return beta_1 * (1.0 - 0.5 * ops.power(ops.cast(0.96, step.dtype), step * momentum_decay))


def l2_norms(tensors: list):
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
        ops.sum(ops.square(ops.stack([ops.cast(tensors[i], "float32") for i in group])), axis=tuple(range(1, len(shape) + 1)))
        for shape, group in by_shape.items()
    ]
    order = np.argsort([i for group in by_shape.values() for i in group])
    return ops.sqrt(ops.take(ops.concatenate(sums), ops.convert_to_tensor(order.astype("int32"))))
