"""`python -m benchmarks.gpu` on this machine: its dry run on the CPU, for the backend of this process.

The check itself is for a CUDA machine (benchmarks/gpu.py); here it must run end to end on the CPU,
say what it skipped for want of CUDA, install carried wheels, and write its results: the test
results of each pytest process and the device they ran on, the fast path each optimizer took, the
worker's records and the tables. No timing is asserted.
"""

import json
import os
import subprocess
import sys
import tarfile
import zipfile

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.backends("torch", "jax")


def _dummy_wheel(directory) -> str:
    """A pure-Python wheel, as `--wheels` gets keras' own (installed with pip --no-index)."""
    path = os.path.join(directory, "kagpu_dummy-0.1-py3-none-any.whl")
    files = {
        "kagpu_dummy/__init__.py": "VALUE = 42\n",
        "kagpu_dummy-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: kagpu-dummy\nVersion: 0.1\n",
        "kagpu_dummy-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "kagpu_dummy-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("kagpu_dummy-0.1.dist-info/RECORD", record)
    return path


def test_dry_run_runs_every_part_on_the_cpu_and_says_what_it_skipped(tmp_path):
    backend = keras.backend.backend()
    wheels, site, out = tmp_path / "wheels", tmp_path / "site", tmp_path / "out"
    wheels.mkdir()
    _dummy_wheel(str(wheels))
    bundle = tmp_path / "gpu.tar.gz"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_TORCH_DEVICE", "JAX_PLATFORMS")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu",
            "--dry-run",
            "--backends",
            backend,
            "--wheels",
            str(wheels),
            "--site",
            str(site),
            "--out",
            str(out),
            "--bundle",
            str(bundle),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "DRY RUN on the CPU" in done.stdout and "Skipped, as they need CUDA" in done.stdout
    assert "skipped (needs CUDA)" in done.stdout

    # the carried wheel went where the check's processes import from
    assert (site / "kagpu_dummy" / "__init__.py").exists()
    (run_dir,) = out.iterdir()
    with open(run_dir / "summary.json") as f:
        summary = json.load(f)
    assert str(site) in summary["pythonpath"].split(os.pathsep)
    assert summary["mode"] == "dry run on the CPU" and summary["cuda"] is False
    assert len(summary["skipped_needs_cuda"]) >= 3

    # the conformance tests ran, on the CPU, and passed
    tests = summary["tests"][backend]
    assert tests["passed"] >= 20 and tests["failed"] == 0 and tests["code"] == 0, tests["failures"]
    assert tests["device"] == "cpu"
    ran = {os.path.basename(f) for f in tests["files"]}
    assert {"test_reference.py", "test_peers.py", "test_precision.py", "gpu_conformance.py"} <= ran
    record = tests["record"]
    assert record["environment"]["variable_device"] == "cpu"
    assert record["bf16_cases"]
    if backend == "torch":
        assert record["torch_paths"]["adamw"] == "fused_adamw"
        assert record["torch_paths"]["rmsprop_inside"] == "multi_tensor"
    else:
        assert "test_jax_native.py" in ran
        assert record["jax_native"]["default_backend"] == "cpu"

    # the worker's records, on the CPU, with the peers and the bandwidth probe
    with open(run_dir / "bench" / f"{backend}.json") as f:
        bench = json.load(f)
    assert bench["complete"] and bench["environment"]["on_cuda"] is False
    impls = {(r["bench"], r["impl"]) for r in bench["records"]}
    peer = ("apply", "torch_fused") if backend == "torch" else ("apply", "optax")
    assert {
        ("apply", "keras_adaptive"),
        ("apply", "keras"),
        peer,
        ("apply", "bandwidth_native"),
        ("fit", "keras_adaptive"),
    } <= impls
    assert all("cpu" in r["device"].lower() for r in bench["records"] if r["bench"] == "apply")
    assert summary["bench"][backend]["code"] == 0
    assert any(t["row"] == "adam" and t["size"] == "16M" and "bound" in t["target"] for t in summary["targets"])

    # the tables and the bundle
    table = (run_dir / "table.md").read_text()
    assert "| tests | device |" in table and "| Adam |" in table and f"### {backend}" in table
    assert (run_dir / "results.csv").stat().st_size > 0
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert f"{run_dir.name}/summary.json" in names and f"{run_dir.name}/bench/{backend}.json" in names


def test_a_process_over_its_share_is_stopped_and_pytest_keeps_what_it_ran(tmp_path):
    """The budget: a pytest process still running at its deadline gets SIGINT, ends its session and
    writes the JUnit file of the tests it finished, which the summary reads."""
    import time

    from benchmarks import gpu

    (tmp_path / "test_slow.py").write_text(
        "import time\n\ndef test_fast():\n    pass\n\ndef test_slow():\n    time.sleep(120)\n"
    )
    xml = tmp_path / "out.xml"
    job = gpu.Job(
        "slow",
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={xml}",
            str(tmp_path / "test_slow.py"),
        ],
        dict(os.environ),
        str(tmp_path / "log"),
    )
    job.start()
    started = time.time()
    job.wait(started + 8)
    assert job.timed_out and job.code is not None
    assert time.time() - started < 60
    result = gpu.junit(str(xml))
    assert result["passed"] == 1 and result["tests"] == 1 and result["interrupted"], result
