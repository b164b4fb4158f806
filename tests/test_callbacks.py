"""OptimizerMonitor: what it records, checked against NumPy, on every optimizer and backend.

Golden values come only from the NumPy float64 AdaGrad/linear-regression computation in
this file, never from the code under test.
"""

import csv

import keras
import numpy as np
import pytest

import keras_adaptive
from keras_adaptive.callbacks import OptimizerMonitor
from keras_adaptive.schedules import BiasCorrection

N, D, K = 32, 5, 3  # samples, inputs, outputs of the linear-regression problem


def regression_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype("float32")
    y = (x @ rng.normal(size=(D, K)) + 0.1 * rng.normal(size=(N, K))).astype("float32")
    w0 = (0.3 * rng.normal(size=(D, K))).astype("float32")
    return x, y, w0


def linear_model(w0, optimizer):
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(K, use_bias=False, kernel_initializer=keras.initializers.Constant(w0))]
    )
    model.compile(optimizer=optimizer, loss="mse")
    return model


def mlp(optimizer, seed=0, jit_compile="auto"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(16, activation="tanh", name="hidden"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(4, name="out"),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def classification_data(n=96, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    y = (x[:, :4].argmax(axis=1)).astype("int32")
    return x, y


def reference_adagrad_records(
    x, y, w0, lr, eps, steps, percentiles=(10, 50, 90), batch=N, method="linear", clipnorm=None
):
    """AdaGrad (accumulator from 0, eps inside the root) on mean squared error, in float64, over
    the batches of `batch` samples in order (full batch by default).

    Per step: effective LR percentiles after the step, ||w_t - w_{t-1}|| / ||w_{t-1}||, and
    the norm of the step's gradient (of its batch, at w_{t-1}, before clipping).
    """
    x, y, w = x.astype(np.float64), y.astype(np.float64), w0.astype(np.float64)
    r = np.zeros_like(w)

    def gradient(w, xb=x, yb=y):
        return 2.0 / (len(xb) * K) * xb.T @ (xb @ w - yb)

    rows = []
    for step in range(steps):
        start = step * batch % N
        raw = gradient(w, x[start : start + batch], y[start : start + batch])
        g = raw if clipnorm is None else raw * min(1.0, clipnorm / np.linalg.norm(raw))
        r = r + g * g
        w_new = w - lr * g / np.sqrt(r + eps)
        elr = lr / np.sqrt(r + eps)
        rows.append(
            list(np.percentile(elr, percentiles, method=method))
            + [np.linalg.norm(w_new - w) / np.linalg.norm(w), np.linalg.norm(raw)]
        )
        w = w_new
    return np.array(rows)


@pytest.mark.parametrize("every", [1, 3])
def test_records_match_numpy_adagrad(every):
    x, y, w0 = regression_data()
    lr, eps, epochs = 0.1, 1e-7, 7
    model = linear_model(w0, keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps))
    monitor = OptimizerMonitor(every=every)
    model.fit(x, y, batch_size=N, epochs=epochs, shuffle=False, verbose=0, callbacks=[monitor])

    golden = reference_adagrad_records(x, y, w0, lr, eps, epochs)
    recorded_steps = [s for s in range(1, epochs + 1) if s % every == 0]
    assert [r["step"] for r in monitor.records] == recorded_steps
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden[np.array(recorded_steps) - 1], rtol=2e-4)


def test_gradient_norm_is_unscaled_and_taken_before_clipping():
    x, y, w0 = regression_data()
    lr, eps, steps = 0.1, 1e-7, 4
    optimizer = keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps, clipnorm=0.05, loss_scale_factor=64.0)
    model = linear_model(w0, optimizer)
    monitor = OptimizerMonitor(every=1)
    model.fit(x, y, batch_size=N, epochs=steps, shuffle=False, verbose=0, callbacks=[monitor])
    golden = reference_adagrad_records(x, y, w0, lr, eps, steps, clipnorm=0.05)
    assert np.all(golden[:, -1] > 0.05)  # every step was clipped
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden, rtol=2e-4)


