"""Sweeps: a reused warm worker gives the numbers of a fresh run, the sweep's runs equal
single runs, the sensitivity figures equal a computation from sweep.csv, and the
command line writes its files. Each pytest process runs on its own backend."""

from __future__ import annotations

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_adaptive.datasets import sample_path
from keras_adaptive_gui import engine, sweep, tasks, worker

BACKEND = keras.backend.backend()


def _config(**overrides):
    arguments = dict(
        task="mnist-mlp",
        optimizers=[("adam", {})],
        backends=[BACKEND],
        epochs=2,
        steps_per_epoch=4,
        batch_size=16,
        steps_2d=15,
        mnist_path=sample_path(),
    )
    arguments.update(overrides)
    return engine.check_config(**arguments)


def _records(messages):
    steps = [(r["series"], r["step"], r["loss"]) for m in messages if m["type"] == "steps" for r in m["rows"]]
    epochs = [(m["series"], m["step"], m["val_loss"], m["val_acc"]) for m in messages if m["type"] == "epoch"]
    return steps, epochs


def _fresh(config):
    """The compare path: a new _Trainer, new models and optimizers, the optimizer monitor on."""
    messages = []
    worker._Trainer(config.worker_config(BACKEND), messages.append, lambda: False).run()
    return messages


# --- the warm worker's reuse ---------------------------------------------------------------


@pytest.mark.parametrize("task", ["mnist-mlp", "quadratic"])
def test_a_reused_model_and_optimizer_give_the_numbers_of_a_fresh_run(task):
    """A persistent worker's cache keeps one compiled model and optimizer per (task, optimizer,
    hyperparameters other than learning_rate): after runs at other learning rates and seeds,
    a run equals, bit for bit, a fresh run (every loss and validation number)."""
    cache = worker.RunCache()
    optimizers = [("sgd", {"momentum": "0.9"}), ("adam", {}), ("keras.Adam", {})]
    order = [(0.1, 1), (0.01, 0), (0.001, 1)]  # the last one is compared after two reuses
    for key, raw in optimizers:
        for lr, seed in order:
            config = _config(task=task, optimizers=[(key, dict(raw, learning_rate=str(lr)))], seed=seed)
            reused = []
            worker._Trainer(dict(config.worker_config(BACKEND), stats=False), reused.append, lambda: False, cache).run()
        fresh = _fresh(config)
        assert _records(reused) == _records(fresh), key
        assert len(_records(fresh)[0]) == (16 if task == "quadratic" else 8)
    # one cached entry per optimizer, whatever the learning rates and seeds
    assert len(cache.entries) == len(optimizers)


def test_a_persistent_worker_takes_runs_and_calls_and_survives_an_error():
    """worker.serve's loop in this process: a call job's error, an unknown job's error, then a run.
    (The spawned workers of the sweeps below run worker.serve itself.)"""
    import queue as queue_module
    import threading

    inbox, outbox, stop = queue_module.Queue(), queue_module.Queue(), threading.Event()
    config = _config(task="quadratic", optimizers=[("sgd", {"learning_rate": "0.01"})])
    inbox.put({"job": "call", "id": "c", "target": "keras_adaptive_gui.tasks:contour_grid", "kwargs": {}})
    inbox.put({"job": "dance", "id": "x"})
    inbox.put({"job": "run", "id": 7, "config": dict(config.worker_config(BACKEND), stats=False)})
    inbox.put(None)
    worker.serve_jobs(inbox, outbox, stop)
    messages = []
    while not outbox.empty():
        messages.append(outbox.get())
    error = [m for m in messages if m["job"] == "c"]
    # contour_grid takes a name, not send/stopped: the call's TypeError is reported, not fatal
    assert error[-1]["type"] == "error" and "contour_grid" in error[-1]["message"]
    assert [m["type"] for m in messages if m["job"] == "x"] == ["error"]
    run = [m for m in messages if m["job"] == 7]
    assert run[0]["type"] == "ready" and run[-1] == {"type": "finished", "stopped": False, "job": 7}
    assert _records(run)[0] == _records(_fresh(config))[0]


def test_a_call_job_gets_send_and_stopped():
    import queue as queue_module
    import threading

    inbox, outbox, stop = queue_module.Queue(), queue_module.Queue(), threading.Event()
    inbox.put({"job": "call", "id": 1, "target": "tests.gui.test_sweep:_echo", "kwargs": {"x": 3}})
    inbox.put(None)
    worker.serve_jobs(inbox, outbox, stop)
    messages = [outbox.get() for _ in range(outbox.qsize())]
    assert messages == [{"type": "note", "x": 3, "job": 1}, {"type": "result", "value": 6, "job": 1}]


