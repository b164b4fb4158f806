"""The GUI's engine without a browser: widgets from the registry, input checking, the
task/model builders, the worker protocol (in this process, on its backend), and real
spawned workers (a killed worker is reported; the command line runs a comparison)."""

from __future__ import annotations

import csv
import inspect
import json
import os
import signal
import time

import keras
import numpy as np
import pytest

import keras_adaptive
from keras_adaptive.datasets import sample_path
from keras_adaptive_gui import engine, history, hyperparams, tasks, worker
from tests.gui.conftest import console_script

BACKEND = keras.backend.backend()


# --- hyperparameters come from the library ---------------------------------------------


def test_catalog_offers_every_registered_optimizer_and_keras_namesakes():
    catalog = hyperparams.catalog()
    assert [k for k in catalog if not k.startswith("keras.")] == list(keras_adaptive.OPTIMIZERS)
    assert {"keras.SGD", "keras.Adam", "keras.RMSprop", "keras.Adagrad", "keras.Adadelta"} <= set(catalog)
    for key, cls in keras_adaptive.OPTIMIZERS.items():
        config = cls().get_config()
        for param in catalog[key].params:
            assert param.name in config, (key, param.name)  # a real hyperparameter of the class
            signature_default = None
            for klass in cls.__mro__:
                p = inspect.signature(klass.__init__).parameters.get(param.name) if "__init__" in vars(klass) else None
                if p is not None and p.default is not inspect.Parameter.empty:
                    signature_default = p.default
                    break
            assert param.default == signature_default, (key, param.name)
    adam = {p.name: p for p in catalog["adam"].params}
    assert adam["bias_correction"].kind == "bool" and adam["epsilon_placement"].choices == ("inside", "outside")
    assert "beta_1" in catalog["adamw"].param_names  # passed on to Adam through **kwargs
    assert "name" not in hyperparams.all_param_names() and "clipnorm" not in hyperparams.all_param_names()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("adam:learning_rate=abc", "`learning_rate` must be a number, got 'abc'"),
        ("adam:learning_rate=-1", "learning_rate"),
        ("adam:beta_1=1.5", "beta_1"),
        ("adam:learning_rate=1e300", "absurdly large"),
        ("adam:learning_rate=nan", "finite"),
        ("adam:epsilon_placement=middle", "must be one of ['inside', 'outside']"),
        ("adam:amsgrad=maybe", "must be true or false"),
        ("adam:lr=0.1", "has no hyperparameter ['lr']"),
        ("adam:learning_rate", "is not name=value"),
        ("__import__('os')", "Unknown optimizer"),
    ],
)
def test_bad_hyperparameters_are_refused_with_a_message(spec, message):
    with pytest.raises(ValueError) as error:
        hyperparams.parse_spec(spec)
    assert message in str(error.value)


def test_specs_are_parsed_not_evaluated():
    key, kwargs = hyperparams.parse_spec("RMSProp:learning_rate=0.01:centered=true:epsilon_placement=outside")
    assert key == "rmsprop" and kwargs == {"learning_rate": 0.01, "centered": True, "epsilon_placement": "outside"}
    assert hyperparams.describe(key, kwargs) == "rmsprop (learning_rate=0.01, centered=True, epsilon_placement=outside)"
    assert hyperparams.parse_spec("keras.adam")[0] == "keras.Adam"


def _config(**overrides):
    arguments = dict(
        task="mnist-mlp",
        optimizers=[("adam", {}), ("sgd", {"learning_rate": "0.1"})],
        backends=[BACKEND],
        epochs=1,
        steps_per_epoch=3,
        batch_size=16,
        mnist_path=sample_path(),
    )
    arguments.update(overrides)
    return engine.check_config(**arguments)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizers": []}, "Choose at least one optimizer."),
        ({"optimizers": [("adam", {})] * 7}, "Choose at most 6 optimizers, got 7."),
        ({"epochs": "two"}, "Epochs must be a whole number, got 'two'."),
        ({"epochs": -1}, "Epochs must be between 1 and 20, got -1."),
        ({"epochs": 20, "steps_per_epoch": 500}, "Run too long"),
        ({"batch_size": 1e9}, "Batch size must be between 1 and 512"),
        ({"backends": ["theano"]}, "Unknown backend 'theano'"),
        ({"backends": []}, "Choose a backend."),
        ({"task": "rosenbrock", "steps_2d": 0}, "Steps must be between 1 and 3000, got 0."),
        ({"task": "adding", "seq_len": 10000}, "Sequence length must be between 4 and 200"),
        ({"seed": 1.5}, "Seed must be a whole number"),
        ({"optimizers": [("adam", {"learning_rate": "x"})]}, "Optimizer 1 (adam): `learning_rate` must be a number"),
    ],
)
def test_bad_run_settings_are_refused_with_a_message(overrides, message):
    with pytest.raises(ValueError) as error:
        _config(**overrides)
    assert message in str(error.value)


