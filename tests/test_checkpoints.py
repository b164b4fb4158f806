"""Checkpoints that survive a crash and a change of backend, for every optimizer class.

(a) A training process (tests/checkpoint_worker.py) saving a `.keras` checkpoint every 4
steps is SIGKILLed after step 10; a new process resumes from its last checkpoint (step 8)
and finishes at the same weights and optimizer state, bit for bit, as a process that ran
the 16 steps uninterrupted. Batches are a function of the step, so the resumed run sees
the same data.

(b) The uninterrupted run's step-8 checkpoint, saved on this process's backend, is
resumed on each of the two other backends; after 8 more steps the weights are within
float32 rounding of the uninterrupted run's. Over the three pytest processes every ordered
pair of backends is covered once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.cases import BY_ID, REPRESENTATIVES

BACKEND = keras.backend.backend()
OTHERS = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "checkpoint_worker.py")
STEPS, EVERY, KILL_AFTER = 16, 4, 10
RESUME_STEP = KILL_AFTER // EVERY * EVERY  # the last checkpoint before the kill: 8
TIMEOUT = 900


def _start(backend: str, workdir: str, hold_at: int = 0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("KERAS_BACKEND", None)
    env.pop("XLA_FLAGS", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # torch's spinning OpenMP threads cost 6x the CPU on a busy 2-core machine
    log = open(os.path.join(workdir, f"log-{backend}-{hold_at}.txt"), "w")
    return subprocess.Popen(
        [sys.executable, WORKER, backend, workdir, str(STEPS), str(EVERY), str(hold_at), *REPRESENTATIVES],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _finish(proc: subprocess.Popen, workdir: str) -> None:
    code = proc.wait(timeout=TIMEOUT)
    if code != 0:
        logs = "".join(open(p).read()[-4000:] for p in sorted(_logs(workdir)))
        raise AssertionError(f"checkpoint worker {proc.args[2:4]} exited {code}:\n{logs}")


def _logs(workdir):
    return [os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith("log-")]


def _wait_for(path: str, line: str, proc: subprocess.Popen) -> None:
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if os.path.exists(path) and line in open(path).read().splitlines():
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode} before '{line}'")
        time.sleep(0.2)
    raise AssertionError(f"no '{line}' in {path} after {TIMEOUT} s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    straight_dir = str(tmp_path_factory.mktemp("uninterrupted"))
    killed_dir = str(tmp_path_factory.mktemp("killed"))
    straight = _start(BACKEND, straight_dir)
    victim = _start(BACKEND, killed_dir, hold_at=KILL_AFTER)
    _wait_for(os.path.join(killed_dir, "progress"), f"hold {KILL_AFTER}", victim)
    victim.kill()  # SIGKILL: no cleanup, no atexit, nothing flushed
    assert victim.wait(timeout=60) == -9
    killed_state = {c: sorted(os.listdir(os.path.join(killed_dir, c))) for c in REPRESENTATIVES}
    resumed = _start(BACKEND, killed_dir)
    _finish(straight, straight_dir)
    # Other backends start from the uninterrupted run's step-8 checkpoint, in their own directories.
    foreign = {}
    for other in OTHERS:
        directory = str(tmp_path_factory.mktemp(f"resume-on-{other}"))
        for case_id in REPRESENTATIVES:
            os.makedirs(os.path.join(directory, case_id))
            name = f"ckpt-{RESUME_STEP:05d}.keras"
            shutil.copy(os.path.join(straight_dir, case_id, name), os.path.join(directory, case_id, name))
        foreign[other] = (directory, _start(other, directory))
    _finish(resumed, killed_dir)
    for directory, proc in foreign.values():
        _finish(proc, directory)
    return {
        "straight": straight_dir,
        "killed": killed_dir,
        "killed_state": killed_state,
        "foreign": {b: d for b, (d, _) in foreign.items()},
    }


def _load(directory: str, case_id: str, name: str) -> dict:
    return dict(np.load(os.path.join(directory, case_id, name)))


@pytest.mark.parametrize("case_id", REPRESENTATIVES)
def test_sigkilled_run_resumes_bit_for_bit(case_id, runs):
    # When killed, the run had written checkpoints 4 and 8 (and no final result).
    for directory in (runs["straight"], runs["killed"]):
        error = os.path.join(directory, case_id, "error.txt")
        if os.path.exists(error):
            pytest.fail(open(error).read(), pytrace=False)
    files = runs["killed_state"][case_id]
    assert [f for f in files if f.startswith("ckpt-")] == [
        f"ckpt-{s:05d}.keras" for s in range(EVERY, KILL_AFTER + 1, EVERY)
    ], files
    assert "final.npz" not in files
    start = _load(runs["killed"], case_id, "start.npz")
    iteration = [k for k in start if start[k].shape == () and start[k].dtype.kind == "i"]
    assert [int(start[k]) for k in iteration] == [RESUME_STEP], f"the restart did not resume from step {RESUME_STEP}"
    resumed, straight = _load(runs["killed"], case_id, "final.npz"), _load(runs["straight"], case_id, "final.npz")
    assert sorted(resumed) == sorted(straight)
    assert len([k for k in straight if k.startswith("opt/")]) >= 2 + len(BY_ID[case_id].make().slot_names()) * 4
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=f"{case_id}: {key} differs after resume")


# A checkpoint saved on JAX stores `jit_compile=True` (what "auto" resolves to there): on torch that
# is torch.compile, under which the optimizers take the portable path (PyTorch's fused kernels
# have no meta implementation).
FOREIGN = [pytest.param(case_id, other, id=f"{case_id}-{other}") for case_id in REPRESENTATIVES for other in OTHERS]


@pytest.mark.parametrize("case_id, other", FOREIGN)
def test_checkpoint_resumes_on_another_backend(case_id, other, runs):
    directory = runs["foreign"][other]
    error = os.path.join(directory, case_id, "error.txt")
    if os.path.exists(error):
        pytest.fail(f"saved on {BACKEND}, resumed on {other}: {open(error).read()}", pytrace=False)
    # What the saving backend reads back from its checkpoint is what the other one must load.
    saved = keras.models.load_model(os.path.join(runs["straight"], case_id, f"ckpt-{RESUME_STEP:05d}.keras"))
    assert type(saved.optimizer) is BY_ID[case_id].cls
    start = _load(directory, case_id, "start.npz")
    assert len(start) == len(saved.optimizer.variables)
    for i, variable in enumerate(saved.optimizer.variables):
        np.testing.assert_array_equal(
            start[f"opt/{i}"],
            keras.ops.convert_to_numpy(variable),
            err_msg=f"{case_id}: optimizer variable {variable.path} not loaded on {other}",
        )
    continued, straight = _load(directory, case_id, "final.npz"), _load(runs["straight"], case_id, "final.npz")
    assert sorted(continued) == sorted(straight)
    for key in straight:
        # 8 steps computed by another engine (other matmul, tanh and sqrt kernels): float32 rounding only.
        np.testing.assert_allclose(
            continued[key],
            straight[key],
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{case_id}: {key} saved on {BACKEND}, resumed on {other}",
        )
