"""Tiny models and data for tests/test_parity.py (the parity workers import them by name).

`mlp` is deterministic (no random layers) and starts from weights drawn with NumPy
(`MLP_WEIGHTS`), so a test can compute its first loss independently. `mlp_off_on_jax` is the
same model with its output scaled by 1.01 on JAX only (the same weights): a backend made to differ.
"""

import numpy as np

INPUTS, HIDDEN = 6, 8
SAMPLES = 64


def mlp_weights():
    rng = np.random.default_rng(11)
    return [
        rng.uniform(-0.5, 0.5, (INPUTS, HIDDEN)).astype("float32"),
        rng.uniform(-0.1, 0.1, (HIDDEN,)).astype("float32"),
        rng.uniform(-0.5, 0.5, (HIDDEN, 1)).astype("float32"),
        np.zeros((1,), dtype="float32"),
    ]


def mlp():
    import keras

    inputs = keras.Input((INPUTS,))
    h = keras.layers.Dense(HIDDEN, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.set_weights(mlp_weights())
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
    x = rng.normal(size=(SAMPLES, INPUTS)).astype("float32")
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2]).astype("float32")
    return x, y
