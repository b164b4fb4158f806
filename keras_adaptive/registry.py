"""Names to classes, for tools that build optimizers from a string (the GUI, configs, CLIs)."""

from __future__ import annotations

from typing import Any

from keras_adaptive.adadelta import AdaDelta
from keras_adaptive.adagrad import AdaGrad
from keras_adaptive.adam import Adam, AdamW
from keras_adaptive.nadam import Nadam
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.rmsprop import RMSProp
from keras_adaptive.sgd import SGD

OPTIMIZERS: dict[str, type[AdaptiveOptimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adadelta": AdaDelta,
    "adam": Adam,
    "adamw": AdamW,
    "nadam": Nadam,
}


def get(name: str, **kwargs: Any) -> AdaptiveOptimizer:
    """Build an optimizer by name: `get("rmsprop", centered=True)`.

    Names are case-insensitive and may carry the Keras package prefix
    (`"keras_adaptive>RMSProp"`).
    """
    if not isinstance(name, str):
        raise ValueError(f"Argument `name` must be a string, one of {sorted(OPTIMIZERS)}, got {name!r}.")
    key = name.split(">", 1)[1] if name.startswith("keras_adaptive>") else name
    cls = OPTIMIZERS.get(key.lower())
    if cls is None:
        raise ValueError(f"Argument `name` must be one of {sorted(OPTIMIZERS)}, got {name!r}.")
    return cls(**kwargs)
