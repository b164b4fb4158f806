"""keras_adaptive.compare and `keras-adaptive compare --model/--data`.

Golden numbers come from an independent computation: the same model trained by a plain loop
of `train_on_batch` here, or NumPy (a linear model's loss, an SGD's step size). The models
are tiny and the runs a few steps long; the test that spawns workers on other backends runs
in the JAX process only.
"""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest

import keras_adaptive as ka
from keras_adaptive import comparison_inputs
from keras_adaptive_gui import charts, cli, engine, history

FEATURES = 4


def build_regressor():
    """A module-level function: worker processes import it as tests.test_comparison:build_regressor."""
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(1)], name="regressor"
    )


def build_classifier():
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)], name="classifier")


def regression_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = np.tanh(x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None].astype("float32")
    return x, y


def as_batches(x, y, size: int):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def step_losses(comparison, series: int) -> np.ndarray:
    r = comparison.records
    return r[(r.series == series) & (r.record == "step")].sort_values("step").loss.to_numpy()


def plain_loop(optimizer, batches, epochs: int, x_val, y_val, seed: int = 0):
    """The independent reference: the model built after set_random_seed(seed), trained by
    train_on_batch; per-step losses and per-epoch validation MSE computed with NumPy."""
    keras.utils.set_random_seed(seed)
    model = build_regressor()
    model.compile(optimizer=optimizer, loss="mse")
    losses, val = [], []
    for _ in range(epochs):
        for bx, by in batches:
            model.reset_metrics()  # Keras 3.10's train_on_batch returns the running mean otherwise
            losses.append(float(np.asarray(model.train_on_batch(bx, by))))
        val.append(float(np.mean((np.asarray(model.predict_on_batch(x_val)) - y_val) ** 2)))
    return np.array(losses), np.array(val)


def test_records_match_a_plain_loop_of_train_on_batch():
    x, y = regression_data(64)
    x_val, y_val = regression_data(32, seed=1)
    batches = as_batches(x, y, 16)
    sgd_kwargs = {"learning_rate": 0.1, "momentum": 0.9}
    target = 0.5
    comparison = ka.compare(
        build_regressor,
        batches,
        [("sgd", sgd_kwargs), ka.Adam(learning_rate=0.01)],
        epochs=2,
        loss="mse",
        validation_data=(x_val, y_val),
        target=target,
    )
    references = [
        plain_loop(ka.SGD(**sgd_kwargs), batches, 2, x_val, y_val),
        plain_loop(ka.Adam(learning_rate=0.01), batches, 2, x_val, y_val),
    ]
    records = comparison.records
    assert list(records.columns) == [*engine.CSV_COLUMNS, "seed"]
    summary = comparison.summary()
    for series, (losses, val) in enumerate(references):
        np.testing.assert_allclose(step_losses(comparison, series), losses, rtol=1e-5, atol=1e-7)
        epochs = records[(records.series == series) & (records.record == "epoch")].sort_values("epoch")
        np.testing.assert_allclose(epochs.val_loss.to_numpy(), val, rtol=1e-5, atol=1e-7)
        assert epochs.step.tolist() == [4, 8]
        assert epochs.val_acc.isna().all()  # no accuracy metric
        reached = np.flatnonzero(losses <= target)
        row = summary.iloc[series]
        if reached.size:
            step = int(reached[0]) + 1
            assert row["target step"] == step
            steps = records[(records.series == series) & (records.record == "step")]
            assert row["target s"] == pytest.approx(float(steps[steps.step == step].time_s.iloc[0]), abs=1e-6)
        else:
            assert row["target step"] is None or pd.isna(row["target step"])
    assert {s.status for s in comparison.series} == {"finished"}
    # SGD's effective learning rate is its learning rate; the statistics are there for both.
    sgd = records[(records.series == 0) & (records.record == "step")]
    np.testing.assert_allclose(sgd.effective_lr.dropna().to_numpy(), 0.1, rtol=1e-6)
    assert records[(records.series == 1) & (records.record == "step")].grad_norm.notna().any()


COUNTER = {"calls": 0}


def build_counting():
    """Different initial weights at every call: compare must copy the first call's."""
    COUNTER["calls"] += 1
    value = 0.1 * COUNTER["calls"]
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(value))]
    )


def test_every_optimizer_starts_from_the_same_weights():
    x, y = regression_data(24)
    batches = as_batches(x, y, 8)
    COUNTER["calls"] = 0
    comparison = ka.compare(
        build_counting, batches, ["adam", "keras.SGD", ("rmsprop", {"learning_rate": 0.01})], epochs=1, loss="mse"
    )
    assert COUNTER["calls"] == 4  # once for the weights, once per optimizer
    kernel, bias = comparison.initial_weights[0]
    np.testing.assert_array_equal(kernel, np.full((FEATURES, 1), 0.1, "float32"))
    # NumPy's loss of the first batch at the first call's weights (kernel 0.1, bias 0).
    first = float(np.mean((batches[0][0] @ np.full((FEATURES, 1), 0.1) - batches[0][1]) ** 2))
    for series in range(3):
        assert step_losses(comparison, series)[0] == pytest.approx(first, rel=1e-5)
    records = comparison.records
    builtin = records[(records.series == 1) & (records.record == "step")]
    assert builtin.effective_lr.isna().all()  # Keras' own SGD has no effective learning rate


