"""The optimizers the GUI offers and their hyperparameters, read from the library.

Nothing here knows an optimizer's arguments: they come from `keras_adaptive.OPTIMIZERS`
(and Keras' built-in namesakes, offered for reference), from each class's `__init__`
signature (walking up the class chain while `**kwargs` passes arguments on, so AdamW
shows Adam's betas), with the defaults written there. Values typed by a person are
parsed as plain numbers, booleans or choices (never evaluated), then checked by
building the optimizer: the library's own `ValueError` is the message shown.

keras is imported only inside functions, so the modules that spawn workers can import
this one.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

# Keras' base optimizer arguments: not shown per optimizer (one exception: a class whose
# own signature gives one a real default, like AdamW's weight_decay=0.004).
BASE_ARGUMENTS = frozenset(
    {
        "weight_decay",
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "use_ema",
        "ema_momentum",
        "ema_overwrite_frequency",
        "loss_scale_factor",
        "gradient_accumulation_steps",
        "multi_tensor",
        "name",
    }
)
KERAS_PREFIX = "keras."
MAX_ABS_VALUE = 1e6  # "absurd" values: a hyperparameter beyond this is refused


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "float", "int", "bool" or "choice"
    default: Any
    choices: tuple = ()

    def default_text(self) -> Any:
        if self.kind in ("float", "int"):
            return format_number(self.default)
        return self.default


@dataclass(frozen=True)
class OptimizerEntry:
    key: str  # "adam" (keras_adaptive) or "keras.Adam" (built-in, for reference)
    cls: Any = field(repr=False)
    params: tuple  # of Param
    library: str  # "keras_adaptive" or "keras"

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]


def format_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    return f"{float(value):.6g}" if isinstance(value, float) else str(value)


def _choices() -> dict[str, tuple]:
    from keras_adaptive.math import EPSILON_PLACEMENTS

    return {"epsilon_placement": tuple(EPSILON_PLACEMENTS)}


def _base_defaults() -> dict:
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    return {p.name: p.default for p in inspect.signature(BaseOptimizer.__init__).parameters.values()}


def _params_of(cls: Any) -> tuple:
    """Hyperparameters of `cls`, in signature order, from its class chain."""
    choices = _choices()
    base_defaults = _base_defaults()
    found: dict[str, Param] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        passes_on = False
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                passes_on = True
                continue
            if p.name == "self" or p.kind is p.VAR_POSITIONAL or p.name in found:
                continue
            if p.default is inspect.Parameter.empty:
                continue
            if p.name in BASE_ARGUMENTS and not (klass is cls and p.default != base_defaults.get(p.name)):
                continue
            default = p.default
            if isinstance(default, bool):
                kind = "bool"
            elif isinstance(default, str):
                if p.name not in choices:
                    continue  # free-text strings (names) are not hyperparameters
                kind = "choice"
            elif isinstance(default, int):
                kind = "int"
            elif isinstance(default, float):
                kind = "float"
            else:
                continue
            found[p.name] = Param(p.name, kind, default, choices.get(p.name, ()))
        if not passes_on:
            break
    return tuple(found.values())


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, OptimizerEntry]:
    """Every optimizer the GUI offers: keras_adaptive's first, then Keras' namesakes."""
    import keras

    import keras_adaptive

    entries = {}
    for key, cls in keras_adaptive.OPTIMIZERS.items():
        entries[key] = OptimizerEntry(key, cls, _params_of(cls), "keras_adaptive")
    builtins = {name.lower(): name for name in dir(keras.optimizers)}
    for key in keras_adaptive.OPTIMIZERS:
        name = builtins.get(key)
        if name is None:
            continue
        cls = getattr(keras.optimizers, name)
        entries[KERAS_PREFIX + name] = OptimizerEntry(KERAS_PREFIX + name, cls, _params_of(cls), "keras")
    return entries


def all_param_names() -> list[str]:
    """The union of every optimizer's hyperparameter names, in first-seen order."""
    names: list[str] = []
    for entry in catalog().values():
        names += [n for n in entry.param_names if n not in names]
    return names


def find_param(name: str) -> Param:
    for entry in catalog().values():
        for p in entry.params:
            if p.name == name:
                return p
    raise KeyError(name)