def test_duplicate_optimizers_get_distinct_labels():
    config = _config(optimizers=[("adam", {}), ("adam", {}), ("adam", {"bias_correction": False})])
    assert [o.label for o in config.optimizers] == [
        "adam (learning_rate=0.001)",
        "adam (learning_rate=0.001) (2)",
        "adam (learning_rate=0.001, bias_correction=False)",
    ]


def test_duplicate_labels_survive_pandas_reading_the_csv_with_comment(tmp_path):
    """README: read the page's CSV with pandas.read_csv(path, comment="#"), which cuts a line at
    any "#": a label must not hold one."""
    import pandas as pd

    comparison = engine.Comparison(_config(task="quadratic", optimizers=[("adam", {}), ("adam", {})], steps_2d=3))
    for n, s in enumerate(comparison.series):
        for step in range(3):
            s.add_step({"step": step, "time": 0.1 * step, "loss": 1.0 + n + step, "x": 0.5, "y": -0.5})
    frame = pd.read_csv(comparison.write_csv(str(tmp_path / "records.csv")), comment="#")
    assert list(frame.columns) == engine.CSV_COLUMNS
    assert list(frame.optimizer.unique()) == ["adam (learning_rate=0.001)", "adam (learning_rate=0.001) (2)"]
    assert frame.loss.tolist() == [1.0, 2.0, 3.0, 2.0, 3.0, 4.0] and frame.y.tolist() == [-0.5] * 6


# --- tasks and models ----------------------------------------------------------------------


def test_batches_and_initial_weights_depend_only_on_the_seed():
    order = tasks.batch_order(100, 32, 5, 2, seed=3)
    assert order.shape == (2, 5, 32)
    assert np.array_equal(order, tasks.batch_order(100, 32, 5, 2, seed=3))
    assert not np.array_equal(order, tasks.batch_order(100, 32, 5, 2, seed=4))
    model = tasks.build_model("mnist-rnn", "LSTM")
    first = tasks.initial_weights(model.weights, seed=0)
    again = tasks.initial_weights(tasks.build_model("mnist-rnn", "LSTM").weights, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert [a.shape for a in first] == [tuple(w.shape) for w in model.weights]
    recurrent = [a for a, w in zip(first, model.weights) if "recurrent_kernel" in w.path][0]
    assert np.allclose(recurrent @ recurrent.T, np.eye(recurrent.shape[0]), atol=1e-5)  # orthogonal rows


def test_adding_problem_targets_are_the_sum_of_the_two_marked_numbers():
    x, y = tasks.adding_problem(50, 20, np.random.default_rng(0))
    assert x.shape == (50, 20, 2) and y.shape == (50, 1)
    assert np.all(x[..., 1].sum(axis=1) == 2)
    assert np.allclose((x[..., 0] * x[..., 1]).sum(axis=1), y[:, 0])


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "quadratic"])
def test_2d_functions_have_their_minimum_where_stated(name):
    fn = tasks.FUNCTIONS_2D[name]
    assert fn.f(*fn.minimum) == pytest.approx(0.0, abs=1e-12)
    xx, yy, zz = tasks.contour_grid(name, 50)
    assert zz.shape == (50, 50) and zz.min() >= 0


def _run_in_process(config: engine.RunConfig) -> list[dict]:
    """The worker's protocol, run in this process (its backend) instead of a subprocess."""
    messages = []
    worker._Trainer(config.worker_config(BACKEND), messages.append, lambda: False).run()
    return messages


def _rows(messages, series):
    return [r for m in messages if m["type"] == "steps" for r in m["rows"] if r["series"] == series]


