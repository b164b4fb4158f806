"""Mixed and half precision: every optimizer trains without NaNs, moments kept in float32,
and the chosen behaviour on a non-finite gradient."""

import keras
import numpy as np
import pytest

import keras_adaptive as ka
from keras_adaptive.datasets import load_mnist
from tests.cases import BY_CLASS, BY_ID, REPRESENTATIVES
from tests.problem import to_numpy

SETTINGS = {cls.__name__: entry.train for cls, entry in BY_CLASS.items()}  # tests/cases.py
POLICIES = ["mixed_float16", "mixed_bfloat16", "float16", "bfloat16"]


@pytest.fixture(scope="module")
def mnist():
    data = load_mnist(download=False)
    x = (data.x_train[:2048].reshape(-1, 784) / 255.0).astype("float32")
    return x, data.y_train[:2048].astype("int32")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", SETTINGS)
def test_mlp_trains_without_nans(name, policy, mnist, float_policy):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    x, y = mnist
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
            keras.layers.Activation("linear", dtype="float32"),
        ]
    )
    # Under "mixed_float16" compile wraps the optimizer in a LossScaleOptimizer.
    model.compile(
        optimizer=getattr(ka, name)(**SETTINGS[name]), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)), history
    assert history[-1] < 0.6 * history[0], history
    weights = [w for w in model.trainable_weights]
    optimizer = model.optimizer.inner_optimizer if hasattr(model.optimizer, "inner_optimizer") else model.optimizer
    for w in weights:
        assert np.all(np.isfinite(to_numpy(w)))
        # Moments of half-precision weights are float32; mixed policies keep float32 weights.
        for slot in optimizer.slots(w, *optimizer.slot_names()):
            assert slot.dtype == "float32"


def test_half_precision_moments_do_not_underflow():
    """A 1e-4 gradient: its square (1e-8) is below float16's smallest number (6e-8), so a
    float16 second moment is 0 and Keras' built-in Adam takes a step of ~lr/eps-scale size
    instead of ~lr. With float32 moments the step is the float32 one."""
    g = keras.ops.full((4,), 1e-4, dtype="float16")
    steps = {}
    for label, optimizer in (
        ("ours", ka.Adam(learning_rate=1e-2, epsilon=1e-7)),
        ("keras", keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-7)),
    ):
        w = keras.Variable(np.zeros(4), dtype="float16")
        optimizer.apply([g], [w])
        steps[label] = float(to_numpy(w)[0])
    # Adam's first step is -lr * g/(|g| + eps) = -lr * 0.999 in exact arithmetic.
    assert steps["ours"] == pytest.approx(-1e-2 * 1e-4 / (1e-4 + 1e-7), rel=1e-3)
    assert abs(steps["keras"]) > 10 * abs(steps["ours"]) or not np.isfinite(steps["keras"])


def test_non_finite_gradient_propagates_without_loss_scaling():
    """The chosen behaviour, as in Keras, PyTorch and optax: no hidden check on the hot path,
    so a NaN gradient reaches the weight it belongs to (and only that weight)."""
    optimizer = ka.Adam(learning_rate=0.01)
    a, b = keras.Variable(np.ones(3)), keras.Variable(np.ones(2))
    optimizer.apply([keras.ops.convert_to_tensor([1.0, float("nan"), 1.0]), keras.ops.ones(2)], [a, b])
    assert np.isnan(to_numpy(a)[1]) and np.all(np.isfinite(to_numpy(a)[[0, 2]]))
    assert np.all(np.isfinite(to_numpy(b)))


@pytest.mark.parametrize("case_id", REPRESENTATIVES)
def test_loss_scale_optimizer_skips_non_finite_steps_and_corrupts_nothing(case_id):
    """Through `train_on_batch`, the way Keras runs it on each backend (stateless on JAX)."""
    case = BY_ID[case_id]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(case.make(), initial_scale=2.0**10), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.train_on_batch(x, y)
    wrapped, inner = model.optimizer, model.optimizer.inner_optimizer
    before = [to_numpy(v) for v in model.weights] + [to_numpy(v) for v in inner.variables]
    for bad in (float("nan"), float("inf")):
        model.train_on_batch(np.full((4, 3), bad, "float32"), y)  # every gradient non-finite
        after = [to_numpy(v) for v in model.weights] + [to_numpy(v) for v in inner.variables]
        for old, new in zip(before, after):
            np.testing.assert_array_equal(old, new)  # weights, slots and the step count untouched
    assert float(to_numpy(wrapped.dynamic_scale)) == 2.0**8  # the scale halved twice
    model.train_on_batch(x, y)  # and training goes on
    assert all(np.all(np.isfinite(to_numpy(w))) for w in model.weights)
    assert int(to_numpy(inner.iterations)) == 2