def _echo(x, send, stopped):
    send({"type": "note", "x": x})
    assert not stopped()
    return 2 * x


# --- grids and checks -----------------------------------------------------------------------


def test_default_grid_is_7_points_over_2_decades_either_side():
    grid = sweep.parse_grid("", 0.001, 15)
    assert len(grid) == 7
    assert np.allclose(grid, [1e-5, 10**-4.333333, 10**-3.666667, 1e-3, 10**-2.333333, 10**-1.666667, 1e-1], rtol=1e-5)
    assert np.allclose(sweep.parse_grid("1e-4:1e-1:4", 1, 15), [1e-4, 1e-3, 1e-2, 1e-1])
    assert sweep.parse_grid("0.1, 0.01,0.001", 1, 15) == [0.001, 0.01, 0.1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.1, -0.01", "must be positive and finite, got -0.01"),
        ("0, 0.1", "must be positive and finite, got 0"),
        ("abc", "cannot read 'abc'"),
        ("1e-4:1e-1", "cannot read '1e-4:1e-1'"),
        ("1e-4:1e-1:99", "has 99 points; at most 15"),
        ("1e-1:1e-4:3", "low must be below high"),
        ("1e-4:1e-1:2.5", "must be a whole number"),
    ],
)
def test_a_bad_grid_gets_a_message(text, message):
    with pytest.raises(ValueError) as error:
        sweep.check_sweep("quadratic", [("sgd", {})], [BACKEND], learning_rates=text, seeds=1)
    assert message in str(error.value) and "Learning rates of optimizer 1 (sgd)" in str(error.value)


def test_a_sweep_too_large_or_with_too_many_seeds_is_refused():
    with pytest.raises(ValueError, match="Sweep too large: 210 runs"):
        sweep.check_sweep("quadratic", [("sgd", {}), ("adam", {})], [BACKEND], learning_rates="1e-3:1:15", seeds=7)
    with pytest.raises(ValueError, match="Seeds must be between 1 and 10, got 11"):
        sweep.check_sweep("quadratic", [("sgd", {})], [BACKEND], seeds=11)
    with pytest.raises(ValueError, match="Target: a validation accuracy between 0 and 1"):
        sweep.check_sweep("mnist-mlp", [("sgd", {})], [BACKEND], seeds=1, target="90", mnist_path=sample_path())


