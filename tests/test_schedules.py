"""BiasCorrection: Adam's bias correction as a learning-rate schedule.

Golden values come only from the NumPy float64 functions in this file, written from the
formulas in Kingma and Ba's Algorithm 1, never from the code under test.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_adaptive
from keras_adaptive.schedules import BiasCorrection

STEPS = 50
BETAS = [(0.9, 0.999), (0.95, 0.95)]


# --- NumPy float64 references ---------------------------------------------------------


def reference_factor(t, beta_1, beta_2):
    t = np.asarray(t, dtype=np.float64)
    return np.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)


def reference_adam(w0, target, lr, beta_1, beta_2, eps, bias_correction, scheduled, steps):
    """Adam on the loss 0.5 * |w - target|^2 (gradient w - target).

    bias_correction: divide the moments by 1 - beta^t.
    scheduled: multiply lr by sqrt(1 - beta_2^t) / (1 - beta_1^t) (the schedule form).
    Returns the weights after each step, shape (steps, *w0.shape).
    """
    w = np.array(w0, dtype=np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    path = []
    for t in range(1, steps + 1):
        g = w - target
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * (np.sqrt(1 - beta_2**t) / (1 - beta_1**t) if scheduled else 1.0)
        if bias_correction:
            m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
        else:
            m_hat, v_hat = m, v
        w = w - alpha * m_hat / (np.sqrt(v_hat) + eps)
        path.append(w.copy())
    return np.stack(path)


def run_keras(optimizer, w0, target, steps):
    """The same problem through `optimizer.apply`, gradients computed by Keras from the weights."""
    w = keras.Variable(np.asarray(w0, dtype="float32"), name="w")
    goal = ops.convert_to_tensor(np.asarray(target, dtype="float32"))
    path = []
    for _ in range(steps):
        optimizer.apply([w - goal], [w])
        path.append(ops.convert_to_numpy(w).copy())
    return np.stack(path)


def problem(seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(3, 4))
    # Targets spread over two orders of magnitude, so weights see gradients of very
    # different sizes (where epsilon matters and where it does not).
    target = rng.normal(size=(3, 4)) * np.logspace(-2, 0, 12).reshape(3, 4)
    return w0, target


# --- the schedule's values ------------------------------------------------------------


@pytest.mark.parametrize("beta_1,beta_2", BETAS)
def test_values_match_reference_with_one_based_step(beta_1, beta_2):
    schedule = BiasCorrection(0.01, beta_1=beta_1, beta_2=beta_2)
    steps = np.arange(0, 3000, 7)
    got = np.array([float(ops.convert_to_numpy(schedule(s))) for s in steps])
    # Keras passes the 0-based iteration count; the update it prices is t = step + 1.
    np.testing.assert_allclose(got, 0.01 * reference_factor(steps + 1, beta_1, beta_2), rtol=2e-6)


def test_conventions_note_numbers():
    """The rounded values quoted in conventions.md and the module docstring."""
    warmup = BiasCorrection(1.0).factor  # (0.9, 0.999)
    for t, quoted in [(1, 0.32), (12, 0.15), (100, 0.31), (1000, 0.80)]:
        assert float(warmup(t - 1)) == pytest.approx(quoted, abs=0.006)
    boost = BiasCorrection(1.0, beta_1=0.95, beta_2=0.95).factor
    for t, quoted in [(1, 4.47), (10, 1.58)]:
        assert float(boost(t - 1)) == pytest.approx(quoted, abs=0.006)


def test_accepts_tensor_step_and_python_int():
    schedule = BiasCorrection(1e-3)
    as_int = float(ops.convert_to_numpy(schedule(5)))
    as_tensor = float(ops.convert_to_numpy(schedule(ops.convert_to_tensor(5, dtype="int32"))))
    assert as_int == pytest.approx(as_tensor)
    assert as_int == pytest.approx(1e-3 * reference_factor(6, 0.9, 0.999), rel=1e-6)


def test_wraps_a_keras_schedule_at_the_same_step():
    warmup = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=100, warmup_target=1e-3, warmup_steps=20)
    schedule = BiasCorrection(warmup, beta_1=0.9, beta_2=0.99)
    for step in [0, 1, 5, 19, 20, 60, 119]:
        base = float(ops.convert_to_numpy(warmup(step)))
        expected = base * reference_factor(step + 1, 0.9, 0.99)
        assert float(ops.convert_to_numpy(schedule(step))) == pytest.approx(expected, rel=2e-6, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.0},
        {"learning_rate": -1.0},
        {"learning_rate": lambda step: 0.1},
        {"beta_1": 1.0},
        {"beta_2": -0.1},
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError, match="Argument `"):
        BiasCorrection(**kwargs)


# --- serialization ----------------------------------------------------------------------


def test_serializes_with_a_nested_schedule():
    inner = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5)
    schedule = BiasCorrection(inner, beta_1=0.95, beta_2=0.95, name="bc")
    config = keras.optimizers.schedules.serialize(schedule)
    assert config["registered_name"] == "keras_adaptive>BiasCorrection"
    restored = keras.optimizers.schedules.deserialize(config)
    assert isinstance(restored, BiasCorrection)
    assert isinstance(restored.learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert restored.get_config() == schedule.get_config()
    for step in [0, 3, 30]:
        assert float(ops.convert_to_numpy(restored(step))) == pytest.approx(float(ops.convert_to_numpy(schedule(step))))


def test_optimizer_with_schedule_round_trips_through_config():
    opt = keras_adaptive.Adam(learning_rate=BiasCorrection(2e-3, beta_2=0.99), bias_correction=False, beta_2=0.99)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, keras_adaptive.Adam)
    assert isinstance(restored._learning_rate, BiasCorrection)
    assert restored._learning_rate.get_config() == opt._learning_rate.get_config()


# --- the equivalence -----------------------------------------------------------------------


@pytest.mark.parametrize("beta_1,beta_2", BETAS)
def test_uncorrected_adam_with_schedule_follows_adam_when_epsilon_is_zero(beta_1, beta_2):
    w0, target = problem()
    lr = 0.05
    golden = reference_adam(w0, target, lr, beta_1, beta_2, 0.0, bias_correction=True, scheduled=False, steps=STEPS)
    # The reference itself states the equivalence in float64.
    scheduled_ref = reference_adam(
        w0, target, lr, beta_1, beta_2, 0.0, bias_correction=False, scheduled=True, steps=STEPS
    )
    np.testing.assert_allclose(scheduled_ref, golden, rtol=1e-12, atol=1e-12)

    corrected = keras_adaptive.Adam(lr, beta_1=beta_1, beta_2=beta_2, epsilon=0.0, bias_correction=True)
    scheduled = keras_adaptive.Adam(
        BiasCorrection(lr, beta_1=beta_1, beta_2=beta_2),
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=0.0,
        bias_correction=False,
    )
    path_corrected = run_keras(corrected, w0, target, STEPS)
    path_scheduled = run_keras(scheduled, w0, target, STEPS)
    # float32 rounding only: 50 steps of size <= ~lr * 4.5, weights of order 1.
    np.testing.assert_allclose(path_corrected, golden, rtol=0, atol=2e-5)
    np.testing.assert_allclose(path_scheduled, golden, rtol=0, atol=2e-5)
    np.testing.assert_allclose(path_scheduled, path_corrected, rtol=0, atol=2e-5)


def test_with_epsilon_they_differ_as_the_reference_says():
    """eps > 0: bias-corrected Adam's epsilon equals eps * sqrt(1 - beta_2^t) in the
    uncorrected form, so the two diverge; each still matches its own NumPy reference."""
    w0, target = problem()
    lr, eps, (beta_1, beta_2) = 0.05, 0.1, (0.9, 0.999)
    ref_corrected = reference_adam(w0, target, lr, beta_1, beta_2, eps, True, False, STEPS)
    ref_scheduled = reference_adam(w0, target, lr, beta_1, beta_2, eps, False, True, STEPS)
    gap = np.max(np.abs(ref_corrected - ref_scheduled))
    assert gap > 1e-2  # a real difference, far above float32 rounding

    corrected = keras_adaptive.Adam(lr, beta_1=beta_1, beta_2=beta_2, epsilon=eps, bias_correction=True)
    scheduled = keras_adaptive.Adam(
        BiasCorrection(lr, beta_1=beta_1, beta_2=beta_2),
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=eps,
        bias_correction=False,
    )
    path_corrected = run_keras(corrected, w0, target, STEPS)
    path_scheduled = run_keras(scheduled, w0, target, STEPS)
    np.testing.assert_allclose(path_corrected, ref_corrected, rtol=0, atol=2e-5)
    np.testing.assert_allclose(path_scheduled, ref_scheduled, rtol=0, atol=2e-5)
    assert np.max(np.abs(path_corrected - path_scheduled)) > 1e-2
