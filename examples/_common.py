"""Helpers the example scripts share: arguments, data, per-step losses, figures.

Not part of the package; the scripts import it from their own directory.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

DEFAULT_OUT = os.path.join("results", "examples")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--short", action="store_true", help="a few steps only, for CI: checks that it runs")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"directory for plots and CSVs (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    return p


def add_mnist_arguments(p: argparse.ArgumentParser, train_size: int = 6000) -> None:
    p.add_argument(
        "--mnist", default=None, help="path of a full MNIST .npz (default: Keras' cache, else the shipped sample)"
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=train_size,
        help=f"training images used (default {train_size}, all of the shipped sample)",
    )


def backend_name() -> str:
    import keras

    return keras.backend.backend()


def load_mnist(args, flat: bool = True, train_size: int | None = None):
    """(x_train, y_train, x_test, y_test, source) scaled to [0, 1], never downloading."""
    from keras_adaptive.datasets import load_mnist as load

    data = load(args.mnist, download=False)
    n = train_size or args.train_size
    x_train, y_train = data.x_train[:n], data.y_train[:n]
    shape = (-1, 784) if flat else (-1, 28, 28)
    x_train = x_train.reshape(shape).astype("float32") / 255.0
    x_test = data.x_test.reshape(shape).astype("float32") / 255.0
    return x_train, y_train.astype("int32"), x_test, data.y_test.astype("int32"), data.source


def mlp(hidden=(256, 256), seed: int = 0):
    """The MNIST MLP 784-256-256-10, logits out; the same initial weights on every call with the same seed."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    layers += [keras.layers.Dense(h, activation="relu", name=f"dense_{i}") for i, h in enumerate(hidden)]
    layers += [keras.layers.Dense(10, name="logits")]
    return keras.Sequential(layers, name="mlp")


def compile_classifier(model, optimizer):
    import keras

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def optimizer_set(short: bool = False):
    """The optimizers the MNIST and RNN examples compare, with learning rates that work for
    both; `short` (the --short CI runs) keeps two of them, since each costs a compile."""
    import keras_adaptive as ka

    optimizers = {
        "SGD": lambda: ka.SGD(learning_rate=0.05),
        "Momentum": lambda: ka.SGD(learning_rate=0.01, momentum=0.9),
        "AdaGrad": lambda: ka.AdaGrad(learning_rate=0.01),
        "RMSProp": lambda: ka.RMSProp(learning_rate=1e-3),
        "AdaDelta": lambda: ka.AdaDelta(),
        "Adam": lambda: ka.Adam(learning_rate=1e-3),
        "Nadam": lambda: ka.Nadam(learning_rate=1e-3),
    }
    if short:
        return {name: optimizers[name] for name in ("SGD", "Adam")}
    return optimizers


def batch_loss_callback():
    """A callback collecting each training batch's own loss.

    `fit`'s batch logs hold the running mean since the epoch began, weighted by batch
    size; the batch's own loss is recovered from two consecutive means.
    """
    import keras

    class BatchLoss(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._mean, self._seen = 0.0, 0

        def on_train_batch_end(self, batch, logs=None):
            n = self._batch_size
            mean = float(logs["loss"])
            self.losses.append((mean * (self._seen + n) - self._mean * self._seen) / n)
            self._mean, self._seen = mean, self._seen + n

    return BatchLoss()


def fit_with_batch_losses(model, x, y, batch_size: int, epochs: int, callbacks=(), **kwargs):
    """`model.fit`, returning (per-batch losses, seconds). Trains on a whole number of
    batches (the remainder is dropped) so that every batch has `batch_size` samples."""
    n = (len(x) // batch_size) * batch_size
    recorder = batch_loss_callback()
    recorder._batch_size = batch_size
    start = time.perf_counter()
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[recorder, *callbacks], **kwargs)
    return np.array(recorder.losses), time.perf_counter() - start


def smooth(values, weight: float = 0.9):
    """Exponential moving average with bias correction (so the curve starts at the first value)."""
    out, average = [], 0.0
    for i, v in enumerate(np.asarray(values, dtype=float), start=1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight**i))
    return np.array(out)


def save(fig, args, name: str) -> str:
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
