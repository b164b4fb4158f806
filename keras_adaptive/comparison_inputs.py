"""compare's inputs, checked and made uniform: optimizers, seeds, backends, the target, the
loss and metrics (in a form a worker on another backend can rebuild), data loaders, and a
first batch through the model, so that bad input is named before anything trains.

Every check raises ValueError naming the argument, its value and what is allowed. Keras is
imported inside functions only (the module is imported with keras_adaptive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_adaptive import user_code
from keras_adaptive.batches import Batches, as_arrays, is_arrays

TARGET_KEYS = ("loss", "val_loss", "val_acc")


BACKENDS = ("tensorflow", "jax", "torch")


@dataclass
class Target:
    """When a run counts as having reached its target: the batch loss at or below `value`
    (`metric="loss"`), the validation loss at or below it, or the validation accuracy at or
    above it (checked at each epoch's end)."""

    metric: str
    value: float

    @classmethod
    def of(cls, target: Any) -> Target | None:
        if target is None:
            return None
        if isinstance(target, dict) and len(target) == 1:
            ((metric, value),) = target.items()
        elif isinstance(target, (int, float)) and not isinstance(target, bool):
            metric, value = "loss", target
        else:
            metric, value = None, None
        if (
            metric not in TARGET_KEYS
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"Argument `target` must be a training loss (a number) or one of {{'loss': v}}, {{'val_loss': v}}, "
                f"{{'val_acc': v}}, got {target!r}."
            )
        return cls(metric, float(value))

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= self.value if self.metric == "val_acc" else value <= self.value

    def describe(self) -> str:
        sign = "≥" if self.metric == "val_acc" else "≤"
        return f"{self.metric} {sign} {self.value:g}"


def _keras_builtin(name: str) -> Any:
    import keras

    candidate = getattr(keras.optimizers, name, None)
    if isinstance(candidate, type) and issubclass(candidate, keras.optimizers.Optimizer):
        return candidate
    lowered = {n.lower(): getattr(keras.optimizers, n) for n in dir(keras.optimizers)}
    candidate = lowered.get(name.lower())
    if isinstance(candidate, type) and issubclass(candidate, keras.optimizers.Optimizer):
        return candidate
    return None


def _optimizer_names() -> list[str]:
    import keras

    from keras_adaptive.registry import OPTIMIZERS

    builtins = [
        f"keras.{n}"
        for n in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, n), type)
        and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)
        and n not in ("Optimizer", "LossScaleOptimizer")
    ]
    return sorted(OPTIMIZERS) + sorted(builtins)


def _resolve_optimizer(spec: Any, n: int) -> tuple[str, Any]:
    """(key, optimizer instance) of one entry of `optimizers`: an instance, a registered name
    ("adam", "keras.Adam") or (name, kwargs). The key is the registry's name ("adam") or
    "keras.<Class>" for Keras' own, as the page names them."""
    import keras

    from keras_adaptive.registry import OPTIMIZERS

    where = f"Argument `optimizers` (entry {n + 1})"
    if isinstance(spec, keras.optimizers.Optimizer):
        cls = type(spec)
        key = next((k for k, c in OPTIMIZERS.items() if c is cls), None)
        if key is None:
            key = f"keras.{cls.__name__}" if cls.__module__.startswith("keras") else cls.__name__
        return key, spec
    kwargs: Any = {}
    name = spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, kwargs = spec
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise ValueError(f"{where} must be an optimizer instance, a registered name or (name, kwargs), got {spec!r}.")
    key = name.split(">", 1)[1] if name.startswith("keras_adaptive>") else name
    if key.lower() in OPTIMIZERS:
        cls, key = OPTIMIZERS[key.lower()], key.lower()
    elif key.startswith(("keras.", "keras>")) and _keras_builtin(key[6:]) is not None:
        cls = _keras_builtin(key[6:])
        key = f"keras.{cls.__name__}"
    else:
        raise ValueError(f"{where}: unknown optimizer {name!r}; the registered names are {_optimizer_names()}.")
    try:
        return key, cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}={spec!r}: {error}") from None


def _label(key: str, optimizer: Any, given: dict | None) -> str:
    """ "adam (learning_rate=0.001)": the key, its learning rate, and what was given besides."""
    values = {}
    rate = optimizer.get_config().get("learning_rate")
    if isinstance(rate, (int, float)):
        values["learning_rate"] = rate
    for name, value in (given or {}).items():
        if name != "learning_rate" and isinstance(value, (bool, int, float, str)):
            values[name] = value
    shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    return f"{key} ({shown})" if shown else key