@pytest.mark.backends("tensorflow", "jax")
def test_records_compile_with_xla():
    """TensorFlow compiles its training step with XLA only on a GPU (jit_compile="auto");
    ask for it here, so that the measurements' operations are checked to exist in XLA."""
    x, y, w0 = regression_data()
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(K, use_bias=False, kernel_initializer=keras.initializers.Constant(w0))]
    )
    model.compile(optimizer=keras_adaptive.AdaGrad(learning_rate=0.1, epsilon=1e-7), loss="mse", jit_compile=True)
    monitor = OptimizerMonitor(every=2)
    model.fit(x, y, batch_size=N, epochs=4, shuffle=False, verbose=0, callbacks=[monitor])
    golden = reference_adagrad_records(x, y, w0, 0.1, 1e-7, 4)
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden[[1, 3]], rtol=2e-4)


def test_whole_model_records_match_numpy_adagrad():
    """`summary=True`: one variable, so the "(model)" record is that variable's, with the
    effective-LR percentiles by NumPy's inverted-CDF rule."""
    x, y, w0 = regression_data()
    lr, eps, epochs = 0.1, 1e-7, 5
    model = linear_model(w0, keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps))
    monitor = OptimizerMonitor(every=1, summary=True)
    history = model.fit(x, y, batch_size=N, epochs=epochs, shuffle=False, verbose=0, callbacks=[monitor])

    golden = reference_adagrad_records(x, y, w0, lr, eps, epochs, method="inverted_cdf")
    rows = [r for r in monitor.records if r["variable"] == "(model)"]
    assert [r["step"] for r in rows] == list(range(1, epochs + 1))
    got = np.array([[r[name] for name in monitor.stat_names] for r in rows])
    np.testing.assert_allclose(got, golden, rtol=2e-4)
    assert history.history["(model)/grad_norm"][-1] == pytest.approx(golden[-1, -1], rel=2e-4)


def test_weighted_percentiles_are_numpy_inverted_cdf_of_the_repeated_values():
    from keras_adaptive.callbacks import _weighted_percentiles

    rng = np.random.default_rng(0)
    values, weights = rng.normal(size=40), rng.integers(1, 5, size=40)
    q = [0, 10, 37.5, 50, 90, 100]
    np.testing.assert_array_equal(
        _weighted_percentiles(values, weights.astype(float), q),
        np.percentile(np.repeat(values, weights), q, method="inverted_cdf"),
    )


def test_whole_model_update_ratio_and_gradient_norm_are_global_norms():
    """Two layers with biases: the "(model)" update ratio is ||all changes|| / ||all weights
    before||, from weights the test reads itself after every step."""
    x, y = classification_data()
    model = mlp(keras_adaptive.RMSProp(learning_rate=0.01), jit_compile=False)
    model.layers[1].rate = 0.0
    weights = []

    class Weights(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            weights.append([w.astype(np.float64) for w in self.model.get_weights()])

    monitor = OptimizerMonitor(every=1, summary=True, log_to_history=False)
    weights.append([w.astype(np.float64) for w in model.get_weights()])
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[monitor, Weights()])
    rows = [r for r in monitor.records if r["variable"] == "(model)"]
    assert len(rows) == 3
    for k, row in enumerate(rows):
        change = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights[k + 1], weights[k])))
        before = np.sqrt(sum(np.sum(b**2) for b in weights[k]))
        assert row["update_ratio"] == pytest.approx(change / before, rel=1e-4)
        per_variable = [r["grad_norm"] for r in monitor.records if r["step"] == row["step"] and r is not row]
        assert row["grad_norm"] == pytest.approx(np.sqrt(np.sum(np.square(per_variable))), rel=1e-6)


