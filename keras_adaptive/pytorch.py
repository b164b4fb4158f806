"""Which configuration of each optimizer is exactly a `torch.optim` optimizer: the one table.

For each class, the `torch.optim` optimizer of the same algorithm, the conditions under
which our configuration is that algorithm, and how our arguments name PyTorch's. The torch
fast path takes PyTorch's own kernel exactly when `torch_equivalent` finds one
(`backend/fast_paths.py`); the peer tests build `torch.optim` from it (`tests/cases.py`),
the benchmarks time it against ours, and `from_torch` ports a PyTorch configuration.

Only each class's own arguments are translated. Keras' base arguments are not: our
`weight_decay` is decoupled (`w -= lr*wd*w`), which is `torch.optim.AdamW`'s but the L2
penalty of PyTorch's others, so only `AdamW` maps it; clipping, EMA and gradient
accumulation have no `torch.optim` argument and happen before the update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keras_adaptive.adadelta import AdaDelta
from keras_adaptive.adagrad import AdaGrad
from keras_adaptive.adam import Adam, AdamW
from keras_adaptive.nadam import Nadam
from keras_adaptive.optimizer import AdaptiveOptimizer
from keras_adaptive.rmsprop import RMSProp
from keras_adaptive.sgd import SGD


@dataclass(frozen=True)
class Equivalent:
    """`torch.optim.<torch>` is our class's algorithm when every `fixed` argument of ours has
    its value there (PyTorch has no such argument: it always behaves so); `names` maps our
    arguments to PyTorch's (a pair of ours to one tuple of PyTorch's: Adam's `betas`)."""

    torch: str
    names: dict
    fixed: dict = field(default_factory=dict)
    when: Callable[[Any], bool] | None = None  # a further condition on our configuration


EQUIVALENTS: dict[type, Equivalent] = {
    SGD: Equivalent("SGD", {"momentum": "momentum", "nesterov": "nesterov"}),
    AdaGrad: Equivalent(
        "Adagrad",
        {"epsilon": "eps", "initial_accumulator_value": "initial_accumulator_value"},
        fixed={"epsilon_placement": "outside"},
    ),
    RMSProp: Equivalent(
        "RMSprop",
        {"rho": "alpha", "epsilon": "eps", "momentum": "momentum", "centered": "centered"},
        fixed={"epsilon_placement": "outside"},
    ),
    # PyTorch's Adadelta has no momentum.
    AdaDelta: Equivalent("Adadelta", {"rho": "rho", "epsilon": "eps"}, fixed={"momentum": 0}),
    Adam: Equivalent(
        "Adam",
        {("beta_1", "beta_2"): "betas", "epsilon": "eps", "amsgrad": "amsgrad"},
        fixed={"bias_correction": True, "epsilon_placement": "outside"},
    ),
    AdamW: Equivalent(
        "AdamW",
        {("beta_1", "beta_2"): "betas", "epsilon": "eps", "amsgrad": "amsgrad", "weight_decay": "weight_decay"},
        fixed={"bias_correction": True, "epsilon_placement": "outside"},
    ),
    Nadam: Equivalent("NAdam", {("beta_1", "beta_2"): "betas", "epsilon": "eps", "momentum_decay": "momentum_decay"}),
}


def matching(optimizer: AdaptiveOptimizer, cls: type | None = None) -> Equivalent | None:
    """The table's entry for this optimizer (read as `cls`, default its exact class) if its
    configuration is that `torch.optim` algorithm, else None. Cheap: the torch path asks it at
    every step."""
    equivalent = EQUIVALENTS.get(type(optimizer) if cls is None else cls)
    if equivalent is None or any(getattr(optimizer, k) != v for k, v in equivalent.fixed.items()):
        return None
    if equivalent.when is not None and not equivalent.when(optimizer):
        return None
    return equivalent


def torch_equivalent(optimizer: AdaptiveOptimizer, cls: type | None = None) -> tuple[str, dict] | None:
    """`(torch.optim class name, its arguments)` with this optimizer's algorithm and numbers, or
    None where its configuration is not PyTorch's. `cls`: the table's class to read it as
    (default: the optimizer's exact class). The learning rate is given as PyTorch's `lr` where
    it is a number; a schedule stays the caller's to translate."""
    equivalent = matching(optimizer, cls)
    if equivalent is None:
        return None
    kwargs: dict = {}
    for ours, theirs in equivalent.names.items():
        value = (
            tuple(float(getattr(optimizer, n)) for n in ours) if isinstance(ours, tuple) else getattr(optimizer, ours)
        )
        kwargs[theirs] = value
    if not callable(optimizer._learning_rate):
        import keras

        kwargs = {"lr": float(keras.ops.convert_to_numpy(optimizer.learning_rate)), **kwargs}
    return equivalent.torch, kwargs


# How PyTorch computes, not what: any value gives the same algorithm.
IMPLEMENTATION_FLAGS = {"foreach", "fused", "capturable", "differentiable"}


def from_torch(name: str, **torch_kwargs: Any) -> AdaptiveOptimizer:
    """Our optimizer with the numbers of `torch.optim.<name>(params, **torch_kwargs)`.

    PyTorch's defaults fill what is not given (read from `torch.optim` itself, so torch must be
    installed); an argument PyTorch has and this table does not translate (`dampening`,
    `weight_decay` outside AdamW, `maximize`, ...) must be at its default, else ValueError."""
    cls, kwargs = keras_arguments(name, **torch_kwargs)
    return cls(**kwargs)


def keras_arguments(name: str, **torch_kwargs: Any) -> tuple[type, dict]:
    """`(our class, its arguments)` that `from_torch(name, **torch_kwargs)` builds."""
    import inspect

    import torch

    matches = [(cls, e) for cls, e in EQUIVALENTS.items() if e.torch == name]
    if not matches:
        raise ValueError(
            f"Argument `name` must be one of {sorted(e.torch for e in EQUIVALENTS.values())}, got {name!r}."
        )
    cls, equivalent = matches[0]
    signature = inspect.signature(getattr(torch.optim, name))
    defaults = {p.name: p.default for p in signature.parameters.values() if p.default is not inspect.Parameter.empty}
    unknown = set(torch_kwargs) - set(defaults)
    if unknown:
        raise ValueError(f"torch.optim.{name} has no argument(s) {sorted(unknown)}; it takes {sorted(defaults)}.")
    given = {**defaults, **torch_kwargs}
    ours: dict = dict(equivalent.fixed)
    translated = {"lr"}
    for our_name, theirs in equivalent.names.items():
        translated.add(theirs)
        if isinstance(our_name, tuple):
            ours.update(zip(our_name, (float(b) for b in given[theirs])))
        else:
            ours[our_name] = given[theirs]
    for key in set(given) - translated - IMPLEMENTATION_FLAGS:
        if given[key] != defaults[key]:
            raise ValueError(
                f"Argument `{key}`={given[key]!r} of torch.optim.{name} has no keras_adaptive equivalent here; "
                f"leave it at its default ({defaults[key]!r})."
            )
    return cls, {"learning_rate": float(given["lr"]), **ours}