@dataclass
class Choice:
    """One optimizer of the comparison (what the page's charts read as `config.optimizers`)."""

    key: str
    label: str
    config: dict  # keras.optimizers.serialize of it: a fresh copy per run, on any backend
    given: dict


def optimizer_choices(optimizers: Any) -> list[Choice]:
    import keras

    if isinstance(optimizers, dict):  # {label: optimizer}
        items = list(optimizers.items())
    elif isinstance(optimizers, (list, tuple)) and not (
        len(optimizers) == 2 and isinstance(optimizers[0], str) and isinstance(optimizers[1], dict)
    ):
        items = [(None, o) for o in optimizers]
    else:
        items = [(None, optimizers)]
    if not items:
        raise ValueError("Argument `optimizers` is empty: give at least one optimizer.")
    choices, seen = [], {}
    for n, (label, spec) in enumerate(items):
        key, optimizer = _resolve_optimizer(spec, n)
        given = spec[1] if isinstance(spec, (tuple, list)) else {}
        label = label or _label(key, optimizer, given)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # labels tell the runs apart (not "#": pandas reads it as a comment)
            label = f"{label} ({seen[label]})"
        choices.append(Choice(key, label, keras.optimizers.serialize(optimizer), dict(given)))
    return choices


def changed_hyperparameters(serialized: dict) -> dict:
    """The hyperparameters of a serialized optimizer that differ from its class's defaults (and
    its learning rate always): what a label or a footer needs to tell runs apart."""
    import keras

    config = serialized.get("config", {})
    try:
        defaults = type(keras.optimizers.deserialize(serialized)).from_config({}).get_config()
    except Exception:  # a class that needs arguments: show everything
        defaults = {}
    return {
        k: v
        for k, v in config.items()
        if k != "name" and (k == "learning_rate" or k not in defaults or defaults[k] != v)
    }


def checked_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return list(range(seeds))
    if (
        isinstance(seeds, (list, tuple))
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        return list(seeds)
    raise ValueError(
        f"Argument `seeds` must be a number of seeds (>= 1: seeds 0, 1, ...) or a list of distinct seeds >= 0, "
        f"got {seeds!r}."
    )


def backend_list(backends: Any) -> list[str] | None:
    if backends is None:
        return None
    if isinstance(backends, str):
        backends = [b.strip() for b in backends.split(",") if b.strip()]
    if not backends or any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        raise ValueError(
            f"Argument `backends` must be a list of distinct names from {list(BACKENDS)}, got {backends!r}."
        )
    return list(backends)


def is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def split_loaded(loaded: Any) -> tuple[Any, Any]:
    """What a data loader returned, as (training data, validation data or None):
    `((x, y), (x_val, y_val))` is split, anything else is training data."""
    if is_pair(loaded) and is_pair(loaded[0]) and is_pair(loaded[1]):
        return loaded[0], loaded[1]
    return loaded, None


def portable(value: Any, argument: str) -> Any:
    """`loss` or a metric in a form a worker on another backend can rebuild: a string, Keras'
    serialized config, or a function's 'module:function' name."""
    import keras

    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "get_config"):
        return {"keras": keras.saving.serialize_keras_object(value)}
    return {"code": user_code.spec_of(value, argument)}


def rebuilt(value: Any) -> Any:
    import keras

    if isinstance(value, dict) and "keras" in value:
        return keras.saving.deserialize_keras_object(value["keras"])
    if isinstance(value, dict) and "code" in value:
        return user_code.load(value["code"], "loss")
    return value


def fresh_metric(metric: Any) -> Any:
    """A metric for one model: Metric objects hold state, so each model gets a copy."""
    import keras

    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric


def from_template(template: Any) -> tuple[Any, list]:
    import keras

    if not isinstance(template, keras.Model) or not getattr(template, "compiled", False):
        raise ValueError(f"Argument `template` must be a compiled keras.Model, got {type(template).__name__}.")
    config = template.get_compile_config() or {}
    loss = config.get("loss", template.loss)
    if isinstance(loss, dict) and "class_name" in loss:
        loss = keras.saving.deserialize_keras_object(loss)
    metrics = [
        keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in config.get("metrics") or []
    ]
    return loss, metrics


def check_model(model: Any, build_model: Any) -> None:
    import keras

    name = getattr(build_model, "__qualname__", repr(build_model))
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Argument `build_model`: {name}() must return an uncompiled keras.Model, got {type(model).__name__}."
        )
    if getattr(model, "compiled", False):
        raise ValueError(
            f"Argument `build_model`: {name}() returned a compiled model (optimizer "
            f"{type(model.optimizer).__name__}); return it uncompiled: compare compiles each run with its own "
            "optimizer, and takes the loss and metrics from `loss=`, `metrics=` (or a compiled `template=`)."
        )


