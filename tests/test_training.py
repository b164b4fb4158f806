"""Real training: an MLP on the MNIST sample shipped with the package learns with every optimizer."""

import keras
import numpy as np
import pytest

import keras_adaptive as ka
from keras_adaptive.datasets import load_mnist
from tests.cases import BY_CLASS

# Learning rates a person would pick for this model; chance accuracy is 10%.
SETTINGS = {cls.__name__: entry.train for cls, entry in BY_CLASS.items()}  # tests/cases.py
MIN_TEST_ACCURACY = 0.85  # 2 epochs on 6,000 images; observed 0.88-0.93 (see the closing note of issue 2)


@pytest.fixture(scope="module")
def mnist():
    data = load_mnist(download=False)
    assert data.x_train.shape == (6000, 28, 28)
    prep = lambda x: (x.reshape(len(x), 784) / 255.0).astype("float32")  # noqa: E731
    return prep(data.x_train), data.y_train.astype("int32"), prep(data.x_test), data.y_test.astype("int32")


@pytest.mark.parametrize("name", SETTINGS)
def test_mlp_learns_mnist(name, mnist):
    x_train, y_train, x_test, y_test = mnist
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    model.compile(
        optimizer=getattr(ka, name)(**SETTINGS[name]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"{keras.backend.backend()} {name}: test accuracy {accuracy:.3f}, loss {loss:.3f}")
    assert np.isfinite(loss)
    assert accuracy > MIN_TEST_ACCURACY