def test_records_after_an_unmonitored_fit_and_through_a_checkpoint(tmp_path):
    """A training function traced before the monitor came is kept for the steps not recorded,
    and one of the monitor's own measures the others; monitoring adds nothing to the
    optimizer's state, which goes through a checkpoint whole."""
    x, y, w0 = regression_data()
    lr, eps = 0.1, 1e-7
    model = linear_model(w0, keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps))
    model.fit(x, y, batch_size=N, epochs=2, shuffle=False, verbose=0)
    monitor = OptimizerMonitor(every=2, log_to_history=False)
    model.fit(x, y, batch_size=N, epochs=5, shuffle=False, verbose=0, callbacks=[monitor])
    golden = reference_adagrad_records(x, y, w0, lr, eps, 7)
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    # The optimizer's steps 3-7: recorded are those that are multiples of 2.
    assert [r["step"] for r in monitor.records] == [4, 6]
    np.testing.assert_allclose(got, golden[[3, 5]], rtol=2e-4)

    unmonitored = keras_adaptive.AdaGrad()
    unmonitored.build(model.trainable_variables)
    assert len(model.optimizer.variables) == len(unmonitored.variables)
    path = str(tmp_path / "monitored.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert len(restored.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_records_between_steps_of_an_epoch_match_numpy_adagrad():
    """Four steps per epoch: most records fall in the middle of an epoch, where on JAX the
    monitor reads the trainer's state instead of the (stale) model variables."""
    x, y, w0 = regression_data()
    lr, eps, epochs, batch, every = 0.1, 1e-7, 3, N // 4, 3
    model = linear_model(w0, keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps))
    monitor = OptimizerMonitor(every=every)
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0, callbacks=[monitor])

    steps = epochs * N // batch
    golden = reference_adagrad_records(x, y, w0, lr, eps, steps, batch=batch)
    recorded_steps = [s for s in range(1, steps + 1) if s % every == 0]
    assert [r["step"] for r in monitor.records] == recorded_steps
    assert [r["epoch"] for r in monitor.records] == [(s - 1) // (N // batch) for s in recorded_steps]
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden[np.array(recorded_steps) - 1], rtol=2e-4)


@pytest.mark.backends("tensorflow", "jax")  # Keras' torch trainer refuses steps_per_execution > 1
def test_steps_per_execution_records_the_last_step_of_the_call_holding_a_multiple_of_every():
    x, y, w0 = regression_data()
    lr, eps, batch = 0.1, 1e-7, N // 4
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(K, use_bias=False, kernel_initializer=keras.initializers.Constant(w0))]
    )
    model.compile(optimizer=keras_adaptive.AdaGrad(learning_rate=lr, epsilon=eps), loss="mse", steps_per_execution=2)
    monitor = OptimizerMonitor(every=3, log_to_history=False)
    model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0, callbacks=[monitor])
    golden = reference_adagrad_records(x, y, w0, lr, eps, 8, batch=batch)
    # Calls hold steps (1, 2), (3, 4), (5, 6), (7, 8): steps 3 and 6 are in the second and third.
    assert [r["step"] for r in monitor.records] == [4, 6]
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden[[3, 5]], rtol=2e-4)


def test_sgd_effective_learning_rate_is_the_learning_rate():
    x, y, w0 = regression_data()
    model = linear_model(w0, keras_adaptive.SGD(learning_rate=0.05))
    monitor = OptimizerMonitor(every=1)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    assert len(monitor.records) == N // 8
    for record in monitor.records:
        assert record["elr_p10"] == record["elr_p50"] == record["elr_p90"] == pytest.approx(0.05)
        assert record["grad_norm"] > 0


