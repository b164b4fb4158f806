"""keras_adaptive optimizers inside Keras: compile/fit, serialization, save and resume,
mixed precision with loss scaling, and sparse (Embedding) gradients."""

import os

import keras
import numpy as np
import pytest

import keras_adaptive as ka
from tests.cases import BY_CLASS, BY_ID, CASE_IDS, CASES, REPRESENTATIVES
from tests.problem import to_numpy

# Per class, what a person would pick for the small regression MLP below (tests/cases.py).
ONE_PER_CLASS = {cls.__name__: entry.train_small for cls, entry in BY_CLASS.items()}


def _regression_data(seed=0, n=256):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1)) + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def _mlp(seed=0, dtype=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh", dtype=dtype), keras.layers.Dense(1, dtype=dtype)]
    )


@pytest.mark.parametrize("name", ONE_PER_CLASS)
def test_fit_with_instance_and_with_registered_name(name):
    x, y = _regression_data()
    # The registered name gets the default hyperparameters (some slow, like RMSProp's 1e-3):
    # it must still lower the loss.
    for optimizer, factor in ((getattr(ka, name)(**ONE_PER_CLASS[name]), 0.8), (f"keras_adaptive>{name}", 0.99)):
        model = _mlp()
        model.compile(optimizer=optimizer, loss="mse")
        assert type(model.optimizer) is getattr(ka, name)
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
        assert np.all(np.isfinite(history))
        assert history[-1] < factor * history[0], history


ALL_BASE_ARGS = dict(
    clipnorm=1.5,
    use_ema=True,
    ema_momentum=0.9,
    ema_overwrite_frequency=3,
    loss_scale_factor=2.0,
    gradient_accumulation_steps=2,
    weight_decay=0.01,
    name="custom",
)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_serialization_round_trip_with_every_argument(case):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=7, decay_rate=0.9)
    optimizer = case.make(learning_rate=schedule, multi_tensor=False, **ALL_BASE_ARGS)
    config = optimizer.get_config()
    for key in list(case.kwargs) + list(ALL_BASE_ARGS) + ["multi_tensor"]:
        assert key in config, key
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == f"keras_adaptive>{case.cls.__name__}"
    for restored in (keras.optimizers.deserialize(serialized), case.cls.from_config(optimizer.get_config())):
        assert type(restored) is case.cls
        assert restored.get_config() == config
    plain = case.make(global_clipnorm=0.7)
    assert keras.optimizers.deserialize(keras.optimizers.serialize(plain)).get_config() == plain.get_config()


def _batches(n=6, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(32, 8)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")) for _ in range(n)]


# One case per class, and two more of Adam's slot layouts (tests/cases.py).
SAVE_CASES = REPRESENTATIVES + ["adam-no-bias-correction", "adamw"]


@pytest.mark.parametrize("case_id", SAVE_CASES)
def test_save_mid_training_and_resume_bit_for_bit(case_id, tmp_path):
    case = BY_ID[case_id]
    batches = _batches()
    straight = _mlp()
    straight.compile(optimizer=case.make(), loss="mse")
    interrupted = _mlp()
    interrupted.compile(optimizer=case.make(), loss="mse")
    for x, y in batches[:3]:
        straight.train_on_batch(x, y)
        interrupted.train_on_batch(x, y)
    path = os.path.join(tmp_path, "model.keras")
    interrupted.save(path)
    resumed = keras.models.load_model(path)
    assert type(resumed.optimizer) is case.cls
    for a, b in zip(resumed.optimizer.variables, straight.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    for x, y in batches[3:]:
        straight.train_on_batch(x, y)
        resumed.train_on_batch(x, y)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ONE_PER_CLASS)
def test_trains_under_mixed_float16_with_loss_scaling(name, float_policy):
    keras.config.set_dtype_policy("mixed_float16")
    x, y = _regression_data()
    model = _mlp()
    optimizer = keras.optimizers.LossScaleOptimizer(getattr(ka, name)(**ONE_PER_CLASS[name]))
    model.compile(optimizer=optimizer, loss="mse")
    assert model.layers[0].compute_dtype == "float16"
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.8 * history[0], history
    assert all(w.dtype == "float32" for w in model.trainable_weights)  # master weights stay float32


def _embedding_models(seed=0):
    """The same model twice: a sparse Embedding lookup, and a dense one-hot matmul."""
    keras.utils.set_random_seed(seed)
    table = np.random.default_rng(seed).normal(size=(20, 4)).astype("float32")
    head = np.random.default_rng(seed + 1).normal(size=(4, 1)).astype("float32")
    ids = keras.Input((5,), dtype="int32")
    sparse = keras.Model(
        ids,
        keras.layers.Dense(1, use_bias=False)(
            keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(ids))
        ),
    )
    onehot = keras.Input((5, 20))
    dense = keras.Model(
        onehot,
        keras.layers.Dense(1, use_bias=False)(
            keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(4, use_bias=False)(onehot))
        ),
    )
    for model in (sparse, dense):
        model.set_weights([table, head])
    return sparse, dense


@pytest.mark.parametrize("name", ONE_PER_CLASS)
def test_embedding_gradients_match_the_dense_computation(name, backend):
    sparse, dense = _embedding_models()
    rng = np.random.default_rng(3)
    sparse.compile(optimizer=getattr(ka, name)(**ONE_PER_CLASS[name]), loss="mse")
    dense.compile(optimizer=getattr(ka, name)(**ONE_PER_CLASS[name]), loss="mse")
    for _ in range(6):
        ids = rng.integers(0, 10, size=(16, 5)).astype("int32")  # rows 10-19 never seen: their grads are 0
        y = rng.normal(size=(16, 1)).astype("float32")
        sparse.train_on_batch(ids, y)
        dense.train_on_batch(np.eye(20, dtype="float32")[ids], y)
    for a, b in zip(sparse.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    if backend == "tensorflow":  # the path under test really is sparse there
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.mean(sparse(ids))
        assert isinstance(tape.gradient(loss, sparse.layers[1].embeddings.value), tf.IndexedSlices)


def test_automatic_names_are_keras_and_unique():
    """Named as Keras names its own (snake case of the class, numbered from the second), so two
    optimizers of one class do not share variable paths; a name given is kept."""
    first, second, adamw = ka.Adam(), ka.Adam(), ka.AdamW()
    assert first.name.startswith("adam") and second.name.startswith("adam_") and first.name != second.name
    assert adamw.name.startswith("adam_w")
    assert first.iterations.path != second.iterations.path
    assert ka.RMSProp(name="mine").name == "mine"
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(second))
    assert restored.name == second.name


@pytest.mark.backends("tensorflow")
@pytest.mark.parametrize("name", ONE_PER_CLASS)
def test_indexed_slices_with_a_tuple_dense_shape(name):
    """TensorFlow accepts a Python tuple as an IndexedSlices' dense shape (Keras' own sparse
    tests build them so), which its `.shape` cannot read: the step is the dense one's."""
    import tensorflow as tf

    values = np.arange(30, dtype="float32").reshape(3, 10) / 30.0
    sparse = tf.IndexedSlices(tf.constant(values), tf.constant([0, 2, 4]), (5, 10))
    dense = np.zeros((5, 10), "float32")
    dense[[0, 2, 4]] = values
    results = []
    for grad in (sparse, tf.constant(dense)):
        variable = keras.Variable(np.ones((5, 10), "float32"))
        getattr(ka, name)(**ONE_PER_CLASS[name]).apply([grad], [variable])
        results.append(to_numpy(variable))
    np.testing.assert_array_equal(*results)
