"""What the benchmark compares: one row per algorithm, with every implementation of it.

Each row names a keras_adaptive configuration, the Keras built-in namesake, and the
optax peer of the same algorithm; the `torch.optim` peer is read in the worker from
`keras_adaptive.pytorch.torch_equivalent` (the table the torch fast path is chosen by), its
foreach and, where `torch.optim` has one, fused implementations both timed. The keras_adaptive rows use
PyTorch's conventions where PyTorch has the algorithm (so the numbers match the peers
and the torch backend can take PyTorch's kernels); the `(... inside)` rows use our own
defaults, which no framework kernel implements, to time the generic multi-tensor path.

Factories are strings of Python evaluated in the worker after the backend is imported,
so this module imports nothing heavy and `run.py` can read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    keras_adaptive: str  # expression with `ka` = keras_adaptive
    keras: str  # expression with `keras`
    optax: str | None  # expression with `optax`
    main: bool = True  # one of the seven optimizers (False: a variant)


ROWS = [
    Row(
        "sgd",
        "SGD (momentum 0.9)",
        "ka.SGD(learning_rate=0.01, momentum=0.9)",
        "keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)",
        "optax.sgd(0.01, momentum=0.9)",
    ),
    Row(
        "adagrad",
        "AdaGrad (eps outside)",
        'ka.AdaGrad(learning_rate=0.01, epsilon=1e-10, epsilon_placement="outside")',
        "keras.optimizers.Adagrad(learning_rate=0.01)",
        "optax.adagrad(0.01, initial_accumulator_value=0.0, eps=1e-10)",
    ),
    Row(
        "rmsprop",
        "RMSProp (eps outside)",
        'ka.RMSProp(learning_rate=0.001, rho=0.99, epsilon=1e-8, epsilon_placement="outside")',
        "keras.optimizers.RMSprop(learning_rate=0.001, rho=0.99)",
        "optax.rmsprop(0.001, decay=0.99, eps=1e-8)",
    ),
    Row(
        "adadelta",
        "AdaDelta (rho 0.9)",
        "ka.AdaDelta(learning_rate=1.0, rho=0.9, epsilon=1e-6)",
        "keras.optimizers.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6)",
        "optax.adadelta(1.0, rho=0.9, eps=1e-6)",
    ),
    Row(
        "adam",
        "Adam",
        "ka.Adam(learning_rate=0.001, epsilon=1e-8)",
        "keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-8)",
        "optax.adam(0.001)",
    ),
    Row(
        "adamw",
        "AdamW (wd 0.01)",
        "ka.AdamW(learning_rate=0.001, epsilon=1e-8, weight_decay=0.01)",
        "keras.optimizers.AdamW(learning_rate=0.001, epsilon=1e-8, weight_decay=0.01)",
        "optax.adamw(0.001, weight_decay=0.01)",
    ),
    Row(
        "nadam",
        "Nadam",
        "ka.Nadam(learning_rate=0.001, epsilon=1e-8)",
        "keras.optimizers.Nadam(learning_rate=0.001, epsilon=1e-8)",
        "optax.nadam(0.001)",
    ),
    Row(
        "adam_amsgrad",
        "Adam (AMSGrad)",
        "ka.Adam(learning_rate=0.001, epsilon=1e-8, amsgrad=True)",
        "keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-8, amsgrad=True)",
        "optax.amsgrad(0.001)",
        main=False,
    ),
    Row(
        "adagrad_inside",
        "AdaGrad (eps inside, default)",
        "ka.AdaGrad(learning_rate=0.01)",
        "keras.optimizers.Adagrad(learning_rate=0.01)",
        None,
        main=False,
    ),
    Row(
        "rmsprop_inside",
        "RMSProp (eps inside, default)",
        "ka.RMSProp(learning_rate=0.001)",
        "keras.optimizers.RMSprop(learning_rate=0.001)",
        None,
        main=False,
    ),
]

QUICK_ROWS = ("adam", "rmsprop_inside")  # one fast-path row, one generic-path row

# (number of tensors, shape of each): about 1M and 16.8M float32 parameters.
SIZES = {"1M": (200, (100, 50)), "16M": (4, (2048, 2048))}
QUICK_SIZES = {"1M": (20, (100, 50)), "16M": (2, (256, 256))}

FIT_MODELS = ("mlp", "lstm")
QUICK_FIT_MODELS = ("mlp",)  # the LSTM compiles for 10+ s on JAX
FIT_ROWS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam")
QUICK_FIT_ROWS = ("adam",)


def rows(quick: bool, only: list | None = None) -> list:
    wanted = only or (QUICK_ROWS if quick else [r.id for r in ROWS])
    return [r for r in ROWS if r.id in wanted]


def row(row_id: str) -> Row:
    return next(r for r in ROWS if r.id == row_id)
