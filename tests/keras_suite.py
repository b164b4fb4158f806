"""Keras' own optimizer tests, loaded from the installed Keras and pointed at our classes.

`load("adam_test")` executes `keras/src/optimizers/adam_test.py` afresh as a module of
ours, with the Keras optimizer classes it imports replaced by `KerasConfigured` stand-ins:
calling one builds the keras_adaptive optimizer of the same algorithm, with the arguments
that make its math Keras' (`Adagrad` is our `AdaGrad(initial_accumulator_value=0.1)`,
`Nadam` our `Nadam(momentum_decay=1.0)`...), and `isinstance` against one asks whether an
object is ours. The test bodies stay Keras': nothing of them is copied here.

`BUILT` counts the optimizers of ours the stand-ins made, so that the harness can tell a
test that ran against Keras' own classes (which would prove nothing) from one that ran
against ours.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
from typing import Any

import keras
import keras.src
import keras.src.optimizers as keras_optimizers
import pytest

import keras_adaptive as ka

BUILT: list = []  # our optimizers the stand-ins built, cleared per test by the harness
CALL_REPORT = pytest.StashKey()  # a test's call-phase report, stashed by tests/conftest.py


class KerasConfigured(type):
    """A stand-in for a Keras optimizer class: calls build ours, `isinstance` checks ours."""

    def __call__(cls, *args: Any, **kwargs: Any) -> ka.AdaptiveOptimizer:
        # Keras' positional order, not ours (RMSprop's momentum comes before epsilon there).
        bound = inspect.signature(cls.keras_class).bind(*args, **kwargs).arguments
        extra = bound.pop("kwargs", {})
        optimizer = cls.ours(**{**cls.keras_math, **bound, **extra})
        BUILT.append(optimizer)
        return optimizer

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.ours)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.ours)


def _stand_in(keras_name: str, ours: type, **keras_math: Any) -> type:
    return KerasConfigured(
        keras_name, (), dict(keras_class=getattr(keras_optimizers, keras_name), ours=ours, keras_math=keras_math)
    )


# Keras' defaults, where ours differ (learning rates, epsilons), and the arguments that
# make our rule Keras' rule where an argument allows it.
STAND_INS = {
    "SGD": _stand_in("SGD", ka.SGD),
    "Adagrad": _stand_in("Adagrad", ka.AdaGrad, learning_rate=0.001, initial_accumulator_value=0.1),
    "RMSprop": _stand_in("RMSprop", ka.RMSProp),
    "Adadelta": _stand_in("Adadelta", ka.AdaDelta, learning_rate=0.001, epsilon=1e-7),
    "Adam": _stand_in("Adam", ka.Adam),
    "AdamW": _stand_in("AdamW", ka.AdamW),
    "Nadam": _stand_in("Nadam", ka.Nadam, momentum_decay=1.0),
}


def get(identifier: Any, **kwargs: Any) -> Any:
    """`keras.optimizers.get`, resolving the names of the family to our stand-ins."""
    by_name = {name.lower(): cls for name, cls in STAND_INS.items()}
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    if isinstance(identifier, dict) and str(identifier.get("class_name", "")).lower() in by_name:
        return by_name[identifier["class_name"].lower()](**identifier.get("config", {}))
    return keras_optimizers.get(identifier, **kwargs)


class _Optimizers(types.ModuleType):
    """`keras.src.optimizers` with the family's classes and `get` replaced."""

    def __getattr__(self, name: str) -> Any:
        return getattr(keras_optimizers, name)


OPTIMIZERS = _Optimizers("keras_adaptive_stand_in_optimizers")
OPTIMIZERS.__dict__.update(STAND_INS, get=get)


def load(name: str) -> types.ModuleType:
    """Keras' `keras/src/optimizers/<name>.py`, executed with the stand-ins in place of
    what it imports: `from keras.src import optimizers` and `from keras.src.optimizers.adam
    import Adam` both bind ours."""
    path = keras_optimizers.__path__[0] + f"/{name}.py"
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"keras {keras.__version__} has no {path}: Keras' wheels ship their test files in 3.15.1 (not in 3.15.0 or earlier), "
            f"which this suite runs. Install keras==3.15.1 (or a later release that ships them) to run it."
        )
    spec = importlib.util.spec_from_file_location(f"tests._keras_suite.{name}", path)
    module = importlib.util.module_from_spec(spec)
    patches = [(keras.src, "optimizers", OPTIMIZERS)]
    for keras_name, stand_in in STAND_INS.items():
        submodule = sys.modules.get(stand_in.keras_class.__module__)
        patches.append((submodule, keras_name, stand_in))
    saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patches]
    try:
        for owner, attribute, value in patches:
            setattr(owner, attribute, value)
        spec.loader.exec_module(module)
    finally:
        for owner, attribute, value in saved:
            setattr(owner, attribute, value)
    return module