def parse_value(param: Param, raw: Any, where: str = "") -> Any:
    """A person's input for `param` as a typed value; ValueError says what is wrong."""
    label = f"{where}`{param.name}`"
    if param.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{label} must be true or false, got {raw!r}.")
    if param.kind == "choice":
        text = str(raw).strip()
        if text not in param.choices:
            raise ValueError(f"{label} must be one of {list(param.choices)}, got {raw!r}.")
        return text
    text = str(raw).strip() if raw is not None else ""
    if text == "":
        raise ValueError(f"{label} is empty: enter a number.")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{label} must be a number, got {text!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, got {text!r}.")
    if abs(value) > MAX_ABS_VALUE:
        raise ValueError(f"{label}={text} is absurdly large (the limit is {MAX_ABS_VALUE:g}).")
    if param.kind == "int":
        if value != int(value):
            raise ValueError(f"{label} must be a whole number, got {text!r}.")
        return int(value)
    return value


def resolve_key(name: str) -> str:
    """`"Adam"` -> `"adam"`, `"keras.adam"` -> `"keras.Adam"`; ValueError if unknown."""
    entries = catalog()
    if name in entries:
        return name
    lowered = {key.lower(): key for key in entries}
    key = lowered.get(str(name).strip().lower())
    if key is None:
        raise ValueError(f"Unknown optimizer {name!r}; choose from {list(entries)}.")
    return key


def build_kwargs(key: str, raw: dict, where: str = "") -> dict:
    """Typed keyword arguments for optimizer `key` from raw values, checked by the
    optimizer's own constructor (its ValueError names the argument)."""
    entry = catalog()[resolve_key(key)]
    unknown = set(raw) - set(entry.param_names)
    if unknown:
        raise ValueError(f"{where}{entry.key} has no hyperparameter {sorted(unknown)}; it takes {entry.param_names}.")
    kwargs = {p.name: parse_value(p, raw[p.name], where) for p in entry.params if p.name in raw}
    check(entry.key, kwargs, where)
    return kwargs


def check(key: str, kwargs: dict, where: str = "") -> None:
    entry = catalog()[resolve_key(key)]
    try:
        entry.cls(**kwargs)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}{error}") from None


def make(key: str, kwargs: dict) -> Any:
    """The optimizer itself (called in the worker, on its backend)."""
    return catalog()[resolve_key(key)].cls(**kwargs)


def describe(key: str, kwargs: dict) -> str:
    """A short label: the key, its learning rate (even at its default: it is what people compare
    first), and the other hyperparameters that differ from its defaults."""
    entry = catalog()[resolve_key(key)]
    defaults = {p.name: p.default for p in entry.params}
    values = {"learning_rate": defaults["learning_rate"]} if "learning_rate" in defaults else {}
    values.update(kwargs)
    changed = [
        f"{name}={format_number(value)}"
        for name, value in values.items()
        if name in defaults and (value != defaults[name] or name == "learning_rate")
    ]
    return f"{entry.key} ({', '.join(changed)})" if changed else entry.key


def split_spec(spec: str) -> tuple[str, dict]:
    """`"rmsprop:learning_rate=0.01:centered=true"` -> ("rmsprop", {"learning_rate": "0.01", ...}),
    values still raw text (checked later by `build_kwargs`)."""
    parts = [p.strip() for p in str(spec).split(":")]
    if not parts[0]:
        raise ValueError(f"Empty optimizer name in {spec!r}.")
    raw = {}
    for part in parts[1:]:
        if "=" not in part:
            raise ValueError(f"In {spec!r}: {part!r} is not name=value.")
        name, value = part.split("=", 1)
        raw[name.strip()] = value.strip()
    return parts[0], raw


def split_spec_list(text: str) -> list[tuple[str, dict]]:
    """A comma-separated list of optimizer specs (the command line's `--optimizers`)."""
    return [split_spec(spec) for spec in str(text).split(",") if spec.strip()]


def parse_spec(spec: str) -> tuple[str, dict]:
    """`"rmsprop:learning_rate=0.01:centered=true"` -> ("rmsprop", {...}), checked.

    The command line's and the API's way to name an optimizer with hyperparameters.
    """
    name, raw = split_spec(spec)
    key = resolve_key(name)
    return key, build_kwargs(key, raw, where=f"{key}: ")


def full_kwargs(key: str, kwargs: dict) -> dict:
    """Every hyperparameter of optimizer `key`: its defaults, updated with `kwargs`."""
    entry = catalog()[resolve_key(key)]
    values = {p.name: p.default for p in entry.params}
    values.update(kwargs)
    return values


def summary_line(key: str) -> str:
    """The first line of the optimizer's docstring (the page's one-line explanation)."""
    doc = inspect.getdoc(catalog()[resolve_key(key)].cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@functools.cache
def param_help(key: str, name: str) -> str:
    """What the optimizer's docstring says of argument `name` (its `Args:` entry, joined), or ""."""
    doc = inspect.getdoc(catalog()[resolve_key(key)].cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return ""
    found: list[str] = []
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            if found:
                break
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        if depth == indent:
            if found:
                break
            if line.strip().startswith(f"{name}:"):
                found.append(line.strip()[len(name) + 1 :].strip())
        elif found:
            found.append(line.strip())
    return " ".join(found)
