import numpy as np
import pytest

from keras_adaptive.datasets import SAMPLE_DESCRIPTION, load_mnist


def test_sample_ships_with_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no Keras cache here
    monkeypatch.delenv("KERAS_ADAPTIVE_MNIST", raising=False)
    data = load_mnist(download=False)
    assert data.source == SAMPLE_DESCRIPTION
    assert data.x_train.shape == (6000, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (1000, 28, 28)
    assert set(np.unique(data.y_train)) == set(range(10))


def _full_size_mnist(path) -> str:
    """A file in the layout of `keras.datasets.mnist` at full size (60,000 / 10,000 images), whose
    head is the shipped sample (as the real MNIST's is): the sample's images, then random ones."""
    sample = load_mnist(download=False)
    rng = np.random.default_rng(0)

    def grow(images, labels, n):
        extra = n - len(images)
        return (
            np.concatenate([images, rng.integers(0, 256, (extra, 28, 28), dtype=np.uint8)]),
            np.concatenate([labels, rng.integers(0, 10, extra, dtype=np.uint8)]),
        )

    x_train, y_train = grow(sample.x_train, sample.y_train, 60000)
    x_test, y_test = grow(sample.x_test, sample.y_test, 10000)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def test_full_mnist_from_a_path(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_ADAPTIVE_MNIST", raising=False)
    path = _full_size_mnist(tmp_path / "mnist.npz")
    data = load_mnist(path)
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.shape == (60000,)
    assert path in data.source
    np.testing.assert_array_equal(load_mnist(download=False).x_train, data.x_train[:6000])
    # The environment variable names the same file.
    monkeypatch.setenv("KERAS_ADAPTIVE_MNIST", path)
    assert load_mnist().source == data.source


def test_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="`path`"):
        load_mnist(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        load_mnist(str(bad))