def _stats(messages, series):
    """The optimizer statistics reported for `series`, by step."""
    rows = [r for m in messages if m["type"] == "steps" for r in m["stats"] if r["series"] == series]
    by_step = {r["step"]: r for r in rows}
    assert len(by_step) == len(rows), "a step's statistics were reported twice"
    return by_step


def test_worker_protocol_on_mnist_reports_batch_losses_from_the_same_start():
    config = _config(epochs=2, steps_per_epoch=3)
    messages = _run_in_process(config)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "ready" and kinds[-1] == "finished" and kinds.count("epoch") == 4
    assert messages[0]["backend"] == BACKEND
    adam, sgd = _rows(messages, 0), _rows(messages, 1)
    assert [r["step"] for r in adam] == [1, 2, 3, 4, 5, 6]
    # Same initial weights and same first batch: the first batch losses agree exactly.
    assert adam[0]["loss"] == sgd[0]["loss"]
    # It is the batch's own loss (before the update), not a running mean: recompute it.
    data = tasks.mnist_data("mnist-mlp", sample_path())
    first = tasks.batch_order(len(data.x_train), 16, 3, 2, config.seed)[0, 0]
    model = tasks.build_model("mnist-mlp")
    model.set_weights(tasks.initial_weights(model.weights, config.seed))
    logits = keras.ops.convert_to_numpy(model(data.x_train[first]))
    expected = keras.ops.convert_to_numpy(tasks.loss_for("mnist-mlp")(data.y_train[first], logits))
    assert adam[0]["loss"] == pytest.approx(float(expected), rel=1e-5)
    adam_stats, sgd_stats = _stats(messages, 0), _stats(messages, 1)
    assert sorted(adam_stats) == sorted(sgd_stats) == [1, 2, 3, 4, 5, 6]  # 6 steps: every step is recorded
    assert adam_stats[1]["effective_lr"] > 0
    assert all(r["effective_lr"] == pytest.approx(0.1) for r in sgd_stats.values())  # SGD's effective rate is its rate
    epochs = [m for m in messages if m["type"] == "epoch"]
    assert all(0 <= m["val_acc"] <= 1 and m["val_loss"] > 0 for m in epochs)


@pytest.mark.parametrize("task, cell", [("mnist-cnn", "LSTM"), ("mnist-rnn", "GRU"), ("adding", "LSTM")])
def test_every_model_task_trains_through_the_worker(task, cell):
    key = "keras.RMSprop" if task == "adding" else "rmsprop"
    config = _config(task=task, cell=cell, seq_len=8, optimizers=[(key, {})], steps_per_epoch=2)
    messages = _run_in_process(config)
    assert messages[-1] == {"type": "finished", "stopped": False}
    rows = _rows(messages, 0)
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    stats = _stats(messages, 0)
    if key.startswith("keras."):
        assert stats == {}  # OptimizerMonitor needs effective_learning_rate, which Keras' built-ins lack
    else:
        assert sorted(stats) == [1, 2]
        for r in stats.values():
            for name in engine.STATS:
                assert r[name] is not None and np.isfinite(r[name]) and r[name] > 0, (name, r)


def _mlp_loss_and_gradient(weights, x, y):
    """NumPy: mean softmax cross-entropy of the 784-64-10 ReLU MLP and its gradient."""
    w1, b1, w2, b2 = (np.asarray(w, dtype=np.float64) for w in weights)
    x = np.asarray(x, dtype=np.float64)
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    logits = h @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    dh = (d @ w2.T) * (z > 0)
    return loss, [x.T @ dh, dh.sum(axis=0), h.T @ d, d.sum(axis=0)]


def _global_norm(arrays):
    return np.sqrt(sum(np.sum(np.square(a)) for a in arrays))


