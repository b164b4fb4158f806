"""The one registry of optimizer test cases. Every generic test runs over it, on every backend.

A case names the keras_adaptive class and its arguments, the NumPy reference of its rule,
and, where another implementation has exactly the same algorithm, how to build that peer:
`torch` (a torch.optim class name and its arguments, read from `keras_adaptive.pytorch`),
`optax` (a factory of the optax transformation) and `keras` (a factory of the Keras built-in). Epsilons are 1e-2 or more
so that a misplaced epsilon shows. Adding an optimizer means adding its lines here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from hypothesis import strategies as st

import keras_adaptive
from tests import reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    cls: type
    kwargs: dict
    reference: Callable
    optax: Callable[[], Any] | None = None
    keras: Callable[[], Any] | None = None

    @property
    def torch(self) -> tuple[str, dict] | None:
        """The `torch.optim` peer (class name, arguments), as `keras_adaptive.pytorch` declares
        it: the table the torch kernels are chosen by. A wrong entry there fails the peer test."""
        return keras_adaptive.pytorch.torch_equivalent(self.make())

    def make(self, **overrides: Any) -> keras_adaptive.AdaptiveOptimizer:
        return self.cls(**{**self.kwargs, **overrides})

    def reference_kwargs(self) -> dict:
        """The arguments of the reference: the case's, less the learning rate."""
        return {k: v for k, v in self.kwargs.items() if k != "learning_rate"}


def _optax(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def build():
        import optax

        return getattr(optax, name)(*args, **kwargs)

    return build


K = keras_adaptive
CASES = [
    Case(
        "sgd",
        K.SGD,
        dict(learning_rate=0.1),
        ref.sgd_step,
        optax=_optax("sgd", 0.1),
        keras=lambda: keras.optimizers.SGD(0.1),
    ),
    Case(
        "sgd-momentum",
        K.SGD,
        dict(learning_rate=0.05, momentum=0.9),
        ref.sgd_step,
        optax=_optax("sgd", 0.05, momentum=0.9),
        keras=lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    ),
    Case(
        "sgd-nesterov",
        K.SGD,
        dict(learning_rate=0.05, momentum=0.8, nesterov=True),
        ref.sgd_step,
        optax=_optax("sgd", 0.05, momentum=0.8, nesterov=True),
    ),
    Case(
        "adagrad",
        K.AdaGrad,
        dict(learning_rate=0.1, epsilon=0.05),
        ref.adagrad_step,
        optax=_optax("adagrad", 0.1, initial_accumulator_value=0.0, eps=0.05),
    ),
    Case(
        "adagrad-outside",
        K.AdaGrad,
        dict(learning_rate=0.1, epsilon=0.05, epsilon_placement="outside"),
        ref.adagrad_step,
    ),
    Case(
        "adagrad-initial-accumulator",
        K.AdaGrad,
        dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.02, epsilon_placement="outside"),
        ref.adagrad_step,
    ),
    Case(
        "adagrad-keras",
        K.AdaGrad,
        dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.02),
        ref.adagrad_step,
        optax=_optax("adagrad", 0.1, initial_accumulator_value=0.1, eps=0.02),
        keras=lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.02),
    ),
    Case(
        "rmsprop",
        K.RMSProp,
        dict(learning_rate=0.01, epsilon=0.05),
        ref.rmsprop_step,
        optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05),
        keras=lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=0.05),
    ),
    Case(
        "rmsprop-outside",
        K.RMSProp,
        dict(learning_rate=0.01, rho=0.95, epsilon=0.05, epsilon_placement="outside"),
        ref.rmsprop_step,
        optax=_optax("rmsprop", 0.01, decay=0.95, eps=0.05, eps_in_sqrt=False),
    ),
    Case(
        "rmsprop-centered",
        K.RMSProp,
        dict(learning_rate=0.01, epsilon=0.05, centered=True),
        ref.rmsprop_step,
        optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05, centered=True),
        keras=lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=0.05, centered=True),
    ),
    Case(
        "rmsprop-momentum",
        K.RMSProp,
        dict(learning_rate=0.01, epsilon=0.05, momentum=0.9),
        ref.rmsprop_step,
        optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05, momentum=0.9),
    ),
    Case(
        "rmsprop-centered-momentum-outside",
        K.RMSProp,
        dict(learning_rate=0.01, rho=0.99, epsilon=0.02, momentum=0.5, centered=True, epsilon_placement="outside"),
        ref.rmsprop_step,
    ),
    Case(
        "adadelta",
        K.AdaDelta,
        dict(learning_rate=1.0, rho=0.9, epsilon=0.01),
        ref.adadelta_step,
        optax=_optax("adadelta", 1.0, rho=0.9, eps=0.01),
        keras=lambda: keras.optimizers.Adadelta(1.0, rho=0.9, epsilon=0.01),
    ),
    Case(
        "adadelta-momentum",
        K.AdaDelta,
        dict(learning_rate=0.5, rho=0.95, epsilon=0.02, momentum=0.9),
        ref.adadelta_step,
    ),
    Case("adam", K.Adam, dict(learning_rate=0.01, epsilon=0.05), ref.adam_step, optax=_optax("adam", 0.01, eps=0.05)),
    Case(
        "adam-inside",
        K.Adam,
        dict(learning_rate=0.01, beta_2=0.99, epsilon=0.05, epsilon_placement="inside"),
        ref.adam_step,
        optax=_optax("adam", 0.01, b2=0.99, eps=0.0, eps_root=0.05),
    ),
    Case("adam-amsgrad", K.Adam, dict(learning_rate=0.01, beta_1=0.8, epsilon=0.02, amsgrad=True), ref.adam_step),
    Case(
        "adam-no-bias-correction", K.Adam, dict(learning_rate=0.01, epsilon=0.05, bias_correction=False), ref.adam_step
    ),
    Case(
        "amsgrad-no-bias-correction",
        K.Adam,
        dict(learning_rate=0.01, beta_2=0.99, epsilon=0.05, amsgrad=True, bias_correction=False),
        ref.adam_step,
        optax=_optax("amsgrad", 0.01, b2=0.99, eps=0.05, bias_correction_mu=False, bias_correction_nu=False),
    ),
    Case(
        "adamw",
        K.AdamW,
        dict(learning_rate=0.01, epsilon=0.05, weight_decay=0.1),
        ref.adamw_step,
        optax=_optax("adamw", 0.01, eps=0.05, weight_decay=0.1),
    ),
    Case(
        "adamw-amsgrad",
        K.AdamW,
        dict(learning_rate=0.02, epsilon=0.02, weight_decay=0.05, amsgrad=True),
        ref.adamw_step,
    ),
    Case("nadam", K.Nadam, dict(learning_rate=0.01, epsilon=0.05), ref.nadam_step),
    Case(
        "nadam-keras-schedule",
        K.Nadam,
        dict(learning_rate=0.01, epsilon=0.05, momentum_decay=1.0),
        ref.nadam_step,
        keras=lambda: keras.optimizers.Nadam(0.01, epsilon=0.05),
    ),
]

