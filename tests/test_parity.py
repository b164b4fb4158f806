"""Backend parity: `keras-adaptive parity` and keras_adaptive.testing.assert_backends_agree.

The runs spawn one process per backend, so they belong to one backend's pytest process only
(`backends("torch")`), with a tiny model (tests/parity_models.py) and 5 steps. The pairwise
comparison and the argument checks need no workers and run everywhere.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_adaptive import parity, testing
from tests import parity_models

ROOT = Path(__file__).resolve().parent.parent
MODEL, DATA = "tests.parity_models:mlp", "tests.parity_models:regression_data"

# Runs the command line as a user would, and says at exit whether Keras was imported there.
CLI = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('keras imported:', 'keras' in sys.modules))\n"
    "from keras_adaptive_gui import cli\n"
    "cli.main(sys.argv[1:])\n"
)


def run_cli(*arguments):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-c", CLI, "parity", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def first_loss_numpy():
    """The MSE of the first batch from parity_models' NumPy weights, in float64: the batch is the
    first 32 of the permutation that Batches draws for seed 0 (default_rng([seed, 2]))."""
    x, y = parity_models.regression_data()
    w1, b1, w2, b2 = (w.astype(np.float64) for w in parity_models.mlp_weights())
    batch = np.random.default_rng([0, 2]).permutation(len(x))[:32]
    out = np.tanh(x[batch] @ w1 + b1) @ w2 + b2
    return float(np.mean((out - y[batch]) ** 2))


@pytest.mark.backends("torch")
def test_cli_passes_on_a_deterministic_model_without_importing_keras():
    result = run_cli("--model", MODEL, "--data", DATA, "--optimizer", "adam:learning_rate=0.01", "--steps", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "within tolerance" in out and "keras imported: False" in out
    for pair in ("tensorflow vs jax", "tensorflow vs torch", "jax vs torch"):
        line = next(line for line in out.splitlines() if line.startswith(pair))
        assert line.rstrip().endswith("agree")
    assert "Adam (learning_rate=0.01)" in out
    assert "TF_ENABLE_ONEDNN_OPTS=0" in out and "torch.use_deterministic_algorithms(True)" in out
    assert "random numbers" in out  # the sources it cannot control are named
    # Same weights on the same first batch on every backend: the loss NumPy computes.
    expected = first_loss_numpy()
    rows = [row for row in map(str.split, out.splitlines()) if row[:1] in (["tensorflow"], ["jax"], ["torch"])]
    rows = [row for row in rows if row[1] != "vs"]
    assert len(rows) == 3
    for row in rows:
        assert abs(float(row[-3]) - expected) <= 1e-5 * expected, (row, expected)


@pytest.mark.backends("torch")
def test_cli_exits_1_when_a_backend_differs():
    result = run_cli(
        "--model", "tests.parity_models:mlp_off_on_jax", "--data", DATA, "--steps", "5", "--backends", "jax,torch"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("jax vs torch"))
    assert "DIFFER" in line
    assert "BEYOND TOLERANCE" in result.stdout


@pytest.mark.backends("torch")
def test_cli_bad_optimizer_and_module_exit_2_with_the_reason():
    result = run_cli("--model", MODEL, "--data", DATA, "--optimizer", "adamm", "--backends", "torch,jax")
    assert result.returncode == 2
    assert "`optimizer`='adamm' is not an optimizer name" in result.stderr
    result = run_cli("--model", "no_such_module:build", "--data", DATA)  # found before any worker starts
    assert result.returncode == 2
    assert "Argument `model`='no_such_module:build': cannot import 'no_such_module'" in result.stderr


# --- no workers ------------------------------------------------------------------------------


def _run(backend, losses, weights):
    return parity.BackendRun(backend, np.array(losses, dtype=float), [np.array(w, dtype=float) for w in weights])


def test_pairwise_comparison_by_hand():
    runs = {
        "tensorflow": _run("tensorflow", [2.0, 1.0, 0.5], [[1.0, 2.0]]),
        "jax": _run("jax", [2.0, 1.0005, 0.5], [[1.0, 2.0001]]),
        "torch": _run("torch", [2.004, 1.0, np.nan], [[1.0, 2.0]]),
    }
    tf_jax, tf_torch, jax_torch = parity.compare_runs(runs, tolerance=1e-3)
    # |1.0005 - 1| = 5e-4 <= 1e-3 * max(1, 1.0005); weights 1e-4 <= 1e-3 * 2.0001
    assert tf_jax.agree and tf_jax.max_loss_step == 2 and np.isclose(tf_jax.max_loss_difference, 5e-4)
    assert np.isclose(tf_jax.max_weight_difference, 1e-4)
    # |2.004 - 2| = 4e-3 > 1e-3 * 2.004 at step 1; a NaN against a number at step 3
    assert tf_torch.first_step_beyond == 1 and not tf_torch.agree and tf_torch.max_loss_difference == np.inf
    assert jax_torch.first_step_beyond == 1


def test_assert_backends_agree_raises_with_the_report(monkeypatch):
    runs = {"jax": _run("jax", [1.0], [[0.0]]), "torch": _run("torch", [1.5], [[0.0]])}
    report = parity.ParityReport(runs, parity.compare_runs(runs, 1e-3), 1e-3, 1, "Adam")
    monkeypatch.setattr(testing, "run_parity", lambda *a, **k: report)
    with pytest.raises(AssertionError, match="jax vs torch +0.5 \\(step 1\\) +1 "):
        testing.assert_backends_agree(MODEL, DATA, backends=("jax", "torch"))
    same = {"jax": runs["jax"], "torch": _run("torch", [1.0], [[0.0]])}
    agreeing = parity.ParityReport(same, parity.compare_runs(same, 1e-3), 1e-3, 1, "Adam")
    monkeypatch.setattr(testing, "run_parity", lambda *a, **k: agreeing)
    assert testing.assert_backends_agree(MODEL, DATA) is agreeing


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"model": "tests.parity_models.mlp"}, "`model` must name a function as 'module:function'"),
        ({"model": "no_such_module:mlp"}, "cannot import 'no_such_module'"),
        ({"data": lambda: None}, "worker processes on other backends cannot import it"),
        ({"backends": ("jax", "theano")}, "`backends` must be two or more distinct of"),
        ({"backends": ("jax",)}, "`backends` must be two or more distinct of"),
        ({"steps": 0}, "`steps` must be a positive integer, got 0"),
        ({"tolerance": -1.0}, "`tolerance` must be a non-negative number, got -1.0"),
        ({"optimizer": "adam:learning_rate"}, "'learning_rate' is not name=value"),
        ({"data": (np.zeros((8, 6)), np.zeros((7, 1)))}, "x has 8 samples but y has 7"),
    ],
)
def test_bad_arguments_are_refused_before_any_worker_starts(arguments, message):
    with pytest.raises(ValueError) as error:
        parity.run_parity(**{"model": MODEL, "data": DATA, **arguments})
    assert message in str(error.value)


def test_layers_that_make_backends_differ_are_found():
    import keras

    from keras_adaptive import parity_worker

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3)(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Dropout(0.5, name="drop")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    assert parity_worker.random_layers(model) == ["drop (Dropout)"]
    assert [name.split(" ")[1] for name in parity_worker.max_pooling_layers(model)] == ["(MaxPooling2D)"]
    recurrent = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3, recurrent_dropout=0.1, name="rnn")])
    assert parity_worker.random_layers(recurrent) == ["rnn (LSTM)"]
