"""MNIST for the examples, tests and GUI: the full set when it is available, a shipped sample otherwise."""

from __future__ import annotations

import os
from importlib import resources
from typing import NamedTuple

import numpy as np

SAMPLE_DESCRIPTION = "MNIST sample shipped with keras_adaptive (6,000 train / 1,000 test images)"


class MNIST(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # what was loaded, for a person to read


def _read_npz(path: str) -> tuple:
    with np.load(path, allow_pickle=False) as f:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
        if missing:
            raise ValueError(f"Argument `path`={path!r} is not an MNIST .npz file: it lacks {sorted(missing)}.")
        return f["x_train"], f["y_train"], f["x_test"], f["y_test"]


def sample_path() -> str:
    return str(resources.files("keras_adaptive") / "data" / "mnist_sample.npz")


def load_mnist(path: str | None = None, download: bool = True) -> MNIST:
    """Load MNIST in the `keras.datasets` layout (uint8 images, 28x28).

    In order: `path` (or the `KERAS_ADAPTIVE_MNIST` environment variable) if given;
    else `keras.datasets.mnist.load_data()`, which reads Keras' cache
    (`~/.keras/datasets/mnist.npz`) or downloads it (only if `download`); else the
    sample that ships with the package. `source` says which one was used.
    """
    path = path or os.environ.get("KERAS_ADAPTIVE_MNIST")
    if path:
        if not os.path.isfile(path):
            raise ValueError(f"Argument `path`={path!r} is not a file; pass an MNIST .npz file.")
        return MNIST(*_read_npz(path), source=f"full MNIST from {path}")
    if download or _keras_cache_has_mnist():
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
            return MNIST(x_train, y_train, x_test, y_test, source="full MNIST via keras.datasets.mnist")
        except Exception:  # offline, or a corrupt cache: the sample still works
            pass
    return MNIST(*_read_npz(sample_path()), source=SAMPLE_DESCRIPTION)


def _keras_cache_has_mnist() -> bool:
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.isfile(os.path.join(home, "datasets", "mnist.npz"))
