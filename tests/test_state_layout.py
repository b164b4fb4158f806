"""A checkpoint's optimizer state is restored only into the slot layout that saved it."""

import os

import keras
import numpy as np
import pytest

import keras_adaptive as ka
from tests.problem import to_numpy


def _trained_model(optimizer, path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(np.ones((8, 4), "float32"), np.ones((8, 1), "float32"))
    model.save(path)
    return model


@pytest.mark.parametrize(
    "saved,loaded,why",
    [
        (ka.Adam(), ka.Adam(amsgrad=True), "another slot count"),
        (ka.Adam(), ka.RMSProp(centered=True), "the same slot count, other slots"),
        (ka.RMSProp(momentum=0.9), ka.RMSProp(), "momentum off"),
        (ka.AdaDelta(momentum=0.5), ka.AdaDelta(), "momentum off"),
        (ka.SGD(momentum=0.9), ka.AdaGrad(), "another optimizer"),
    ],
)
def test_mismatched_state_is_refused(saved, loaded, why, tmp_path):
    path = os.path.join(tmp_path, "model.keras")
    _trained_model(saved, path)
    model = keras.models.load_model(path, compile=False)
    model.compile(optimizer=loaded, loss="mse")
    loaded.build(model.trainable_variables)
    with pytest.raises(ValueError, match="Cannot restore the state of optimizer") as error:
        model.load_weights(path)  # weights and optimizer state, as keras.models.load_model restores them
    assert type(saved).__name__ in str(error.value) or "optimizer variables" in str(error.value), why


def test_same_layout_restores_and_a_state_loaded_before_build_waits_for_it(tmp_path):
    path = os.path.join(tmp_path, "model.keras")
    original = _trained_model(ka.Nadam(), path)
    restored = keras.models.load_model(path)
    for a, b in zip(original.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # Load the state into an optimizer that has not been built yet: it is kept until build().
    fresh = ka.Nadam()
    store = {str(i): to_numpy(v).astype(v.dtype) for i, v in enumerate(original.optimizer.variables)}
    fresh.load_own_variables(store)
    fresh.build(restored.trainable_variables)
    for a, b in zip(original.optimizer.variables, fresh.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
