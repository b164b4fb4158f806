"""The fast paths, declared once per backend, keyed by the exact class.

PyTorch: every class's `update_step` runs over all weights at once (`torch_multi_tensor`),
and where its configuration is exactly a `torch.optim` algorithm (`keras_adaptive.pytorch`)
PyTorch's own kernel for it runs instead (`torch_fused.KERNELS`). JAX on the CPU: Adam and
AdamW's native pass (`jax_native`). TensorFlow: none (XLA fuses the per-variable update).

Imported by `keras_adaptive/__init__.py` after the classes, and by nothing the classes
import, so that the base class reads the declarations (`backend/dispatch.py`) without
importing a concrete optimizer.
"""

from keras_adaptive.adadelta import AdaDelta
from keras_adaptive.adagrad import AdaGrad
from keras_adaptive.adam import Adam, AdamW
from keras_adaptive.backend.dispatch import declare_jax, declare_torch
from keras_adaptive.nadam import Nadam
from keras_adaptive.pytorch import matching
from keras_adaptive.rmsprop import RMSProp
from keras_adaptive.sgd import SGD


def _is_torch_algorithm(optimizer) -> bool:
    return matching(optimizer, type(optimizer).__dict__.get("same_math_as", type(optimizer))) is not None


declare_torch(SGD, "fused_sgd", _is_torch_algorithm)
declare_torch(AdaGrad, "fused_adagrad", _is_torch_algorithm)
# Not centered: PyTorch does not clamp the rounded variance r - a^2 at 0 (NaN from finite input).
declare_torch(RMSProp, "foreach_rmsprop", lambda o: _is_torch_algorithm(o) and not o.centered)
declare_torch(AdaDelta, "foreach_adadelta", _is_torch_algorithm)
# `_fused_adamw_` multiplies each weight by `1 - lr * wd` first, our decoupled decay; wd = 0 is Adam.
declare_torch(Adam, "fused_adamw", _is_torch_algorithm)
declare_torch(AdamW, "fused_adamw", _is_torch_algorithm)
declare_torch(Nadam, "foreach_nadam", _is_torch_algorithm)

declare_jax(Adam, "native_adam")
declare_jax(AdamW, "native_adam")
