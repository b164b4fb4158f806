"""The one registry of optimizer test cases. Every generic test runs over it, on every backend.

A case names the keras_adaptive class and its arguments, the NumPy reference of its rule,
and, where another implementation has exactly the same algorithm, how to build that peer:
`torch` (a torch.optim class name and its arguments, read from `keras_adaptive.pytorch`),
`optax` (a factory of the optax transformation) and `keras` (a factory of the Keras built-in). Epsilons are 1e-2 or more
so that a misplaced epsilon shows. Adding an optimizer means adding its lines here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import keras

import keras_adaptive
from tests import reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    cls: type
    kwargs: dict
    reference: Callable
    optax: Optional[Callable[[], Any]] = None
    keras: Optional[Callable[[], Any]] = None

    @property
    def torch(self) -> Optional[tuple[str, dict]]:
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
    Case("sgd", K.SGD, dict(learning_rate=0.1), ref.sgd_step,
         optax=_optax("sgd", 0.1),
         keras=lambda: keras.optimizers.SGD(0.1)),
    Case("sgd-momentum", K.SGD, dict(learning_rate=0.05, momentum=0.9), ref.sgd_step,
         optax=_optax("sgd", 0.05, momentum=0.9),
         keras=lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
    Case("sgd-nesterov", K.SGD, dict(learning_rate=0.05, momentum=0.8, nesterov=True), ref.sgd_step,
         optax=_optax("sgd", 0.05, momentum=0.8, nesterov=True)),
    Case("adagrad", K.AdaGrad, dict(learning_rate=0.1, epsilon=0.05), ref.adagrad_step,
         optax=_optax("adagrad", 0.1, initial_accumulator_value=0.0, eps=0.05)),
    Case("adagrad-outside", K.AdaGrad, dict(learning_rate=0.1, epsilon=0.05, epsilon_placement="outside"),
         ref.adagrad_step),
    Case("adagrad-initial-accumulator", K.AdaGrad,
         dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.02, epsilon_placement="outside"),
         ref.adagrad_step),
    Case("adagrad-keras", K.AdaGrad, dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.02),
         ref.adagrad_step, optax=_optax("adagrad", 0.1, initial_accumulator_value=0.1, eps=0.02),
         keras=lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.02)),
    Case("rmsprop", K.RMSProp, dict(learning_rate=0.01, epsilon=0.05), ref.rmsprop_step,
         optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05),
         keras=lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=0.05)),
    Case("rmsprop-outside", K.RMSProp, dict(learning_rate=0.01, rho=0.95, epsilon=0.05, epsilon_placement="outside"),
         ref.rmsprop_step, optax=_optax("rmsprop", 0.01, decay=0.95, eps=0.05, eps_in_sqrt=False)),
    Case("rmsprop-centered", K.RMSProp, dict(learning_rate=0.01, epsilon=0.05, centered=True), ref.rmsprop_step,
         optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05, centered=True),
         keras=lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=0.05, centered=True)),
    Case("rmsprop-momentum", K.RMSProp, dict(learning_rate=0.01, epsilon=0.05, momentum=0.9), ref.rmsprop_step,
         optax=_optax("rmsprop", 0.01, decay=0.9, eps=0.05, momentum=0.9)),
    Case("rmsprop-centered-momentum-outside", K.RMSProp,
         dict(learning_rate=0.01, rho=0.99, epsilon=0.02, momentum=0.5, centered=True, epsilon_placement="outside"),
         ref.rmsprop_step),
    Case("adadelta", K.AdaDelta, dict(learning_rate=1.0, rho=0.9, epsilon=0.01), ref.adadelta_step,
         optax=_optax("adadelta", 1.0, rho=0.9, eps=0.01),
         keras=lambda: keras.optimizers.Adadelta(1.0, rho=0.9, epsilon=0.01)),
    Case("adadelta-momentum", K.AdaDelta, dict(learning_rate=0.5, rho=0.95, epsilon=0.02, momentum=0.9),
         ref.adadelta_step),
    Case("adam", K.Adam, dict(learning_rate=0.01, epsilon=0.05), ref.adam_step,
         optax=_optax("adam", 0.01, eps=0.05)),
    Case("adam-inside", K.Adam, dict(learning_rate=0.01, beta_2=0.99, epsilon=0.05, epsilon_placement="inside"),
         ref.adam_step, optax=_optax("adam", 0.01, b2=0.99, eps=0.0, eps_root=0.05)),
    Case("adam-amsgrad", K.Adam, dict(learning_rate=0.01, beta_1=0.8, epsilon=0.02, amsgrad=True), ref.adam_step),
    Case("adam-no-bias-correction", K.Adam, dict(learning_rate=0.01, epsilon=0.05, bias_correction=False),
         ref.adam_step),
    Case("amsgrad-no-bias-correction", K.Adam,
         dict(learning_rate=0.01, beta_2=0.99, epsilon=0.05, amsgrad=True, bias_correction=False), ref.adam_step,
         optax=_optax("amsgrad", 0.01, b2=0.99, eps=0.05, bias_correction_mu=False, bias_correction_nu=False)),
    Case("adamw", K.AdamW, dict(learning_rate=0.01, epsilon=0.05, weight_decay=0.1), ref.adamw_step,
         optax=_optax("adamw", 0.01, eps=0.05, weight_decay=0.1)),
    Case("adamw-amsgrad", K.AdamW, dict(learning_rate=0.02, epsilon=0.02, weight_decay=0.05, amsgrad=True),
         ref.adamw_step),
    Case("nadam", K.Nadam, dict(learning_rate=0.01, epsilon=0.05), ref.nadam_step),
    Case("nadam-keras-schedule", K.Nadam, dict(learning_rate=0.01, epsilon=0.05, momentum_decay=1.0),
         ref.nadam_step, keras=lambda: keras.optimizers.Nadam(0.01, epsilon=0.05)),
]

CASE_IDS = [case.id for case in CASES]
BY_ID = {case.id: case for case in CASES}

# Every optimizer of the package has at least one case.
assert {c.cls for c in CASES} == set(keras_adaptive.OPTIMIZERS.values())