def test_model_statistics_of_sgd_match_numpy():
    """The first two steps of SGD on the MLP, in NumPy: w_t = w_{t-1} - lr g_t with g_t the
    gradient of batch t at w_{t-1}; step t reports ||g_t|| and lr ||g_t|| / ||w_{t-1}||
    (global norms over all the weights)."""
    lr = 0.1
    config = _config(optimizers=[("sgd", {"learning_rate": str(lr)})], steps_per_epoch=2)
    stats = _stats(_run_in_process(config), 0)
    assert sorted(stats) == [1, 2]
    data = tasks.mnist_data("mnist-mlp", sample_path())
    batches = tasks.batch_order(len(data.x_train), 16, 2, 1, config.seed)[0]
    w = [w.astype(np.float64) for w in tasks.initial_weights(tasks.build_model("mnist-mlp").weights, config.seed)]
    for t, batch in enumerate(batches, 1):
        _, g = _mlp_loss_and_gradient(w, data.x_train[batch], data.y_train[batch])
        assert stats[t]["effective_lr"] == pytest.approx(lr, rel=1e-6)
        assert stats[t]["grad_norm"] == pytest.approx(_global_norm(g), rel=1e-4), t
        assert stats[t]["update_ratio"] == pytest.approx(lr * _global_norm(g) / _global_norm(w), rel=1e-4), t
        w = [wi - lr * gi for wi, gi in zip(w, g)]


def test_worker_on_a_2d_function_reports_the_path_and_marks_divergence():
    config = _config(
        task="quadratic",
        steps_2d=20,
        optimizers=[
            ("sgd", {"learning_rate": "0.01"}),
            ("sgd", {"learning_rate": "1"}),
            ("keras.SGD", {"learning_rate": "0.01"}),
        ],
    )
    messages = _run_in_process(config)
    path = _rows(messages, 0)
    assert (path[0]["x"], path[0]["y"]) == tasks.FUNCTIONS_2D["quadratic"].start
    assert len(path) == 21 and path[-1]["loss"] < path[0]["loss"]
    # One SGD step: w - lr * grad, with grad = (x, 50 y) computed by the backend.
    x0, y0 = path[0]["x"], path[0]["y"]
    assert (path[1]["x"], path[1]["y"]) == pytest.approx((x0 - 0.01 * x0, y0 - 0.01 * 50 * y0), rel=1e-6)
    diverged = [m for m in messages if m["type"] == "diverged"]
    assert [(m["series"], m["step"]) for m in diverged] == [(1, 4)]
    assert len(_rows(messages, 1)) == 5  # it stopped there; the other went on
    assert sorted(_stats(messages, 1)) == [1, 2, 3, 4]
    assert messages[-1]["type"] == "finished"


def test_2d_statistics_of_sgd_match_numpy():
    """SGD on the quadratic, in NumPy: p_t = p_{t-1} - lr grad f(p_{t-1}); step t reports the
    gradient norm ||grad f(p_{t-1})|| and the update ratio lr ||grad f(p_{t-1})|| / ||p_{t-1}||.
    Keras' SGD takes the same path; it has no effective learning rate, but the other two."""
    lr, steps = 0.01, 20
    config = _config(
        task="quadratic",
        steps_2d=steps,
        optimizers=[("sgd", {"learning_rate": str(lr)}), ("keras.SGD", {"learning_rate": str(lr)})],
    )
    messages = _run_in_process(config)
    p = np.array(tasks.FUNCTIONS_2D["quadratic"].start, dtype=np.float64)
    expected = {}
    for t in range(1, steps + 1):
        grad = np.array([p[0], tasks.QUADRATIC_CONDITION * p[1]])  # grad of (x² + 50 y²) / 2
        expected[t] = (np.linalg.norm(grad), lr * np.linalg.norm(grad) / np.linalg.norm(p))
        p = p - lr * grad
    for series in (0, 1):
        stats = _stats(messages, series)
        assert sorted(stats) == list(range(1, steps + 1))
        for t, (grad_norm, update_ratio) in expected.items():
            assert stats[t]["grad_norm"] == pytest.approx(grad_norm, rel=1e-5), (series, t)
            assert stats[t]["update_ratio"] == pytest.approx(update_ratio, rel=1e-4), (series, t)
        path = _rows(messages, series)
        assert (path[-1]["x"], path[-1]["y"]) == pytest.approx(tuple(p), rel=1e-5, abs=1e-9)
    ours, builtin = _stats(messages, 0), _stats(messages, 1)
    lr_steps = [t for t, r in ours.items() if r["effective_lr"] is not None]
    assert lr_steps == list(range(1, steps + 1)) and all(ours[t]["effective_lr"] == pytest.approx(lr) for t in lr_steps)
    assert all(r["effective_lr"] is None for r in builtin.values())


# --- real worker processes ------------------------------------------------------------------


