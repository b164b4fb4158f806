"""The tasks a comparison can run: data, models, initial weights, and the 2-D test functions.

Data, batch order and initial weights are made with NumPy from the seed, so every
optimizer, and every backend, starts from the same weights and sees the same batches
in the same order. keras is imported only inside the functions that build models (they
run in the worker, after `KERAS_BACKEND` is set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CELLS = ("LSTM", "GRU")
HIDDEN_UNITS = 32
VALIDATION_SIZE = 1000
ADDING_TRAIN_SIZE = 4000
ADDING_TOLERANCE = 0.04  # an adding-problem answer within this counts as right


@dataclass(frozen=True)
class Function2D:
    """A 2-D test function, written with Python operators only so the same code runs on
    NumPy arrays (for the contours) and on backend tensors (for the gradients)."""

    f: Callable[[Any, Any], Any]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    formula: str


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


QUADRATIC_CONDITION = 50.0


def quadratic(x, y):
    return 0.5 * (x**2 + QUADRATIC_CONDITION * y**2)


FUNCTIONS_2D = {
    "rosenbrock": Function2D(rosenbrock, (-1.0, 1.5), (1.0, 1.0), (-2.0, 2.0), (-1.0, 3.0), "(1-x)² + 100(y-x²)²"),
    "beale": Function2D(
        beale, (1.0, 1.5), (3.0, 0.5), (-1.0, 4.0), (-1.5, 2.0), "(1.5-x+xy)² + (2.25-x+xy²)² + (2.625-x+xy³)²"
    ),
    "quadratic": Function2D(
        quadratic,
        (-4.0, 1.0),
        (0.0, 0.0),
        (-5.0, 5.0),
        (-2.0, 2.0),
        f"½(x² + {QUADRATIC_CONDITION:g}·y²), condition number {QUADRATIC_CONDITION:g}",
    ),
}


@dataclass(frozen=True)
class Task:
    """What the page, the engine and the worker need to know of a task, in one place."""

    name: str
    kind: str  # "classify", "regress" or "2d"
    description: str
    uses_mnist: bool = False  # reads the server's MNIST file
    uses_cell: bool = False  # a recurrent model: LSTM or GRU
    uses_seq_len: bool = False  # its sequences' length is a setting
    classes: int = 0  # classification: the number of classes (chance accuracy is 1 / classes)
    # Learning rates that move visibly in a few hundred steps, by optimizer (lower-case class name);
    # the page sets them when a person picks the task. Empty: the optimizers' own defaults.
    learning_rates: tuple = ()
    # Time to target (sweeps): the default target, a validation accuracy to reach ("val_acc",
    # classifiers, checked at each epoch's evaluation) or a training loss to get under ("loss",
    # checked at every step).
    target_metric: str = "loss"
    target: float = 0.0

    def learning_rate_for(self, key: str) -> float | None:
        return dict(self.learning_rates).get(key.lower().replace("keras.", ""))

    @property
    def is_2d(self) -> bool:
        """A 2-D test function (paths over contours) rather than a model trained on data."""
        return self.kind == "2d"

    @property
    def function(self) -> Function2D:
        return FUNCTIONS_2D[self.name]

    @property
    def chance_accuracy(self) -> float | None:
        return 1.0 / self.classes if self.classes else None


TASKS = {
    "mnist-mlp": Task(
        "mnist-mlp",
        "classify",
        "MLP 784-64-10 on MNIST",
        uses_mnist=True,
        classes=10,
        target_metric="val_acc",
        target=0.9,
    ),
    "mnist-cnn": Task(
        "mnist-cnn",
        "classify",
        "small CNN (conv 8, conv 16, dense 10) on MNIST",
        uses_mnist=True,
        classes=10,
        target_metric="val_acc",
        target=0.9,
    ),
    "mnist-rnn": Task(
        "mnist-rnn",
        "classify",
        f"{HIDDEN_UNITS}-unit LSTM/GRU reading MNIST row by row (28 steps of 28 pixels)",
        uses_mnist=True,
        uses_cell=True,
        classes=10,
        target_metric="val_acc",
        target=0.8,
    ),
    "adding": Task(
        "adding",
        "regress",
        f"adding problem: a {HIDDEN_UNITS}-unit LSTM/GRU sums the 2 marked numbers of a sequence",
        uses_cell=True,
        uses_seq_len=True,
        target=0.02,  # predicting the mean sum (1) scores about 1/6
    ),
    "rosenbrock": Task(
        "rosenbrock",
        "2d",
        "Rosenbrock function " + FUNCTIONS_2D["rosenbrock"].formula,
        target=0.01,
        learning_rates=(
            ("sgd", 0.001),
            ("adagrad", 0.5),
            ("rmsprop", 0.01),
            ("adadelta", 1.0),
            ("adam", 0.05),
            ("adamw", 0.05),
            ("nadam", 0.05),
        ),
    ),
    "beale": Task(
        "beale",
        "2d",
        "Beale function " + FUNCTIONS_2D["beale"].formula,
        target=0.01,
        learning_rates=(
            ("sgd", 0.01),
            ("adagrad", 0.5),
            ("rmsprop", 0.01),
            ("adadelta", 1.0),
            ("adam", 0.05),
            ("adamw", 0.05),
            ("nadam", 0.05),
        ),
    ),
    "quadratic": Task(
        "quadratic",
        "2d",
        "ill-conditioned quadratic " + FUNCTIONS_2D["quadratic"].formula,
        target=0.01,
        learning_rates=(
            ("sgd", 0.035),
            ("adagrad", 0.5),
            ("rmsprop", 0.05),
            ("adadelta", 1.0),
            ("adam", 0.1),
            ("adamw", 0.1),
            ("nadam", 0.1),
        ),
    ),
}


# --- data --------------------------------------------------------------------------


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def mnist_data(task: str, path: str) -> Data:
    """MNIST from an .npz in the `keras.datasets` layout, shaped for `task`'s model."""
    with np.load(path, allow_pickle=False) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    shape = {"mnist-mlp": (784,), "mnist-cnn": (28, 28, 1), "mnist-rnn": (28, 28)}[task]

    def prepare(x):
        return (x.astype("float32") / 255.0).reshape((len(x),) + shape)

    return Data(
        prepare(x_train),
        y_train.astype("int32"),
        prepare(x_test[:VALIDATION_SIZE]),
        y_test[:VALIDATION_SIZE].astype("int32"),
    )


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hochreiter & Schmidhuber's adding problem: each step carries a number in [0, 1) and
    a marker; two steps are marked (one in each half); the target is the sum of their numbers."""
    values = rng.random((n, length)).astype("float32")
    markers = np.zeros((n, length), dtype="float32")
    half = max(1, length // 2)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[np.arange(n), first] + values[np.arange(n), second]).astype("float32")[:, None]
    return x, y


def adding_data(length: int, seed: int) -> Data:
    rng = np.random.default_rng([seed, 1])
    x_train, y_train = adding_problem(ADDING_TRAIN_SIZE, length, rng)
    x_val, y_val = adding_problem(VALIDATION_SIZE, length, rng)
    return Data(x_train, y_train, x_val, y_val)


def batch_order(n_train: int, batch_size: int, steps_per_epoch: int, epochs: int, seed: int) -> np.ndarray:
    """Indices of every batch, shape (epochs, steps_per_epoch, batch_size): each epoch
    walks fresh permutations of the training set (more than one if it needs more)."""
    rng = np.random.default_rng([seed, 2])
    need = steps_per_epoch * batch_size
    order = np.empty((epochs, need), dtype=np.int64)
    for epoch in range(epochs):
        chunks = [rng.permutation(n_train) for _ in range(-(-need // n_train))]
        order[epoch] = np.concatenate(chunks)[:need]
    return order.reshape(epochs, steps_per_epoch, batch_size)


# --- models ------------------------------------------------------------------------


def build_model(task: str, cell: str = "LSTM", seq_len: int = 30) -> Any:
    import keras
    from keras import layers

    if task == "mnist-mlp":
        inputs = keras.Input((784,))
        h = layers.Dense(64, activation="relu")(inputs)
        outputs = layers.Dense(10)(h)
    elif task == "mnist-cnn":
        inputs = keras.Input((28, 28, 1))
        h = layers.Conv2D(8, 3, activation="relu")(inputs)
        h = layers.MaxPooling2D(2)(h)
        h = layers.Conv2D(16, 3, activation="relu")(h)
        h = layers.MaxPooling2D(2)(h)
        outputs = layers.Dense(10)(layers.Flatten()(h))
    elif TASKS[task].uses_cell:
        if cell not in CELLS:
            raise ValueError(f"Argument `cell` must be one of {CELLS}, got {cell!r}.")
        recurrent = {"LSTM": layers.LSTM, "GRU": layers.GRU}[cell]
        inputs = keras.Input((28, 28) if TASKS[task].uses_mnist else (seq_len, 2))
        h = recurrent(HIDDEN_UNITS)(inputs)
        outputs = layers.Dense(TASKS[task].classes or 1)(h)
    else:
        raise ValueError(f"Argument `task` must be a model task, one of {list(TASKS)[:4]}, got {task!r}.")
    return keras.Model(inputs, outputs, name=task.replace("-", "_"))


def loss_for(task: str) -> Any:
    import keras

    if TASKS[task].kind == "classify":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def initial_weights(weights: list, seed: int) -> list[np.ndarray]:
    """The starting value of each weight, made with NumPy so it is the same on every
    backend: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases (an
    LSTM's forget-gate bias at 1, as Keras does)."""
    rng = np.random.default_rng([seed, 3])
    values = []
    for w in weights:
        shape = tuple(int(d) for d in w.shape)
        path = getattr(w, "path", w.name)
        if "recurrent_kernel" in path:
            values.append(_orthogonal(shape, rng))
        elif len(shape) >= 2:
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            values.append(rng.uniform(-limit, limit, shape).astype("float32"))
        else:
            bias = np.zeros(shape, dtype="float32")
            if "lstm" in path and "bias" in path and len(shape) == 1:
                units = shape[0] // 4
                bias[units : 2 * units] = 1.0  # gates i, f, c, o
            values.append(bias)
    return values


def _orthogonal(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    rows, cols = shape
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].astype("float32")


def contour_grid(name: str, points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fn = FUNCTIONS_2D[name]
    x = np.linspace(*fn.xlim, points)
    y = np.linspace(*fn.ylim, points)
    xx, yy = np.meshgrid(x, y)
    return xx, yy, fn.f(xx, yy)
