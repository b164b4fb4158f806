"""keras_adaptive.find_learning_rate, on every backend: the ramp and the smoothing against NumPy,
the suggestion on a linear regression against its analytic stability bound, the model's and
the optimizer's state restored bit for bit, bad input, and the page's job (gui/lr_find_job.py)."""

import math

import keras
import numpy as np
import pytest

import keras_adaptive
from keras_adaptive.lr_finder import suggest

# --- a linear regression whose stable learning rates are known -------------------------

N, D = 256, 4
HESSIAN_EIGENVALUES = np.array([1.0, 1.8, 2.8, 4.0])  # of the MSE's Hessian 2/N X^T X, made so below


def regression():
    """X with 2/N X^T X having HESSIAN_EIGENVALUES (orthonormal columns, scaled), y = X w exactly."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(N, D)))
    x = q * np.sqrt(N) @ np.diag(np.sqrt(HESSIAN_EIGENVALUES / 2))
    y = x @ rng.normal(size=(D, 1))
    return x, y


def linear_model():
    inputs = keras.Input((D,))
    return keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inputs))


def test_sgd_suggestion_within_the_analytic_stable_range():
    x, y = regression()
    # Golden bound, independently: full-batch gradient descent on L(w) = mean((Xw - y)^2) contracts
    # every eigencomponent of the error iff lr < 2 / lambda_max(H), H = 2/N X^T X (float64 NumPy).
    critical = 2 / np.linalg.eigvalsh(2 / N * x.T @ x).max()
    assert math.isclose(critical, 2 / HESSIAN_EIGENVALUES.max(), rel_tol=1e-9)
    result = keras_adaptive.find_learning_rate(
        linear_model(),
        (x.astype("float32"), y.astype("float32")),
        optimizer="sgd",
        loss="mse",
        min_lr=1e-4,
        max_lr=10.0,
        steps=100,
        batch_size=N,  # one batch: gradient descent, so the bound is exact
    )
    # Below the bound the loss falls at every step, so the smoothed loss cannot reach 4x its best:
    # the test must stop, and only beyond the bound.
    assert result.stopped_at is not None
    assert result.learning_rates[-1] > critical
    assert np.all(np.isfinite(result.losses))
    for rule, lr in result.suggestions.items():
        assert critical / 100 <= lr < critical, (rule, lr, critical)
    assert result.suggestion == result.suggestions["valley"]


def test_ramp_and_smoothing_follow_the_stated_rules():
    x, y = regression()
    min_lr, max_lr, steps = 1e-5, 1e-2, 20  # too small to diverge: every step is recorded
    result = keras_adaptive.find_learning_rate(
        linear_model(), (x, y), optimizer="sgd", loss="mse", min_lr=min_lr, max_lr=max_lr, steps=steps, batch_size=32
    )
    i = np.arange(steps)
    np.testing.assert_allclose(result.learning_rates, min_lr * (max_lr / min_lr) ** (i / (steps - 1)), rtol=1e-12)
    average, smoothed = 0.0, []
    for k, value in enumerate(result.losses):  # the bias-corrected moving average, beta 0.98
        average = 0.98 * average + 0.02 * value
        smoothed.append(average / (1 - 0.98 ** (k + 1)))
    np.testing.assert_allclose(result.smoothed_losses, smoothed, rtol=1e-12)
    assert result.stopped_at is None
    # The first batch's loss is taken before any update: the mean of y^2 over that batch (w = 0).
    first = np.random.default_rng([0, 2]).permutation(N)[:32]  # Batches' order for seed 0
    np.testing.assert_allclose(result.losses[0], np.mean(y[first] ** 2), rtol=1e-5)


def test_suggestion_rules_on_known_curves():
    lrs = np.logspace(-6, 2, 81)
    # A loss falling fastest (per decade) at lr = 1e-2: -tanh(log10(lr) + 2).
    falling = -np.tanh(np.log10(lrs) + 2)
    assert math.isclose(np.log10(suggest(lrs, falling)["steepest"]), -2, abs_tol=0.11)
    # A V: down to index 60, then up. The valley rule lands in the middle of the descent.
    v = np.concatenate([np.linspace(5, 1, 61), np.linspace(1.1, 5, 20)])
    trimmed = slice(len(v) // 10, len(v) - 5)  # what suggest() looks at
    valley = suggest(lrs, v)["valley"]
    index = int(np.argmin(np.abs(lrs[trimmed] - valley)))
    descent = 61 - len(v) // 10
    assert descent / 3 <= index <= 2 * descent / 3
    assert math.isclose(suggest(lrs, v)["minimum/10"], lrs[60] / 10)


# --- state restored ---------------------------------------------------------------------


def model_with_state(weights=None):
    inputs = keras.Input((5,))
    h = keras.layers.Dense(8, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)  # non-trainable statistics
    h = keras.layers.Dropout(0.2, seed=3)(h)  # a seed state
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras_adaptive.Adam(learning_rate=1e-2), loss="mse")
    return model


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in variables]


def _state(model):
    return _values(model.trainable_variables) + _values(model.non_trainable_variables)


def _assert_bits_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


@pytest.mark.parametrize("trained_first", [False, True], ids=["unbuilt-optimizer", "built-optimizer"])
def test_state_restored_bit_for_bit_and_training_after_equals_an_untouched_twin(trained_first):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 5)).astype("float32")
    y = rng.normal(size=(128, 1)).astype("float32")
    model = model_with_state()
    twin = model_with_state(model.get_weights())
    if trained_first:
        for m in (model, twin):
            for i in range(2):
                m.train_on_batch(x[16 * i : 16 * (i + 1)], y[16 * i : 16 * (i + 1)])
    optimizer = model.optimizer
    before = _state(model)
    optimizer_before = _values(optimizer.variables)

    result = keras_adaptive.find_learning_rate(model, (x, y), min_lr=1e-5, max_lr=10.0, steps=30, batch_size=16)

    assert len(result.learning_rates) > 5
    _assert_bits_equal(_state(model), before)
    assert model.optimizer is optimizer and model.compiled and model.loss == "mse"
    assert optimizer.built == trained_first
    _assert_bits_equal(_values(optimizer.variables), optimizer_before)
    for i in range(3):  # the same steps on both: the same bits
        batch = slice(16 * i, 16 * (i + 1))
        model.train_on_batch(x[batch], y[batch])
        twin.train_on_batch(x[batch], y[batch])
    _assert_bits_equal(_state(model), _state(twin))
    _assert_bits_equal(_values(model.optimizer.variables), _values(twin.optimizer.variables))


def test_uncompiled_model_stays_uncompiled():
    x, y = regression()
    model = linear_model()
    result = keras_adaptive.find_learning_rate(model, (x, y), optimizer=keras.optimizers.SGD(), loss="mse", steps=10)
    assert len(result.losses) == 10 and not model.compiled and getattr(model, "optimizer", None) is None


def test_plot_marks_each_suggestion():
    import matplotlib

    matplotlib.use("Agg")
    x, y = regression()
    result = keras_adaptive.find_learning_rate(
        linear_model(), (x, y), optimizer="sgd", loss="mse", min_lr=1e-4, steps=60, batch_size=N
    )
    ax = result.plot(title="linear regression")
    labels = [line.get_label() for line in ax.get_lines()]
    assert "smoothed loss" in labels
    assert sum(label.startswith(("valley", "steepest", "minimum/10")) for label in labels) == 3
    assert ax.get_xscale() == "log"


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, "`max_lr` must be a finite number above min_lr=1"),
        ({"min_lr": 0.0}, "`min_lr` must be a positive finite number, got 0.0"),
        ({"steps": 3}, "`steps` must be an integer >= 5, got 3"),
        ({"optimizer": "adamm"}, "`optimizer`='adamm' is not an optimizer name"),
        ({"loss": "msee"}, "`loss`='msee' is not a keras loss name"),
        ({"loss": None}, "`loss` is None and the model is not compiled"),
        ({"optimizer": None}, "`optimizer` is None and the model is not compiled"),
        ({"rule": "lowest"}, "`rule` must be one of"),
        ({"data": (np.zeros((64, 3)), np.zeros((64, 1)))}, "`data`: the model cannot take a batch x of shape (32, 3)"),
        ({"data": (np.zeros((64, D)), np.zeros((60, 1)))}, "x has 64 samples but y has 60"),
        ({"model": "not a model"}, "`model` must be a keras.Model, got str"),
    ],
)
def test_bad_input_names_the_argument(overrides, message):
    x, y = regression()
    arguments = {"model": linear_model(), "data": (x, y), "optimizer": "sgd", "loss": "mse", **overrides}
    with pytest.raises(ValueError) as error:
        keras_adaptive.find_learning_rate(arguments.pop("model"), arguments.pop("data"), **arguments)
    assert message in str(error.value)


# --- the page's job -----------------------------------------------------------------------


def test_page_job_runs_the_range_test_on_a_built_in_task():
    from keras_adaptive_gui import lr_find_job

    sent = []
    message = lr_find_job.run(
        {"task": "mnist-mlp", "optimizer": "adam", "hyperparameters": {"learning_rate": "0.5", "beta_1": "0.8"}},
        sent.append,
        lambda: False,
        steps=40,
        min_lr=1e-5,
        max_lr=1.0,
    )
    # Progress messages come first (a few a second), each a step the run had reached; the result last.
    progress, final = sent[:-1], sent[-1]
    assert final == message and message["type"] == "lr_find" and message["task"] == "mnist-mlp"
    assert all(m["type"] == "progress" and m["steps"] == 40 for m in progress)
    for m in progress:
        assert 1 <= m["step"] <= 40
        assert m["learning_rate"] == pytest.approx(message["learning_rates"][m["step"] - 1])
        assert m["loss"] == pytest.approx(message["losses"][m["step"] - 1])
    assert [m["step"] for m in progress] == sorted({m["step"] for m in progress})
    assert len(message["learning_rates"]) == len(message["losses"]) == len(message["smoothed_losses"]) == 40
    assert set(message["suggestions"]) == {"valley", "steepest", "minimum/10"}
    assert 1e-5 <= message["suggestion"] <= 1.0
    # The first loss is the task's initial weights' loss on 10 classes: near log(10).
    assert abs(message["losses"][0] - math.log(10)) < 0.5


def test_page_job_stops_when_asked_and_refuses_a_2d_task():
    from keras_adaptive_gui import lr_find_job

    calls = []

    def stopped():
        calls.append(1)
        return len(calls) >= 6

    message = lr_find_job.run(task="adding", optimizer="sgd", steps=50, seq_len=10, stopped=stopped)
    assert len(message["losses"]) == 6 and message["stop_reason"] == "stopped by on_step"
    with pytest.raises(ValueError, match="`task` must be a model task"):
        lr_find_job.run(task="rosenbrock", optimizer="adam")
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        lr_find_job.run(task="adding", optimizer="adamm")


@pytest.mark.backends("jax")
def test_page_job_through_a_warm_worker():
    """The job as the page sends it: a 'call' to a persistent worker (worker.serve), another process."""
    import multiprocessing

    from keras_adaptive_gui import worker

    context = multiprocessing.get_context("spawn")
    inbox, outbox, stop = context.Queue(), context.Queue(), context.Event()
    process = context.Process(target=worker.serve, args=("jax", inbox, outbox, stop), daemon=True)
    process.start()
    try:
        kwargs = {"task": "adding", "optimizer": "adam", "seq_len": 10, "steps": 20}
        inbox.put({"job": "call", "id": 7, "target": "keras_adaptive_gui.lr_find_job:run", "kwargs": kwargs})
        messages = []
        while not messages or messages[-1]["type"] not in ("result", "error"):
            messages.append(outbox.get(timeout=300))
        types = [m["type"] for m in messages]
        assert set(types[:-2]) <= {"progress"} and types[-2:] == ["lr_find", "result"], messages[-1]
        assert all(m["job"] == 7 for m in messages)
        found, result = messages[-2], messages[-1]
        assert len(found["losses"]) == 20 and result["value"]["suggestion"] == found["suggestion"]
    finally:
        inbox.put(None)
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