# --- a real sweep over spawned warm workers ---------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """2 optimizers x 2 learning rates x 2 seeds on the MNIST MLP (sample), 2 x 4 steps; the
    larger SGD rate blows up (loss not finite)."""
    config = sweep.check_sweep(
        "mnist-mlp",
        [("adam", {}), ("sgd", {"momentum": "0.9"})],
        [BACKEND],
        learning_rates=["0.001, 0.01", "0.05, 1000"],
        seeds=2,
        first_seed=5,
        target="0.3",
        epochs=2,
        steps_per_epoch=4,
        batch_size=16,
        mnist_path=sample_path(),
    )
    pool = sweep.Pool()
    the_sweep = sweep.Sweep(config, workers_per_backend=1, pool=pool)
    try:
        frames = list(the_sweep.run(interval=0.05))
    finally:
        pool.close()
    folder = tmp_path_factory.mktemp("sweep")
    paths = the_sweep.save(str(folder))
    return the_sweep, frames, paths


def test_every_sweep_run_equals_a_single_run(small_sweep):
    the_sweep, frames, _ = small_sweep
    assert len(the_sweep.runs) == 8 and the_sweep.done() == 8 and len(frames) >= 2
    assert engine._slots_in_use == 0
    for run in the_sweep.runs:
        spec = run.spec
        single = _fresh(the_sweep.config.run_config(spec))
        steps, epochs = _records(single)
        assert [(0, st, loss) for st, loss in zip(run.series.steps, run.series.losses)] == steps, run.series.label
        assert [(0, *e) for e in zip(run.series.epoch_steps, run.series.val_losses, run.series.val_accs)] == epochs
    statuses = {(r.spec.optimizer, r.spec.learning_rate): r.status for r in the_sweep.runs}
    assert statuses[(1, 1000.0)] == "blown up" and statuses[(0, 0.001)] == "finished"


def test_sensitivity_figures_equal_a_computation_from_sweep_csv(small_sweep):
    the_sweep, _, paths = small_sweep
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == sweep.CSV_COLUMNS and len(rows) == 8
    assert sorted({int(r["seed"]) for r in rows}) == [5, 6]
    # Independently, with NumPy, from the CSV: median/min/max over the seeds that did not blow up.
    expected = {}
    for name in {r["name"] for r in rows}:
        for lr in {float(r["learning_rate"]) for r in rows if r["name"] == name}:
            group = [r for r in rows if r["name"] == name and float(r["learning_rate"]) == lr]
            kept = [r for r in group if r["status"] != "blown up"]
            acc = np.array([float(r["best_val_acc"]) for r in kept])
            loss = np.array([float(r["final_loss"]) for r in kept])
            expected[(name, lr)] = (
                len(group) - len(kept),
                (np.median(acc), acc.min(), acc.max()) if len(acc) else (None,) * 3,
                (np.median(loss), loss.min(), loss.max()) if len(loss) else (None,) * 3,
            )
    points = sweep.sensitivity(sweep.read_csv(paths["csv"]), "classify")
    assert len(points) == len(expected) == 4
    for p in points:
        blown, acc, loss = expected[(p["name"], p["learning_rate"])]
        assert p["blown_up"] == blown
        assert (p["metric_median"], p["metric_low"], p["metric_high"]) == pytest.approx(acc)
        assert (p["loss_median"], p["loss_low"], p["loss_high"]) == pytest.approx(loss)
    assert expected[("sgd (momentum=0.9)", 1000.0)][0] == 2  # both seeds blew up: marked, not dropped
    # The in-memory rows give the same figures as the CSV read back.
    assert sweep.sensitivity(the_sweep.result_rows(), "classify") == points
    table = sweep.table_rows(points, "classify", 0.3, "val_acc")
    by_name = {r["optimizer"]: r for r in table}
    assert by_name["sgd (momentum=0.9)"]["best learning rate"] == 0.05
    assert by_name["sgd (momentum=0.9)"]["no blow-up at"] == "1/2 learning rates"
    assert by_name["sgd (momentum=0.9)"]["at the grid's edge"] == "yes: widen it"
    adam = [p for p in points if p["name"] == "adam"]
    best = max(adam, key=lambda p: p["metric_median"])
    assert by_name["adam"]["best learning rate"] == best["learning_rate"]


def test_time_to_target_is_the_first_epoch_evaluation_that_reached_it(small_sweep):
    the_sweep, _, paths = small_sweep
    for row, run in zip(sweep.read_csv(paths["csv"]), the_sweep.runs):
        s = run.series
        hits = [step for step, acc in zip(s.epoch_steps, s.val_accs) if acc >= 0.3]
        if hits:
            assert row["steps_to_target"] == hits[0]
            assert row["seconds_to_target"] == pytest.approx(s.times[s.steps.index(hits[0])])
        else:
            assert row["steps_to_target"] is None and row["seconds_to_target"] is None


def test_best_learning_rate_curves_are_the_median_and_range_over_seeds(small_sweep):
    the_sweep, _, _ = small_sweep
    points = sweep.sensitivity(the_sweep.result_rows(), "classify")
    curves = the_sweep.curves(sweep.best_points(points, "classify"))
    assert {c["name"] for c in curves} == {"adam", "sgd (momentum=0.9)"}
    for c in curves:
        runs = [
            r.series.losses
            for r in the_sweep.runs
            if the_sweep.config.name(r.spec.optimizer) == c["name"] and r.spec.learning_rate == c["learning_rate"]
        ]
        assert c["seeds"] == 2 and c["steps"] == list(range(1, 9))
        assert c["median"] == pytest.approx([(a + b) / 2 for a, b in zip(*runs)])
        assert c["low"] == [min(a, b) for a, b in zip(*runs)]


def test_the_sweep_bundles_open_as_comparisons(small_sweep):
    the_sweep, _, paths = small_sweep
    assert len(paths["bundles"]) == 2
    opened = engine.load_bundle(paths["bundles"][0])
    assert opened.config.seed == 5 and len(opened.series) == 4
    run = next(r for r in the_sweep.runs if r.spec.seed == 5 and r.spec.optimizer == 0 and r.spec.learning_rate == 0.01)
    series = next(s for s in opened.series if s.label == run.series.label)
    assert series.losses == run.series.losses


def test_stop_ends_a_sweep_at_once_and_keeps_what_finished():
    config = sweep.check_sweep(
        "mnist-mlp",
        [("adam", {})],
        [BACKEND],
        learning_rates="1e-4:1e-2:3",
        seeds=2,
        epochs=1,
        steps_per_epoch=300,
        batch_size=16,
        mnist_path=sample_path(),
    )
    pool = sweep.Pool()
    the_sweep = sweep.Sweep(config, workers_per_backend=1, pool=pool).start()
    try:
        assert the_sweep.wait(timeout=0.0) is False
        import time

        deadline = time.monotonic() + 120
        while not any(r.status == "finished" for r in the_sweep.runs):
            the_sweep.poll()
            assert time.monotonic() < deadline, the_sweep.messages
            time.sleep(0.05)
        t0 = time.monotonic()
        the_sweep.stop()
        assert time.monotonic() - t0 < 5
    finally:
        pool.close()
    statuses = [r.status for r in the_sweep.runs]
    assert "finished" in statuses and set(statuses) <= {"finished", "at chance", "stopped", "not run"}
    assert len(the_sweep.result_rows()) == statuses.count("finished") + statuses.count("stopped")
    assert engine._slots_in_use == 0 and not the_sweep.running


def test_a_run_at_chance_is_blown_up_only_if_its_loss_went_up_on_the_way():
    """The chance rule of the comparisons, in a sweep: a rate too small to move ends "at chance"
    (kept, plotted); one whose loss rose above 10x its first on the way is blown up."""
    config = sweep.check_sweep(
        "mnist-mlp", [("sgd", {})], [BACKEND], learning_rates="1e-5, 1", seeds=1, mnist_path=sample_path()
    )
    the_sweep = sweep.Sweep(config, pool=sweep.Pool())
    for run, losses in zip(the_sweep.runs, ([2.3, 2.31, 2.32], [2.3, 40.0, 2.4])):
        for step, loss in enumerate(losses, 1):
            run.series.add_step({"step": step, "time": 0.01 * step, "loss": loss})
        run.series.epochs, run.series.epoch_steps, run.series.val_losses, run.series.val_accs = [1], [3], [2.3], [0.1]
        the_sweep._end_run(run.spec.index, "finished")
    assert [r.status for r in the_sweep.runs] == ["at chance", "blown up"]
    points = sweep.sensitivity(the_sweep.result_rows(), "classify")
    assert [(p["blown_up"], p["metric_median"]) for p in points] == [(0, 0.1), (1, None)]


# --- the command line --------------------------------------------------------------------------


def test_command_line_sweep_writes_csv_pngs_and_bundles(tmp_path, capsys):
    from keras_adaptive_gui import cli

    with pytest.raises(SystemExit) as exit_code:
        cli.main(["sweep", "--task", "quadratic", "--optimizers", "sgd", "--learning-rates", "0,1"])
    assert exit_code.value.code == 2
    assert "must be positive and finite, got 0" in capsys.readouterr().err
    out = tmp_path / "out"
    argv = ["sweep", "--task", "quadratic", "--optimizers", "sgd,adam", "--learning-rates", "1e-2:1e-1:2"]
    argv += ["--seeds", "2", "--steps", "30", "--backends", BACKEND, "--out", str(out), "--workers", "1"]
    with pytest.raises(SystemExit) as exit_code:
        cli.main(argv)
    printed = capsys.readouterr()
    assert exit_code.value.code == 0, printed.err[-3000:]
    assert "8 runs done" in printed.err and "100.0%" in printed.err
    assert printed.out.splitlines()[0].split()[:4] == ["optimizer", "backend", "best", "learning"]
    (folder,) = os.listdir(out)
    files = sorted(os.listdir(out / folder))
    assert {"sweep.csv", "sweep.json", "sensitivity.png", "best-lr-curves.png"} <= set(files)
    assert len([f for f in files if engine.is_run_id(f)]) == 2  # a bundle per seed
    with open(out / folder / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    # A sweep run is `compare --optimizers sgd:learning_rate=0.1 --seed 1`: same last loss.
    config = _config(task="quadratic", optimizers=[("sgd", {"learning_rate": "0.1"})], seed=1, steps_2d=30)
    last = _records(_fresh(config))[0][-1][2]
    (row,) = [r for r in rows if r["optimizer"] == "sgd" and float(r["learning_rate"]) == 0.1 and r["seed"] == "1"]
    assert float(row["final_loss"]) == last
    assert json.loads(row["hyperparameters"])["momentum"] == 0.0
    for png in ("sensitivity.png", "best-lr-curves.png"):
        assert (out / folder / png).stat().st_size > 10_000
    assert "UserWarning" not in printed.err
    assert tasks.TASKS["quadratic"].target_metric == "loss"