def test_a_killed_worker_is_reported_and_its_curves_are_kept():
    # 5,000 MNIST steps: far from done when killed (a 2-D run can finish between two polls).
    config = _config(epochs=20, steps_per_epoch=250, optimizers=[("adam", {"learning_rate": "0.01"})])
    comparison = engine.Comparison(config).start()
    try:
        deadline = time.monotonic() + 90
        while not (comparison.series[0].steps and comparison.series[0].steps[-1] >= 5):
            comparison.poll()
            assert comparison.running, comparison.messages
            assert time.monotonic() < deadline, "the worker never reported steps"
            time.sleep(0.05)
        os.kill(comparison.workers[0].process.pid, signal.SIGKILL)
        assert comparison.wait(timeout=10)
    finally:
        comparison.stop()
    assert comparison.series[0].status == "worker died"
    assert "worker process died (exit code -9, killed by a signal, perhaps out of memory)" in comparison.messages[0]
    assert len(comparison.series[0].steps) >= 5
    assert comparison.summary()[0]["status"] == "worker died"
    assert engine._slots_in_use == 0


def test_command_line_compare_prints_the_table_and_writes_csv_and_png(tmp_path, capsys):
    """`keras-adaptive compare`, called in this process (its worker is a real spawned process)."""
    from keras_adaptive_gui import cli

    assert console_script("keras-adaptive")
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["compare", "--task", "quadratic", "--optimizers", "adam:learning_rate=abc"])
    assert exit_code.value.code == 2
    assert "`learning_rate` must be a number, got 'abc'" in capsys.readouterr().err
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_code:
        cli.main(
            [
                "compare",
                "--task",
                "beale",
                "--optimizers",
                "adam:learning_rate=0.05,rmsprop:learning_rate=0.01",
                "--backends",
                BACKEND,
                "--steps",
                "40",
                "--out",
                str(out),
            ]
        )
    printed = capsys.readouterr()
    assert exit_code.value.code == 0, printed.err[-3000:]
    assert "100.0% done" in printed.err
    lines = printed.out.splitlines()
    assert lines[0].split()[:3] == ["optimizer", "backend", "status"]
    assert "adam (learning_rate=0.05)" in printed.out and "finished" in printed.out
    assert "wrote the run bundle" in printed.out
    (bundle,) = [d for d in os.listdir(out) if os.path.isdir(out / d)]
    assert sorted(os.listdir(out / bundle)) == ["config.json", "records.csv"]
    with open(out / bundle / "records.csv") as f:
        assert f.readline().startswith("# keras-adaptive run {")
        rows = list(csv.DictReader(f))
    assert len([r for r in rows if r["record"] == "step"]) == 2 * 41
    # Every step after the start has its update ratio and gradient norm; the effective LR is sampled.
    steps = [r for r in rows if r["record"] == "step" and r["step"] != "0"]
    assert len(steps) == 2 * 40
    assert all(float(r["update_ratio"]) > 0 and float(r["grad_norm"]) > 0 for r in steps)
    assert all(float(r["effective_lr"]) > 0 for r in steps if r["effective_lr"])
    assert len([r for r in steps if r["effective_lr"]]) == 2 * 40  # 40 steps < STATS_POINTS: every step
    assert (out / f"{bundle}.png").stat().st_size > 10_000
    # The bundle reads back as the run it was: the page opens it the same way.
    again = engine.load_bundle(str(out / bundle))
    assert again.config.task == "beale" and [s.label for s in again.series] == [
        "adam (learning_rate=0.05)",
        "rmsprop (learning_rate=0.01)",
    ]
    assert [len(s.steps) for s in again.series] == [41, 41] and again.series[0].status == "finished"
    with open(out / bundle / "config.json") as f:
        meta = json.load(f)
    assert meta["config"]["optimizers"][1]["hyperparameters"]["centered"] is False  # every hyperparameter
    assert meta["config"]["steps"] == 40 and meta["config"]["seed"] == 0 and meta["versions"]["keras"]


