"""keras_adaptive.sweep and `keras-adaptive sweep --model/--data`.

Golden numbers come from independent computations: a `compare` run of the one optimizer,
learning rate and seed (a sweep's run must be that run), and pandas on sweep.csv (the
sensitivity figures and the best learning rate). The model is tiny and the runs 8 steps long,
trained in this process on its backend.
"""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest

import keras_adaptive as ka
from keras_adaptive_gui import cli, engine, sweep

FEATURES = 4


def build_regressor():
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(1)], name="regressor"
    )


def regression_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = np.tanh(x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None].astype("float32")
    return x, y


SETTINGS = dict(epochs=2, batch_size=16, loss="mse", target={"val_loss": 0.4})


@pytest.fixture(scope="module")
def small_sweep():
    """SGD with momentum and Adam at 3 learning rates (the largest blows SGD up) over 2 seeds."""
    x, y = regression_data(32)
    validation = regression_data(16, seed=1)
    result = ka.sweep(
        build_regressor,
        (x, y),
        [("sgd", {"momentum": 0.9}), "adam"],
        learning_rates=[0.01, 0.1, 1e12],
        seeds=[3, 4],
        validation_data=validation,
        **SETTINGS,
    )
    return result, (x, y), validation


def test_a_sweep_run_equals_the_compare_run_of_its_optimizer_rate_and_seed(small_sweep):
    result, data, validation = small_sweep
    assert len(result.rows) == 2 * 3 * 2 and result.kind == "regress"
    checked = 0
    for row, s in zip(result.rows, result.comparison.series):
        if row["learning_rate"] != 0.1 and not (row["optimizer"] == "sgd" and row["learning_rate"] == 1e12):
            continue  # two rates per optimizer and seed are enough
        kwargs = {"learning_rate": row["learning_rate"]}
        if row["optimizer"] == "sgd":
            kwargs["momentum"] = 0.9
        single = ka.compare(
            build_regressor,
            data,
            [(row["optimizer"], kwargs)],
            seeds=[row["seed"]],
            validation_data=validation,
            **SETTINGS,
        )
        (one,) = single.series
        assert s.losses == one.losses and s.val_losses == one.val_losses, row["name"]
        # The row's figures, from the single run's records (pandas), not from the sweep's code.
        r = single.records
        steps = r[r.record == "step"].loss.to_numpy()
        finite = steps[np.isfinite(steps)]
        assert row["final_loss"] == (finite[-1] if np.isfinite(steps[-1]) else steps[-1])
        assert row["best_val_loss"] == (r[r.record == "epoch"].val_loss.min() if len(r[r.record == "epoch"]) else None)
        assert row["steps_to_target"] == one.target_step
        checked += 1
    assert checked == 6
    statuses = {(r["name"], r["learning_rate"]): r["status"] for r in result.rows}
    assert statuses[("sgd (momentum=0.9)", 1e12)] == "blown up"
    assert statuses[("adam", 0.1)] == "finished"


def test_sensitivity_and_best_rate_equal_pandas_on_sweep_csv(small_sweep, tmp_path):
    result, _, _ = small_sweep
    path = result.to_csv(str(tmp_path / "sweep.csv"))
    frame = pd.read_csv(path)
    assert list(frame.columns) == sweep.CSV_COLUMNS and len(frame) == 12
    assert json.loads(frame.hyperparameters[0])["momentum"] == 0.9 and "learning_rate" not in frame.hyperparameters[0]
    kept = frame[frame.status != "blown up"]
    stats = kept.groupby(["name", "learning_rate"]).agg(
        loss_median=("final_loss", "median"),
        loss_low=("final_loss", "min"),
        loss_high=("final_loss", "max"),
        metric_median=("best_val_loss", "median"),
        metric_low=("best_val_loss", "min"),
        metric_high=("best_val_loss", "max"),
    )
    blown = frame.assign(blown=frame.status == "blown up").groupby(["name", "learning_rate"]).blown.sum()
    points = result.sensitivity()
    assert len(points) == 6
    for p in points:
        key = (p["name"], p["learning_rate"])
        assert p["blown_up"] == blown[key]
        if key in stats.index:
            expected = stats.loc[key]
            for column in stats.columns:
                assert p[column] == pytest.approx(expected[column], rel=1e-12), (key, column)
        else:
            assert p["blown_up"] == 2 and p["loss_median"] is None
    assert blown[("sgd (momentum=0.9)", 1e12)] == 2
    # The same figures from the CSV read back by the page's reader.
    assert sweep.sensitivity(sweep.read_csv(path), result.kind) == points
    # Best learning rate: the lowest median best validation loss where no seed blew up.
    clean = stats[[blown[k] == 0 for k in stats.index]]
    table = {r["optimizer"]: r for r in result.table_rows()}
    for name in ("sgd (momentum=0.9)", "adam"):
        mine = clean.loc[name]
        assert table[name]["best learning rate"] == mine.metric_median.idxmin()
        assert table[name]["best validation loss (median)"] == pytest.approx(mine.metric_median.min())


