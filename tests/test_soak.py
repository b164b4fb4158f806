"""A shorter version of tests/soak.py (the 10,000-step run): 2,000 optimizer steps over
every optimizer class, with the resident memory flat after warm-up.

It runs in a process of its own: resident memory is the whole process's, and in the pytest
process anything earlier tests left running (a GUI server's threads, a data loader) counts
too. A CI run saw 4.2 MB of growth once in the TensorFlow pytest process, on a loaded machine
(the cause not found); the same soak alone, with both CPUs kept busy by other processes,
grew by 0.02 MB."""

import json
import os
import subprocess
import sys

import keras

# A leak of 1 KB per step (one stray tensor, a retraced function) is 1.3 MB here; allocator
# pools and sampling noise stay well under the bound.
BOUND_MB = 4.0


def test_memory_is_flat_after_warmup(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "soak.json"
    # One torch thread: on a busy 2-core machine torch's spinning threads cost 6x the CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.soak",
            "--steps",
            "2000",
            "--warmup",
            "700",
            "--sample-every",
            "100",
            "--backend",
            keras.backend.backend(),
            "--json",
            str(out),
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    figures = {k: v for k, v in result.items() if k != "samples"}
    print(figures)
    assert result["backend"] == keras.backend.backend()
    assert result["optimizer_steps"] == 2_000 and result["weights_finite"]
    assert result["growth_after_warmup_mb"] < BOUND_MB, figures
    assert result["max_growth_after_warmup_mb"] < BOUND_MB, figures