def test_stop_after_the_workers_finished_says_so():
    """The worker has done every step (and said so) but nobody has read that yet when Stop
    comes: the run is "finished", not "stopped", and the steps are all there."""
    config = _config(task="quadratic", steps_2d=5, optimizers=[("adam", {})])
    comparison = engine.Comparison(config).start()
    comparison.workers[0].process.join(timeout=120)
    assert comparison.workers[0].process.exitcode == 0
    comparison.stop()
    assert comparison.stopped and comparison.finished_before_stop()
    assert comparison.series[0].status == "finished" and comparison.series[0].steps[-1] == 5


def test_a_finished_worker_is_joined_not_left_a_zombie():
    """A worker that said "finished" has exited; unless joined it stays a zombie (`[ka-run]
    <defunct>`) as long as the server runs."""
    comparison = engine.Comparison(_config(task="quadratic", steps_2d=5, optimizers=[("adam", {})]))
    for _ in comparison.run(interval=0.05):
        pass
    (worker,) = comparison.workers
    assert comparison.series[0].status == "finished"
    # Reaped: the process table no longer holds it (a zombie's /proc/<pid>/stat says "Z" for good).
    stat = f"/proc/{worker.process.pid}/stat"
    deadline = time.monotonic() + 30  # its interpreter's shutdown
    while os.path.exists(stat) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(stat), open(stat).read()


def test_stop_reports_the_step_the_worker_reached():
    config = _config(epochs=20, steps_per_epoch=250, optimizers=[("adam", {})])
    comparison = engine.Comparison(config).start()
    try:
        deadline = time.monotonic() + 90
        while not (comparison.series[0].steps and comparison.series[0].steps[-1] >= 5):
            comparison.poll()
            assert time.monotonic() < deadline, "the worker never reported steps"
            time.sleep(0.05)
    finally:
        comparison.stop()
    s = comparison.series[0]
    assert s.status == "stopped" and not comparison.finished_before_stop()
    # The worker answered Stop with everything up to its last step: no step is missing.
    assert s.steps == list(range(1, s.steps[-1] + 1)) and s.steps[-1] < 5000


def test_run_history_keeps_each_visitor_apart_across_a_restart(tmp_path):
    comparison = engine.Comparison(_config(task="quadratic", steps_2d=3))
    for s in comparison.series:
        for step in range(4):
            s.add_step({"step": step, "time": 0.0, "loss": 1.0, "x": 0.0, "y": 0.0})
        s.status = "finished"
    store = history.Store(str(tmp_path))
    me, other = history.new_visitor_id(), history.new_visitor_id()
    store.save(me, comparison)
    assert store.run_ids(me) == [comparison.run_id] and store.run_ids(other) == []
    restarted = history.Store(str(tmp_path))  # a new server on the same results folder
    assert restarted.secret() == store.secret()  # the browsers' stored ids still decrypt
    assert restarted.run_ids(me) == [comparison.run_id]
    assert [len(s.steps) for s in restarted.load(me, comparison.run_id).series] == [4, 4]
    assert restarted.load(other, comparison.run_id) is None
    for bad in ("../../etc", "", None, me.upper()):
        assert restarted.run_ids(bad) == [] and restarted.load(bad, comparison.run_id) is None
    assert not restarted.delete(me, "../" + comparison.run_id)
    with pytest.raises(ValueError, match="config.json and records.csv"):
        restarted.open(other, [os.path.join(str(tmp_path), "visitors", me, comparison.run_id, "config.json")])
    opened = restarted.open(
        other,
        [os.path.join(str(tmp_path), "visitors", me, comparison.run_id, f) for f in ("config.json", "records.csv")],
    )
    assert restarted.run_ids(other) == [opened]
    assert restarted.delete(me, comparison.run_id) and restarted.run_ids(me) == []


# --- the page's runs on warm persistent workers (sweep.Pool, worker.serve) ---------------------


@pytest.fixture(scope="module")
def pool():
    """A pool of this module's own: its worker is started once and reused by the tests below."""
    from keras_adaptive_gui import sweep

    workers = sweep.Pool()
    yield workers
    workers.close()


def _pooled(config, pool) -> engine.Comparison:
    comparison = engine.Comparison(config)
    comparison.pool = pool
    return comparison.start()


def _numbers(comparison: engine.Comparison) -> list:
    return [(s.steps, s.losses, s.val_losses, s.val_accs, s.stats, s.status) for s in comparison.series]


