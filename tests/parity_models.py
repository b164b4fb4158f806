"""Tiny models and data for tests/test_parity.py (the parity workers import them by name).

`mlp` is deterministic (no random layers); `mlp_off_on_jax` is the same model whose output is
scaled by 1.01 on JAX only, with the same weights: a backend made to differ.
"""

import numpy as np


def mlp():
    import keras

    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.compile(optimizer="sgd", loss="mse")
    return model


def mlp_off_on_jax():
    import keras

    model = mlp()
    if keras.backend.backend() != "jax":
        return model
    outputs = keras.layers.Rescaling(1.01)(model.outputs[0])  # no weights: the same weight list
    off = keras.Model(model.inputs, outputs)
    off.compile(optimizer="sgd", loss="mse")
    return off


def regression_data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2]).astype("float32")
    return x, y
