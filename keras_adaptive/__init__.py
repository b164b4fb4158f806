"""keras_adaptive: the adaptive-optimizer family for Keras 3, each convention explicit,
the same numbers on TensorFlow, JAX and PyTorch."""

from keras_adaptive import callbacks, pytorch, schedules, testing
from keras_adaptive.adadelta import AdaDelta
from keras_adaptive.adagrad import AdaGrad
from keras_adaptive.adam import Adam, AdamW
from keras_adaptive.backend import fast_paths  # noqa: F401 (declares the fast paths of the classes above)
from keras_adaptive.comparison import Comparison, compare
from keras_adaptive.comparison_sweep import Sweep, sweep
from keras_adaptive.lr_finder import find_learning_rate
from keras_adaptive.nadam import Nadam
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.registry import OPTIMIZERS, get
from keras_adaptive.rmsprop import RMSProp
from keras_adaptive.sgd import SGD

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Comparison",
    "AdaptiveOptimizer",
    "Nadam",
    "RMSProp",
    "SGD",
    "Sweep",
    "callbacks",
    "compare",
    "find_learning_rate",
    "pytorch",
    "get",
    "schedules",
    "sweep",
    "testing",
]