CASE_IDS = [case.id for case in CASES]
BY_ID = {case.id: case for case in CASES}


# --- per class: what the tests that run once per optimizer class read ------------------------

# Valid ranges of the hyperparameters for the property tests, with two bounds (see
# tests/test_properties.py): epsilon >= 1e-4 and decay rates <= 0.999.
_log_uniform = lambda lo, hi: st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))  # noqa: E731
_lr = _log_uniform(1e-4, 1.0)
_eps = _log_uniform(1e-4, 1.0)
_decay = st.floats(0.0, 0.999)
_placement = st.sampled_from(["inside", "outside"])


@st.composite
def _sgd_hyperparameters(draw):
    momentum = draw(st.one_of(st.just(0.0), _decay))
    return dict(learning_rate=draw(_lr), momentum=momentum, nesterov=momentum > 0 and draw(st.booleans()))


@dataclasses.dataclass(frozen=True)
class ClassCases:
    representative: str  # the case with the most state of its class: for tests run once per class
    train: dict  # what a person would pick to train the MNIST MLP (tests/test_training.py, test_precision.py)
    train_small: dict  # ... and the small regression MLP of tests/test_keras.py (4 epochs)
    hyperparameters: Any  # a hypothesis strategy of valid arguments (tests/test_properties.py)


BY_CLASS: dict[type, ClassCases] = {
    K.SGD: ClassCases(
        "sgd-nesterov",
        dict(learning_rate=0.05, momentum=0.9),
        dict(learning_rate=0.05, momentum=0.9),
        _sgd_hyperparameters(),
    ),
    K.AdaGrad: ClassCases(
        "adagrad-initial-accumulator",
        dict(learning_rate=0.05),
        dict(learning_rate=0.05),
        st.fixed_dictionaries(
            dict(
                learning_rate=_lr,
                initial_accumulator_value=st.floats(0.0, 1.0),
                epsilon=_eps,
                epsilon_placement=_placement,
            )
        ),
    ),
    K.RMSProp: ClassCases(
        "rmsprop-centered-momentum-outside",
        dict(learning_rate=1e-3),
        dict(learning_rate=0.003),
        st.fixed_dictionaries(
            dict(
                learning_rate=_lr,
                rho=_decay,
                epsilon=_eps,
                momentum=st.one_of(st.just(0.0), _decay),
                centered=st.booleans(),
                epsilon_placement=_placement,
            )
        ),
    ),
    K.AdaDelta: ClassCases(
        "adadelta-momentum",
        dict(learning_rate=1.0),
        dict(learning_rate=1.0),
        st.fixed_dictionaries(
            dict(
                learning_rate=_log_uniform(1e-2, 2.0),
                rho=_decay,
                epsilon=_eps,
                momentum=st.one_of(st.just(0.0), _decay),
            )
        ),
    ),
    K.Adam: ClassCases(
        "adam-amsgrad",
        dict(learning_rate=1e-3),
        dict(learning_rate=0.003),
        st.fixed_dictionaries(
            dict(
                learning_rate=_lr,
                beta_1=_decay,
                beta_2=_decay,
                epsilon=_eps,
                amsgrad=st.booleans(),
                bias_correction=st.booleans(),
                epsilon_placement=_placement,
            )
        ),
    ),
    K.AdamW: ClassCases(
        "adamw-amsgrad",
        dict(learning_rate=1e-3),
        dict(learning_rate=0.003),
        st.fixed_dictionaries(
            dict(
                learning_rate=_lr,
                weight_decay=st.floats(0.0, 0.5),
                beta_1=_decay,
                beta_2=_decay,
                epsilon=_eps,
                amsgrad=st.booleans(),
            )
        ),
    ),
    K.Nadam: ClassCases(
        "nadam",
        dict(learning_rate=1e-3),
        dict(learning_rate=0.003),
        st.fixed_dictionaries(
            dict(learning_rate=_lr, beta_1=_decay, beta_2=_decay, epsilon=_eps, momentum_decay=st.floats(0.0, 1.0))
        ),
    ),
}
REPRESENTATIVES = [entry.representative for entry in BY_CLASS.values()]

# (That every optimizer of the package has its cases, its entry here and its references is
# tests/test_registry.py's to check, with a message saying what is missing.)
