"""Every optimizer beyond one device: `keras.distribution.DataParallel` and `ModelParallel`
(with a LayoutMap) on JAX, `tf.distribute.MirroredStrategy` on TensorFlow.

Several devices are simulated on the CPU, which must be set up before the engine starts
(`XLA_FLAGS=--xla_force_host_platform_device_count=4` for JAX, logical CPU devices for
TensorFlow), so the training runs in a subprocess (`tests/distributed_worker.py`). The
golden run is the same model, data and initial weights on one device in that subprocess.

Fairness: every run sees the same global batch of 32 per step. Distributed, it is split
across replicas and the replicas' gradients are reduced so that the loss is the mean over
the global batch, exactly as on one device; only the order of the float32 sums differs.

The JAX half runs only in the jax pytest process and the TensorFlow half only in the
tensorflow one (each launches its own subprocess, so running it from every process would
only repeat it); the torch process has no distribution test of its own (see the README on
DDP).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.cases import BY_ID, REPRESENTATIVES

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")

# One case per optimizer class, with the most state: Nadam's scalar mu-product, AMSGrad's 3 slots.

# 8 steps whose gradient sums are taken in another order than on one device: a few float32
# ulps per step at most. Observed: <= 2.4e-7 on weights of magnitude ~1.
RTOL, ATOL = 1e-5, 1e-6


def _run_worker(mode: str, devices: int, tmp_path_factory) -> tuple[dict, dict]:
    out = str(tmp_path_factory.mktemp(f"distributed-{mode}") / "result")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("KERAS_BACKEND", None)  # the worker sets its own, before importing keras
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, WORKER, mode, str(devices), out, *REPRESENTATIVES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"worker failed (exit {proc.returncode}):\n{proc.stderr[-5000:]}"
    with open(out + ".json") as f:
        report = json.load(f)
    arrays = dict(np.load(out + ".npz"))
    return report, arrays


def _assert_same_weights(arrays: dict, case_id: str, run: str) -> None:
    from tests.distributed_worker import initial_weights

    for i, start in enumerate(initial_weights()):
        single, distributed = arrays[f"{case_id}/single/{i}"], arrays[f"{case_id}/{run}/{i}"]
        assert np.max(np.abs(single - start)) > 1e-3, "the golden run did not move: the comparison would be vacuous"
        np.testing.assert_allclose(
            distributed,
            single,
            rtol=RTOL,
            atol=ATOL,
            err_msg=f"{case_id} under {run}: weight {i} differs from the one-device run",
        )


def _entry(report: dict, case_id: str, run: str) -> dict:
    entry = report["cases"][case_id][run]
    assert "error" not in entry, f"{case_id} failed under {run}:\n{entry['error']}"
    assert entry["iterations"] == report["cases"][case_id]["single"]["iterations"] == 8
    return entry


# --- JAX: DataParallel on 4 simulated devices, ModelParallel on a 2x2 mesh ---------------

JAX_DEVICES = 4


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    return _run_worker("jax", JAX_DEVICES, tmp_path_factory)


# The JAX distribution subprocess is launched once, from the jax pytest process.
jax_only = pytest.mark.backends("jax")


@jax_only
@pytest.mark.parametrize("case_id", REPRESENTATIVES)
def test_jax_data_parallel_matches_one_device(case_id, jax_run):
    report, arrays = jax_run
    assert report["backend_devices"] == JAX_DEVICES
    entry = _entry(report, case_id, "data")
    assert entry["weight_devices"] == [JAX_DEVICES] * 4, "weights are not replicated over every device"
    _assert_same_weights(arrays, case_id, "data")


@jax_only
@pytest.mark.parametrize("case_id", REPRESENTATIVES)
def test_jax_model_parallel_slots_take_their_weights_layout(case_id, jax_run):
    report, arrays = jax_run
    entry = _entry(report, case_id, "model")
    case = BY_ID[case_id]
    names = case.make().slot_names()
    shardings = entry["shardings"]
    expected = {
        "sequential/hidden/kernel": [None, "model"],
        "sequential/hidden/bias": ["model"],
        "sequential/out/kernel": ["model", None],
        "sequential/out/bias": [None],
    }
    assert {path: s["weight"] for path, s in shardings.items()} == expected, "the LayoutMap was not applied"
    for path, s in shardings.items():
        assert set(s["slots"]) == set(names)
        for name in names:
            assert s["slots"][name] == s["weight"], (
                f"{path}: slot {name} sharded {s['slots'][name]}, weight {s['weight']}"
            )
            assert s["equivalent"][name], f"{path}: slot {name} has a sharding not equivalent to its weight's"
    # Every optimizer variable that is not a slot (iterations, learning rate, Nadam's
    # mu-product) is a replicated scalar.
    # (A path is "<optimizer name>/<variable name>"; the name is the worker's optimizer's own.)
    slot_names = {f"{p.replace('/', '_')}_{n}" for p in shardings for n in names}
    for path, spec in entry["optimizer_variables"].items():
        if path.split("/", 1)[1] not in slot_names:
            assert spec == [], f"{path} is not a scalar: {spec}"
    assert len(entry["optimizer_variables"]) == 2 + len(names) * 4 + (case_id == "nadam")
    _assert_same_weights(arrays, case_id, "model")


# --- TensorFlow: MirroredStrategy on 2 logical CPU devices -------------------------------

TF_DEVICES = 2


@pytest.fixture(scope="module")
def tf_run(tmp_path_factory):
    return _run_worker("tensorflow", TF_DEVICES, tmp_path_factory)


@pytest.mark.backends("tensorflow")  # the MirroredStrategy subprocess is launched once, from this process
@pytest.mark.parametrize("case_id", REPRESENTATIVES)
def test_tf_mirrored_strategy_matches_one_device(case_id, tf_run):
    report, arrays = tf_run
    assert report["backend_devices"] == report["replicas"] == TF_DEVICES
    entry = _entry(report, case_id, "mirrored")
    assert entry["weight_replicas"] == [TF_DEVICES] * 4, "weights are not mirrored"
    _assert_same_weights(arrays, case_id, "mirrored")