def test_a_run_on_a_warm_pool_worker_gives_the_numbers_of_a_fresh_process(pool):
    """Twice the same run on one persistent worker (the second reuses its built model, compiled
    training function and optimizer monitor) and once in a fresh process: the same numbers,
    every loss, statistic and validation value bit for bit."""
    config = _config(steps_per_epoch=6)
    fresh = engine.Comparison(config).start()  # this test process disables warm workers: a fresh one
    assert fresh.workers[0].pooled is None and fresh.wait(timeout=120)
    first = _pooled(config, pool)
    pid = first.workers[0].process.pid
    assert first.wait(timeout=120) and engine._slots_in_use == 0
    again = _pooled(config, pool)
    assert again.workers[0].process.pid == pid  # the same warm process
    assert again.wait(timeout=60)
    assert _numbers(fresh) == _numbers(first) == _numbers(again)
    assert [s.status for s in again.series] == ["finished", "finished"] and again.series[0].steps[-1] == 6
    assert all(len(s.stats["grad_norm"][0]) == 6 for s in again.series)  # the monitor recorded this run's steps
    assert [w.process.pid for w in pool._idle[BACKEND]] == [pid]  # back in the pool, alive


def test_stop_ends_a_pooled_run_at_the_step_reached_and_the_worker_lives_on(pool):
    comparison = _pooled(_config(epochs=20, steps_per_epoch=250, optimizers=[("adam", {})]), pool)
    pid = comparison.workers[0].process.pid
    try:
        deadline = time.monotonic() + 90
        while not (comparison.series[0].steps and comparison.series[0].steps[-1] >= 5):
            comparison.poll()
            assert time.monotonic() < deadline, "the worker never reported steps"
            time.sleep(0.05)
    finally:
        comparison.stop()
    s = comparison.series[0]
    assert s.status == "stopped" and not comparison.finished_before_stop()
    assert s.steps == list(range(1, s.steps[-1] + 1)) and s.steps[-1] < 5000  # everything up to its step
    assert engine._slots_in_use == 0
    # It answered Stop, so it went back to the pool, and its next run is a run like any other.
    (kept,) = pool._idle[BACKEND]
    assert kept.process.pid == pid and kept.alive and not kept.stop.is_set()
    after = _pooled(_config(task="quadratic", steps_2d=5, optimizers=[("adam", {})]), pool)
    assert after.workers[0].process.pid == pid and after.wait(timeout=60)
    assert after.series[0].status == "finished" and after.series[0].steps == list(range(6))
    comparison.stop()  # a Stop of an ended run leaves the worker (now the pool's) alone
    assert pool._idle[BACKEND][0].alive


def test_stop_after_a_pooled_run_finished_says_so(pool):
    """The worker has sent its last message but nobody has read it when Stop comes: the run is
    "finished", not "stopped", and the worker goes back to the pool."""
    comparison = _pooled(_config(task="quadratic", steps_2d=5, optimizers=[("adam", {})]), pool)
    w = comparison.workers[0]
    sent, deadline = [], time.monotonic() + 60
    while not sent or sent[-1].get("type") != "finished":  # read behind the run's back, then put back
        sent.append(w.queue.get(timeout=max(0.1, deadline - time.monotonic())))
    for message in sent:
        w.queue.put(message)
    comparison.stop()
    assert comparison.stopped and comparison.finished_before_stop()
    assert comparison.series[0].status == "finished" and comparison.series[0].steps[-1] == 5
    assert pool._idle[BACKEND][0].process.pid == w.process.pid


def test_a_killed_pool_worker_is_reported_and_replaced(pool):
    comparison = _pooled(_config(epochs=20, steps_per_epoch=250, optimizers=[("adam", {})]), pool)
    pid = comparison.workers[0].process.pid
    try:
        deadline = time.monotonic() + 90
        while not (comparison.series[0].steps and comparison.series[0].steps[-1] >= 5):
            comparison.poll()
            assert time.monotonic() < deadline, "the worker never reported steps"
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        assert comparison.wait(timeout=10)
    finally:
        comparison.stop()
    assert comparison.series[0].status == "worker died" and "exit code -9" in comparison.messages[0]
    assert engine._slots_in_use == 0 and not pool._idle.get(BACKEND)
    replacement = pool.take(BACKEND)  # a new process
    try:
        assert replacement.process.pid != pid and replacement.alive
    finally:
        replacement.end()
