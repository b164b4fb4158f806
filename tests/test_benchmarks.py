"""The benchmark harness runs (quick mode, current backend only) and writes its table and raw numbers.

No timing is asserted here: timing lives in `benchmarks/`, not in pass/fail tests.
"""

import json
import os
import subprocess
import sys

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_writes_table_and_json(tmp_path):
    backend = keras.backend.backend()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--threads",
            "1",
            "--backends",
            backend,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    with open(run_dir / f"{backend}.json") as f:
        data = json.load(f)
    impls = {(r["bench"], r["impl"]) for r in data["records"]}
    assert {("apply", "keras_adaptive"), ("apply", "keras"), ("fit", "keras_adaptive"), ("fit", "keras")} <= impls
    # The peers of the quick "adam" row: torch.optim's two implementations (read from
    # keras_adaptive.pytorch) on torch, optax on JAX.
    peers = {"torch": {("apply", "torch_foreach"), ("apply", "torch_fused")}, "jax": {("apply", "optax")}}
    assert peers.get(backend, set()) <= impls
    assert all(r["median_ms"] > 0 for r in data["records"])
    table = (run_dir / "table.md").read_text()
    assert f"### {backend}" in table and "| Adam |" in table
    assert (run_dir / "results.csv").stat().st_size > 0
    assert f"### {backend}" in result.stdout