def test_seeds_share_batches_and_weights_within_a_seed_only():
    x, y = regression_data(48)
    comparison = ka.compare(
        build_regressor, (x, y), ["adam", "sgd"], epochs=1, steps_per_epoch=3, batch_size=8, seeds=2, loss="mse"
    )
    assert len(comparison.series) == 4
    records = comparison.records
    assert sorted(records.seed.unique()) == [0, 1]
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        expected = build_regressor().get_weights()
        for got, want in zip(comparison.initial_weights[seed], expected):
            np.testing.assert_array_equal(got, want)
        runs = sorted(records[records.seed == seed].series.unique())
        firsts = [step_losses(comparison, s)[0] for s in runs]
        assert firsts[0] == pytest.approx(firsts[1], rel=1e-6)
    assert not np.allclose(comparison.initial_weights[0][0], comparison.initial_weights[1][0])
    assert {s.label for s in comparison.series} == {
        "adam (learning_rate=0.001) · seed 0",
        "sgd (learning_rate=0.01) · seed 0",
        "adam (learning_rate=0.001) · seed 1",
        "sgd (learning_rate=0.01) · seed 1",
    }


def test_classifier_accuracy_target_and_a_blow_up():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    batches = as_batches(x, y, 16)
    logits_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    comparison = ka.compare(
        build_classifier,
        batches,
        {"steady": ("adam", {"learning_rate": 0.01})},
        epochs=2,
        loss=logits_loss,
        metrics=["accuracy"],
        validation_data=(x[:16], y[:16]),
        target={"val_acc": 0.0},
    )
    (steady,) = comparison.series
    assert steady.label == "steady" and steady.status == "finished"
    assert steady.target_step == 3  # reached at the first epoch's end (3 batches)
    assert steady.target_s == pytest.approx(steady.times[2])
    # The reference: the same training by hand, its validation accuracy from NumPy's argmax.
    keras.utils.set_random_seed(0)
    model = build_classifier()
    model.compile(optimizer=ka.Adam(learning_rate=0.01), loss=logits_loss)
    accuracies = []
    for _ in range(2):
        for bx, by in batches:
            model.train_on_batch(bx, by)
        accuracies.append(float(np.mean(np.argmax(model.predict_on_batch(x[:16]), axis=1) == y[:16])))
    assert steady.val_accs == pytest.approx(accuracies)
    assert comparison.config["classes"] == 3  # chance is 1/3 for the page's blow-up rule


def test_a_run_whose_loss_is_not_finite_is_blown_up_and_stopped():
    x, y = regression_data(32)
    comparison = ka.compare(
        build_regressor,
        as_batches(x * 100, y, 8),
        {"steady": ("sgd", {"learning_rate": 1e-4}), "wild": ("sgd", {"learning_rate": 1e12})},
        epochs=3,
        loss="mse",
    )
    steady, wild = comparison.series
    assert steady.status == "finished" and len(steady.steps) == 12
    assert wild.status == "blown up" and not np.isfinite(wild.losses[-1])
    assert wild.steps[-1] == wild.blown_up_at < 12  # stopped where its loss stopped being finite
    assert any(m.startswith("wild blew up") for m in comparison.messages)


