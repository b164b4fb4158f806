"""Every example runs with --short, finishes, and writes its plot.

Each script runs once per test run, in a subprocess with the KERAS_BACKEND of the pytest
process it is assigned to (`BACKEND_OF`), offline (the MNIST loaders fall back to the sample
shipped with the package). The scripts are backend-agnostic Keras code whose optimizer math
the rest of the suite checks on every backend; spreading them over the three processes keeps
each backend exercised by some examples at a third of the CI time.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script -> the plot it must write
CASES = {
    "rosenbrock.py": "rosenbrock.png",
    "adagrad_vs_rmsprop.py": "adagrad_vs_rmsprop.png",
    "mnist_optimizers.py": "mnist_optimizers.png",
    "rnn_optimizers.py": "rnn_optimizers.png",
    "port_from_pytorch.py": "port_from_pytorch.png",
    "adadelta_momentum.py": "adadelta_momentum.png",
    "bias_correction_study.py": "bias_correction_study.png",
    "monitor_overhead.py": "monitor_overhead.png",
    "lr_finder.py": "lr_finder.png",
    "your_model.py": "your_model.png",
}


# script -> the backend whose pytest process runs it
BACKEND_OF = {
    "rosenbrock.py": "tensorflow",
    "mnist_optimizers.py": "tensorflow",
    "adadelta_momentum.py": "tensorflow",
    "rnn_optimizers.py": "jax",
    "bias_correction_study.py": "jax",
    "adagrad_vs_rmsprop.py": "jax",
    "port_from_pytorch.py": "torch",
    "monitor_overhead.py": "torch",
    "lr_finder.py": "torch",
    "your_model.py": "jax",
}


def test_every_example_is_covered():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CASES) == set(BACKEND_OF)


def test_readme_lists_every_example():
    readme = (EXAMPLES / "README.md").read_text()
    for script in CASES:
        assert script in readme, script


@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.backends(BACKEND_OF[s])) for s in sorted(CASES)])
def test_example_runs_short(script, tmp_path):
    env = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_ADAPTIVE_MNIST": "",  # the shipped sample, whatever the machine has
        "KERAS_HOME": str(tmp_path / "keras_home"),  # no cached full MNIST either
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--short", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    plot = tmp_path / CASES[script]
    assert plot.is_file() and plot.stat().st_size > 10_000, f"{script} wrote no plot {plot}"
    assert f"wrote {plot}" in result.stdout
