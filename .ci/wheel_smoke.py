"""CI: the installed wheel is a real package. Run from outside the source tree, in a virtual
environment that has the wheel (not the checkout) installed: imports both packages, finds the
shipped MNIST sample and the JAX kernel's source in the installed files, and trains briefly."""

import os
import sys
from importlib import resources

import keras
import numpy as np

import keras_adaptive
import keras_adaptive_gui
from keras_adaptive.datasets import SAMPLE_DESCRIPTION, load_mnist

here = os.path.dirname(os.path.abspath(keras_adaptive.__file__))
assert "site-packages" in here, f"keras_adaptive imported from {here}, not from the installed wheel"
assert "site-packages" in os.path.dirname(os.path.abspath(keras_adaptive_gui.__file__))

data = load_mnist(download=False)
assert data.source == SAMPLE_DESCRIPTION and data.x_train.shape == (6000, 28, 28), data.source
kernel = resources.files("keras_adaptive") / "backend" / "jax_adam.cc"
assert kernel.is_file() and "KerasAdaptiveAdam" in kernel.read_text(), "the JAX kernel's source is not in the wheel"

x = data.x_train[:1024].reshape(-1, 784).astype("float32") / 255.0
y = data.y_train[:1024]
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer=keras_adaptive.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
losses = model.fit(x, y, batch_size=64, epochs=2, verbose=0).history["loss"]
assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
print(
    f"wheel smoke: keras_adaptive {keras_adaptive.__version__} from {here}, keras {keras.__version__} "
    f"({keras.backend.backend()}), loss {losses[0]:.3f} -> {losses[-1]:.3f}",
    file=sys.stderr,
)