def test_saved_sweep_has_its_files_and_bundles_that_open_in_the_page(small_sweep, tmp_path):
    result, _, _ = small_sweep
    paths = result.save(str(tmp_path))
    files = set(os.listdir(paths["folder"]))
    assert {"sweep.csv", "sweep.json", "sensitivity.png", "best-lr-curves.png"} <= files
    for png in (paths["sensitivity"], paths["curves"]):
        assert os.path.getsize(png) > 10_000
    assert len(paths["bundles"]) == 2  # one per seed
    opened = engine.load_bundle(paths["bundles"][1])
    assert len(opened.series) == 6 and opened.config.task == "own model"
    mine = [s for s in result.comparison.series if s.seed == 4]
    assert [s.losses for s in opened.series] == [s.losses for s in mine]
    described = json.loads(open(paths["json"]).read())["config"]
    assert [o["learning_rates"] for o in described["optimizers"]] == [[0.01, 0.1, 1e12]] * 2


def test_best_rate_curves_are_median_and_range_over_seeds(small_sweep):
    result, _, _ = small_sweep
    best = result.best()
    for c in result.curves():
        point = best[(c["name"], c["backend"])]
        runs = [
            s.losses
            for row, s in zip(result.rows, result.comparison.series)
            if row["name"] == c["name"] and row["learning_rate"] == point["learning_rate"]
        ]
        assert c["seeds"] == 2
        assert c["median"] == pytest.approx(np.median(np.array(runs), axis=0))
        assert c["high"] == pytest.approx(np.max(np.array(runs), axis=0))


@pytest.mark.parametrize(
    "learning_rates, message",
    [
        ([0.1, -1.0], "Argument `learning_rates`"),
        ("abc", "cannot read 'abc'"),
        ([], "Argument `learning_rates`"),
        ("1e-1:1e-3:3", "low must be below high"),
    ],
)
def test_a_bad_grid_is_refused_with_its_argument(learning_rates, message):
    x, y = regression_data(16)
    with pytest.raises(ValueError, match="learning_rates") as error:
        ka.sweep(build_regressor, (x, y), ["adam"], learning_rates=learning_rates, epochs=1, loss="mse")
    assert message in str(error.value)


def test_command_line_sweep_on_own_code_writes_its_files(tmp_path, monkeypatch, capsys, backend):
    module = tmp_path / "own_sweep_cli.py"
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
    base = ["sweep", "--model", "own_sweep_cli:build", "--data", "own_sweep_cli:load", "--loss", "mse"]
    base += ["--epochs", "2", "--batch-size", "8", "--backends", backend, "--no-progress"]
    for extra, message in [
        (["--optimizers", "sgd", "--learning-rates", "0,1"], "must be positive and finite"),
        (["--optimizers", "nope"], "Unknown optimizer 'nope'"),
        (["--optimizers", "sgd", "--seeds", "0"], "--seeds must be a whole number >= 1"),
    ]:
        with pytest.raises(SystemExit) as exit_code:
            cli.main(base + extra)
        assert exit_code.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["sweep", "--model", "no_such_module_here:build", "--data", "own_sweep_cli:load", "--loss", "mse"])
    err = capsys.readouterr().err
    assert exit_code.value.code == 2 and "error:" in err and "no_such_module_here" in err
    out = tmp_path / "out"
    argv = base + ["--optimizers", "sgd,adam", "--learning-rates", "1e-2:1e-1:2", "--seeds", "2", "--seed", "1"]
    with pytest.raises(SystemExit) as exit_code:
        cli.main(argv + ["--target", "val_loss=100", "--out", str(out)])
    printed = capsys.readouterr()
    assert exit_code.value.code == 0, printed.err[-3000:]
    assert printed.out.splitlines()[0].split()[:4] == ["optimizer", "backend", "best", "learning"]
    (folder,) = os.listdir(out)
    files = set(os.listdir(out / folder))
    assert {"sweep.csv", "sweep.json", "sensitivity.png", "best-lr-curves.png"} <= files
    assert len([f for f in files if engine.is_run_id(f)]) == 2
    rows = pd.read_csv(out / folder / "sweep.csv")
    assert len(rows) == 8 and set(rows.seed) == {1, 2} and set(rows.learning_rate) == {0.01, 0.1}
    # A row is the run `compare` makes with that optimizer, learning rate and seed.
    single = ka.compare(
        "own_sweep_cli:build",
        "own_sweep_cli:load",
        [("adam", {"learning_rate": 0.1})],
        epochs=2,
        batch_size=8,
        seeds=[2],
        loss="mse",
    )
    (row,) = rows[(rows.optimizer == "adam") & (rows.learning_rate == 0.1) & (rows.seed == 2)].itertuples()
    assert row.final_loss == single.series[0].losses[-1]
    assert row.best_val_loss == min(single.series[0].val_losses)


@pytest.mark.backends("jax")
def test_a_sweep_on_another_backend_trains_in_a_worker(small_sweep):
    """backends=[...]: the runs train in a worker process (here PyTorch's), from the weights
    made here: the same losses as this process's JAX runs up to float32 rounding."""
    result, data, validation = small_sweep
    other = ka.sweep(
        "tests.test_comparison_sweep:build_regressor",
        data,
        [("sgd", {"momentum": 0.9})],
        learning_rates=[0.1],
        seeds=[3],
        backends=["torch"],
        validation_data=validation,
        **SETTINGS,
    )
    (row,) = other.rows
    (here,) = [r for r in result.rows if r["optimizer"] == "sgd" and r["learning_rate"] == 0.1 and r["seed"] == 3]
    assert row["backend"] == "torch" and row["status"] == "finished"
    assert row["final_loss"] == pytest.approx(here["final_loss"], rel=1e-4)
    assert row["best_val_loss"] == pytest.approx(here["best_val_loss"], rel=1e-4)