def _shapes(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {np.shape(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(np.shape(v)) for v in value) + "]"
    return str(np.shape(value))


def check_first_batch(template: Any, loss: Any, metrics: list, batches: Batches, validation: Any) -> None:
    """Compile the weights' model and test it on the first batch (and on a few validation
    samples), so that a wrong loss or data of the wrong shape is named before anything trains."""
    import keras

    try:
        template.compile(optimizer=keras.optimizers.SGD(), loss=loss, metrics=[fresh_metric(m) for m in metrics])
    except Exception as error:
        raise ValueError(
            f"Argument `loss`={loss!r} or `metrics`={metrics!r}: Keras cannot compile with it: {error}"
        ) from error
    probes = [("data", batches.epochs[0][0])]
    if validation is not None:
        probes.append(("validation_data", (_head(validation[0], 8), validation[1][:8])))
    for argument, (x, y) in probes:
        try:
            template.test_on_batch(x, y)
        except Exception as error:
            inputs = [tuple(t.shape) for t in getattr(template, "inputs", None) or []]
            outputs = [tuple(t.shape) for t in getattr(template, "outputs", None) or []]
            raise ValueError(
                f"Argument `{argument}` does not fit the model: a batch of x {_shapes(x)} and y {_shapes(y)} "
                f"for a model with inputs {inputs or '?'} and outputs {outputs or '?'}: "
                f"{type(error).__name__}: {error}"
            ) from error


def _head(x: Any, n: int) -> Any:
    if isinstance(x, dict):
        return {k: v[:n] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:n] for v in x]
    return x[:n]


def validation_arrays(validation_data: Any) -> Any:
    """(x_val, y_val) as NumPy arrays, or None: arrays stay in their order, other data is read once."""
    if validation_data is None:
        return None
    if is_arrays(validation_data):
        return as_arrays(validation_data, "validation_data")
    parts = Batches(validation_data, epochs=1, argument="validation_data").epochs[0]
    x0 = parts[0][0]
    if isinstance(x0, dict):
        x = {k: np.concatenate([p[0][k] for p in parts]) for k in x0}
    elif isinstance(x0, list):
        x = [np.concatenate([p[0][i] for p in parts]) for i in range(len(x0))]
    else:
        x = np.concatenate([p[0] for p in parts])
    return x, np.concatenate([p[1] for p in parts])


def classes_of(template: Any) -> int:
    """The chance level's classes of a classifier: its output's last size (2 for one unit)."""
    outputs = getattr(template, "outputs", None) or []
    if len(outputs) != 1:
        return 0
    units = outputs[0].shape[-1]
    return 2 if units == 1 else int(units or 0)


def _is_loader(value: Any) -> bool:
    """A function to call for the data (not a dataset, generator or PyDataset, which are callable-free)."""
    return callable(value) and not any(
        hasattr(value, a) for a in ("__iter__", "__getitem__", "__next__", "as_numpy_iterator")
    )


def _call_loader(value: Any, argument: str) -> tuple[Any, str | None]:
    """What a loader ('module:function' or a function) returns, and its name; other values as they are."""
    name = value if isinstance(value, str) else None
    if isinstance(value, str):
        value = user_code.load(value, argument)
    if not _is_loader(value):
        return value, name
    name = name or function_name(value)
    try:
        return value(), name
    except Exception as error:
        raise ValueError(
            f"Argument `{argument}`: the loader {name!r} failed: {type(error).__name__}: {error}"
        ) from error


def read_loader(data: Any, validation_data: Any) -> tuple[Any, Any, str]:
    """(training data, validation data, a name for the configuration) from `data` and
    `validation_data`: loaders are called, and `((x, y), (x_val, y_val))` is split."""
    called = _is_loader(data) or isinstance(data, str)
    data, name = _call_loader(data, "data")
    validation_data, _ = _call_loader(validation_data, "validation_data")
    if called:  # a loader's ((x, y), (x_val, y_val)); given directly, a pair of pairs is two batches
        data, found = split_loaded(data)
        validation_data = found if validation_data is None else validation_data
    return data, validation_data, name or type(data).__name__


def describe_model(model: Any, name: str) -> str:
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return f"own model {model.name!r} ({count:,} weights) from {name.removeprefix('__main__:')}"


def is_accuracy(metric: Any) -> bool:
    name = metric if isinstance(metric, str) else getattr(metric, "name", "") or ""
    return "acc" in str(name).lower()


def function_name(function: Any) -> str:
    """'module:qualname' of a function, for the configuration (importable or not)."""
    return f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"