def test_cli_gives_the_same_records_as_compare(tmp_path, monkeypatch, backend):
    module = tmp_path / "own_models_cli.py"
    module.write_text(
        "import keras\nimport numpy as np\n\n"
        "def build():\n"
        "    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation='relu'), "
        "keras.layers.Dense(1)])\n\n"
        "def load():\n"
        "    rng = np.random.default_rng(5)\n"
        "    x = rng.normal(size=(40, 3)).astype('float32')\n"
        "    y = (x.sum(axis=1, keepdims=True) ** 2).astype('float32')\n"
        "    return (x[:32], y[:32]), (x[32:], y[32:])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    argv = ["compare", "--model", "own_models_cli:build", "--data", "own_models_cli:load", "--loss", "mse"]
    argv += ["--optimizers", "adam,sgd:learning_rate=0.05", "--epochs", "2", "--batch-size", "8"]
    argv += ["--backends", backend, "--out", str(out), "--no-progress", "--target", "val_loss=100"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    (bundle,) = [p for p in out.iterdir() if p.is_dir()]
    assert (out / f"{bundle.name}.png").stat().st_size > 10_000
    meta = json.loads((bundle / "config.json").read_text())
    assert meta["format"] == engine.BUNDLE_FORMAT
    assert meta["config"]["task"] == "own model" and meta["config"]["model"] == "own_models_cli:build"
    from_cli = pd.read_csv(bundle / "records.csv", comment="#")
    api = ka.compare(
        "own_models_cli:build",
        "own_models_cli:load",
        [("adam", {}), ("sgd", {"learning_rate": 0.05})],
        epochs=2,
        batch_size=8,
        loss="mse",
        target={"val_loss": 100},
    )
    from_api = api.records
    assert list(from_cli.columns) == list(from_api.columns)
    pd.testing.assert_frame_equal(
        from_cli.drop(columns="time_s"), from_api.drop(columns="time_s"), check_dtype=False, rtol=1e-6
    )
    assert [r["target step"] for r in meta["summary"]] == [4, 4]  # (first epoch: 32 samples / 8)


@keras.saving.register_keras_serializable(package="tests")
class HalvedSGD(keras.optimizers.SGD):
    """A person's own optimizer class, in no catalog of the page: SGD at half its rate."""

    def __init__(self, learning_rate=0.02, halving=0.5, **kwargs):
        super().__init__(learning_rate=learning_rate * halving, **kwargs)
        self.halving = halving

    def get_config(self):
        config = super().get_config()
        config.update(halving=self.halving, learning_rate=config["learning_rate"] / self.halving)
        return config


def test_the_bundle_reads_back_as_the_page_reads_it(tmp_path):
    x, y = regression_data(32)
    comparison = ka.compare(
        build_regressor,
        (x, y),
        {"adam": "adam", "own": HalvedSGD()},
        epochs=2,
        batch_size=16,
        loss="mse",
        validation_data=(x, y),
    )
    path = comparison.save_bundle(str(tmp_path))
    loaded = engine.load_bundle(path)  # the page's reader: its task "own model" is not built in
    assert "own model" not in __import__("keras_adaptive_gui.tasks").tasks.TASKS
    assert loaded.config.task_facts.description == comparison.config["task_description"]
    for mine, read in zip(comparison.series, loaded.series):
        assert read.losses == mine.losses and read.val_losses == mine.val_losses
    # The own optimizer is described by its stored hyperparameters (the catalog does not know it).
    stored = loaded.config.to_json()["optimizers"][1]["hyperparameters"]
    assert stored["halving"] == 0.5 and stored["learning_rate"] == pytest.approx(0.02)
    assert "own: HalvedSGD(" in engine.config_text(loaded)
    page_figure = charts.figure([charts.Shown(loaded)], charts.DisplayOptions())
    assert {"loss-0", "loss-1", "val-loss-1"} <= {trace.get("meta") for trace in page_figure["data"]}
    figure = comparison.plot()
    metas = {trace.meta for trace in figure.data}
    assert {"loss-0", "val-loss-0", "lr-0"} <= metas
    png = comparison.save_png(str(tmp_path / "run.png"))
    assert os.path.getsize(png) > 10_000
    # A visitor of the page opens the bundle (its two files) and sees its runs.
    store = history.Store(str(tmp_path / "results"))
    visitor = history.new_visitor_id()
    run_id = store.open(visitor, [os.path.join(path, f) for f in (engine.CONFIG_FILE, engine.RECORDS_FILE)])
    opened = store.load(visitor, run_id)
    assert [s.losses for s in opened.series] == [s.losses for s in comparison.series]
    assert store.choices(visitor)[0][1] == run_id


def test_callbacks_are_driven_and_can_stop_a_run():
    x, y = regression_data(32)

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches, self.epoch_logs = 0, []

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == 3:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_logs.append(dict(logs))

    recorder = Recorder()
    comparison = ka.compare(
        build_regressor,
        (x, y),
        ["sgd"],
        epochs=3,
        batch_size=8,
        loss="mse",
        validation_data=(x, y),
        callbacks=[recorder],
    )
    (series,) = comparison.series
    assert series.status == "stopped by a callback" and series.steps == [1, 2, 3]
    assert recorder.batches == 3 and len(recorder.epoch_logs) == 1  # the stopped epoch still ends, as in fit
    assert recorder.epoch_logs[0]["val_loss"] == pytest.approx(series.val_losses[0])


def compiled_model():
    model = build_regressor()
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize(
    "build, data, optimizers, extra, message",
    [
        (compiled_model, None, ["adam"], {}, "returned a compiled model"),
        (lambda: keras.layers.Dense(1), None, ["adam"], {}, "must return an uncompiled keras.Model, got Dense"),
        (build_regressor, "wide", ["adam"], {}, r"Argument `data` does not fit the model: a batch of x \(8, 5\)"),
        (build_regressor, None, ["adamm"], {}, "unknown optimizer 'adamm'; the registered names are"),
        (build_regressor, None, [("adam", {"beta_1": 2.0})], {}, "beta_1"),
        (
            "no_such_module_xyz:build",
            None,
            ["adam"],
            {},
            "Argument `build_model`='no_such_module_xyz:build': cannot import",
        ),
        (build_regressor, "no_such_module_xyz:load", ["adam"], {}, "Argument `data`='no_such_module_xyz:load'"),
        (build_regressor, None, ["adam"], {"loss": None}, "Argument `loss` is missing"),
        (build_regressor, None, ["adam"], {"target": {"val_accuracy": 0.9}}, "Argument `target`"),
        (build_regressor, None, ["adam"], {"seeds": 0}, "Argument `seeds`"),
        (build_regressor, None, ["adam"], {"backends": ["theano"]}, "Argument `backends`"),
        (lambda: build_regressor(), None, ["adam"], {"backends": ["jax"]}, "is a lambda, so worker processes"),
    ],
)
def test_bad_input_names_what_is_wrong(build, data, optimizers, extra, message):
    x, y = regression_data(16)
    if data == "wide":
        data = (np.ones((16, FEATURES + 1), "float32"), y)
    elif data is None:
        data = (x, y)
    kwargs = {"epochs": 1, "batch_size": 8, "loss": "mse", **extra}
    with pytest.raises(ValueError, match=message):
        ka.compare(build, data, optimizers, **kwargs)


def test_cli_refuses_task_with_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compare", "--task", "adding", "--model", "a:b", "--data", "a:c", "--loss", "mse"])
    assert exit_info.value.code == 2
    assert "--task and --model are exclusive" in capsys.readouterr().err


@pytest.mark.backends("jax")
def test_backends_train_in_workers_from_the_same_weights():
    x, y = regression_data(32)
    batches = as_batches(x, y, 8)
    here = ka.compare(build_regressor, batches, ["adam"], epochs=1, loss="mse")
    there = ka.compare(build_regressor, batches, ["adam"], epochs=1, loss="mse", backends=["jax", "torch"])
    jax_run, torch_run = there.series
    assert (jax_run.backend, torch_run.backend) == ("jax", "torch")
    assert jax_run.label == "adam (learning_rate=0.001) · jax"
    np.testing.assert_allclose(jax_run.losses, here.series[0].losses, rtol=1e-6)
    np.testing.assert_allclose(torch_run.losses, here.series[0].losses, rtol=1e-4)  # float32 on two engines
    for got, want in zip(there.initial_weights[0], here.initial_weights[0]):
        np.testing.assert_array_equal(got, want)


def test_callbacks_with_backends_are_refused():
    x, y = regression_data(16)
    with pytest.raises(ValueError, match="Argument `callbacks` works in this process only"):
        ka.compare(
            build_regressor,
            (x, y),
            ["adam"],
            epochs=1,
            loss="mse",
            backends=["jax"],
            callbacks=[keras.callbacks.History()],
        )


def test_loss_and_metrics_from_a_compiled_template():
    x, y = regression_data(16)
    template = build_regressor()
    template.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    comparison = ka.compare(build_regressor, (x, y), ["adam"], epochs=1, batch_size=8, template=template)
    assert comparison.config["loss_name"] == "mse" and comparison.config["metrics"] == ["mae"]
    reference = ka.compare(build_regressor, (x, y), ["adam"], epochs=1, batch_size=8, loss="mse")
    np.testing.assert_allclose(comparison.series[0].losses, reference.series[0].losses, rtol=1e-6)


def test_split_loaded():
    x, y = np.zeros((4, 2)), np.zeros(4)
    assert comparison_inputs.split_loaded(((x, y), (x, y)))[1] is not None
    assert comparison_inputs.split_loaded((x, y))[1] is None


def test_a_dataset_and_a_generator_give_what_their_list_of_batches_gives():
    import tensorflow as tf

    x, y = regression_data(32)
    batches = as_batches(x, y, 8)
    listed = ka.compare(build_regressor, batches, ["adam"], epochs=2, loss="mse", validation_data=(x, y))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    from_dataset = ka.compare(build_regressor, dataset, ["adam"], epochs=2, loss="mse", validation_data=dataset)
    assert from_dataset.series[0].val_losses == pytest.approx(listed.series[0].val_losses, rel=1e-6)

    def forever():
        while True:
            yield from batches

    from_generator = ka.compare(build_regressor, forever(), ["adam"], epochs=2, steps_per_epoch=4, loss="mse")
    for other in (from_dataset, from_generator):
        np.testing.assert_array_equal(other.series[0].losses, listed.series[0].losses)
        assert other.config["batch_size"] == 8 and other.config["steps_per_epoch"] == 4