OPTIMIZER_CASES = {
    **{name: (lambda cls=cls: cls()) for name, cls in keras_adaptive.OPTIMIZERS.items()},
    "adam-amsgrad": lambda: keras_adaptive.Adam(amsgrad=True),
    "adam-schedule": lambda: keras_adaptive.Adam(learning_rate=BiasCorrection(1e-3), bias_correction=False),
    "sgd-nesterov": lambda: keras_adaptive.SGD(momentum=0.9, nesterov=True),
    "rmsprop-centered-momentum": lambda: keras_adaptive.RMSProp(centered=True, momentum=0.9),
    "adadelta-momentum": lambda: keras_adaptive.AdaDelta(momentum=0.9),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_every_optimizer_is_monitored(case, tmp_path):
    x, y = classification_data()
    # Unjitted: 12 steps are cheaper run eagerly than compiled (JAX compiles for seconds).
    model = mlp(OPTIMIZER_CASES[case](), jit_compile=False)
    path = tmp_path / "monitor.csv"
    monitor = OptimizerMonitor(every=2, csv_path=str(path))
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[monitor])

    steps = 2 * (96 // 16)
    variables = [v.path for v in model.trainable_variables]
    assert len(monitor.records) == (steps // 2) * len(variables)
    assert sorted({r["variable"] for r in monitor.records}) == sorted(variables)
    for record in monitor.records:
        values = [record[name] for name in monitor.stat_names]
        assert np.all(np.isfinite(values)), record
        assert 0 < record["elr_p10"] <= record["elr_p50"] <= record["elr_p90"], record
        assert record["update_ratio"] > 0 and record["grad_norm"] > 0, record

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(monitor.records)
    assert list(rows[0]) == monitor.columns
    assert float(rows[-1]["elr_p50"]) == pytest.approx(monitor.records[-1]["elr_p50"])

    # The last record of each epoch lands in History.
    kernel = next(v for v in variables if "hidden" in v and "kernel" in v)
    assert len(history.history[f"{kernel}/elr_p50"]) == 2
    assert history.history[f"{kernel}/elr_p50"][-1] == pytest.approx(monitor.series(kernel, "elr_p50")[1][-1])


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_effective_learning_rate_at_indices_is_a_sample_of_the_whole(case):
    x, y = classification_data()
    model = mlp(OPTIMIZER_CASES[case](), jit_compile=False)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    kernel, bias = model.trainable_variables[:2]
    idx = np.sort(np.random.default_rng(0).choice(12 * 16, 40, replace=False)).astype("int32")
    optimizer = model.optimizer
    whole = [keras.ops.convert_to_numpy(optimizer.effective_learning_rate(v)).reshape(-1) for v in (kernel, bias)]
    sample = optimizer.effective_learning_rate_at([kernel, bias], [keras.ops.convert_to_tensor(idx), None])
    sample = keras.ops.convert_to_numpy(sample)
    assert sample.shape == (40 + 16,)
    np.testing.assert_allclose(sample, np.concatenate([whole[0][idx], whole[1]]), rtol=1e-6)


def test_effective_learning_rate_at_refuses_mixed_dtypes():
    optimizer = keras_adaptive.Adam()
    a, b = keras.Variable(np.zeros(3, "float32")), keras.Variable(np.zeros(3, "float16"), dtype="float16")
    optimizer.build([a, b])
    with pytest.raises(ValueError, match="one dtype"):
        optimizer.effective_learning_rate_at([a, b], [None, None])


def test_another_fit_reuses_the_observed_training_function():
    """Tracing and compiling again at every `fit` cost a fraction of a second each: a loop of
    one-epoch fits spent more time there than training."""
    x, y, w0 = regression_data()
    model = linear_model(w0, keras_adaptive.AdaGrad(learning_rate=0.1, epsilon=1e-7))
    monitor = OptimizerMonitor(every=1, log_to_history=False)
    model.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    observed = monitor._observed_function
    model.fit(x, y, batch_size=N, epochs=2, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor._observed_function is observed
    golden = reference_adagrad_records(x, y, w0, 0.1, 1e-7, 3)
    got = np.array([[r[name] for name in monitor.stat_names] for r in monitor.records])
    np.testing.assert_allclose(got, golden, rtol=2e-4)


def test_monitoring_does_not_change_training():
    """The gradient norms and the weight copies must not touch weights, optimizer state or metrics."""
    x, y = classification_data()
    losses = []
    for callbacks in ([], [OptimizerMonitor(every=1)]):
        model = mlp(keras_adaptive.Adam(learning_rate=0.01), seed=3)
        model.layers[1].rate = 0.0  # no dropout: the two runs must be bit-for-bit comparable
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
        losses.append((history.history["loss"], [w.copy() for w in model.get_weights()]))
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-6)
    for after, before in zip(losses[1][1], losses[0][1]):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)


def test_variables_filter_and_sampled_percentiles():
    x, y = classification_data()
    model = mlp(keras_adaptive.AdaGrad())
    monitor = OptimizerMonitor(every=3, variables=["hidden/kernel"], max_samples=50, log_to_history=False)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    assert {r["variable"] for r in monitor.records} == {"sequential/hidden/kernel"} or all(
        "hidden/kernel" in r["variable"] for r in monitor.records
    )
    assert len(monitor.records) == 2
    assert list(history.history) == ["loss"]
    df = monitor.to_dataframe()
    assert list(df.columns) == monitor.columns and len(df) == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"every": 0}, {"every": 2.5}, {"max_samples": 0}, {"percentiles": (10, 150)}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError, match="Argument `"):
        OptimizerMonitor(**kwargs)


def test_needs_an_optimizer_with_effective_learning_rate():
    x, y = classification_data()
    model = mlp(keras.optimizers.SGD())
    with pytest.raises(ValueError, match="effective_learning_rate"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[OptimizerMonitor()])
