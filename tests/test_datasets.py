import os

import numpy as np
import pytest

from keras_adaptive.datasets import SAMPLE_DESCRIPTION, load_mnist

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist.npz")


def test_sample_ships_with_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no Keras cache here
    monkeypatch.delenv("KERAS_ADAPTIVE_MNIST", raising=False)
    data = load_mnist(download=False)
    assert data.source == SAMPLE_DESCRIPTION
    assert data.x_train.shape == (6000, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (1000, 28, 28)
    assert set(np.unique(data.y_train)) == set(range(10))


def test_full_mnist_from_a_path():
    path = os.environ.get("KERAS_ADAPTIVE_TEST_MNIST", SHARED)
    assert os.path.isfile(path), f"the full MNIST is expected at {path} (../shared/data/mnist.npz)"
    data = load_mnist(path)
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert path in data.source
    # The sample is the head of the full set.
    sample = load_mnist(download=False) if not os.environ.get("KERAS_ADAPTIVE_MNIST") else None
    if sample is not None:
        np.testing.assert_array_equal(sample.x_train, data.x_train[:6000])


def test_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="`path`"):
        load_mnist(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        load_mnist(str(bad))
