"""The GPU check: conformance tests, `model.fit` and `apply()` timings on CUDA, in one call.

    python -m benchmarks.gpu                              # on a CUDA machine (at most 8 minutes: --budget)
    python -m benchmarks.gpu --wheels DIR                 # first `pip install --no-index` the wheels in DIR
    python -m benchmarks.gpu --dry-run                    # on a CPU: a small version of every part
    python -m benchmarks.gpu --download-wheels DIR        # here, with PyPI: keras and the deps a GPU image lacks
    python -m benchmarks.gpu --full-on-cpu -k adamw --rows adam --no-fit   # the CUDA run's plan, on a CPU

On a CUDA machine, per backend (PyTorch with CUDA tensors, JAX's GPU backend):

1. the conformance tests of tests/ (test_reference, test_peers, test_fast_path, test_precision and,
   if present, test_keras_suite) with benchmarks/gpu_conformance.py in the same pytest process: it
   asserts the weights live on the GPU, records which fast path each optimizer takes there and the
   TF32 settings, and runs every registry case with bfloat16 weights. Keras is pointed at the GPU
   explicitly (`KERAS_TORCH_DEVICE=cuda`; `JAX_PLATFORMS=cuda`, which fails rather than fall back to
   the CPU). tests/test_jax_native.py (the native kernel is JAX-CPU only) runs in a third process
   under `JAX_PLATFORMS=cpu`. The three pytest processes run at once;
2. `benchmarks.gpu_worker` (benchmarks/worker.py with tensors on the device and a synchronize per
   step): `apply()` at 16.8M parameters in 4 tensors and 1M in 200 for every row of
   benchmarks/specs.py against Keras' namesake, torch.optim (foreach and fused) or optax, the
   device's `a += b` bandwidth in the same groups, and `model.fit` of the MNIST MLP and an LSTM;
   torch first, then JAX, one at a time (timings);
3. failed tests are rerun with TF32 off (`NVIDIA_TF32_OVERRIDE=0`, `JAX_DEFAULT_MATMUL_PRECISION=highest`)
   if time is left, to tell a TF32 tolerance from a bug.

Everything runs under `--budget` seconds (default 480): each process gets a share and is stopped at
it (the worker keeps what it measured). A short table is printed at the end; everything is written
to `--out/gpu-<stamp>/` (default benchmarks/results/, git-ignored): summary.json (tests, failures,
devices, targets), table.md (the short table and benchmarks/report.py's full tables), bench/<backend>.json
(the worker's records), results.csv, tests-<job>.xml/.log and device-<job>.json; `--bundle FILE`
also packs that folder into one .tar.gz.

Without CUDA (or with `--dry-run`) it is a dry run on the CPU: the same processes, with a `-k`
subset of the tests, a few bfloat16 cases and the worker's `--quick` rows; what needs CUDA is
listed as skipped. tests/test_gpu_check.py runs it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = [
    "tests/test_reference.py",
    "tests/test_peers.py",
    "tests/test_fast_path.py",
    "tests/test_precision.py",
    "tests/test_keras_suite.py",
]
OWN = "benchmarks/gpu_conformance.py"
NATIVE = "tests/test_jax_native.py"
DRY_K = "(adamw and not amsgrad and not float16 and not schedule) or gpu_conformance or kernel_is_built"
BACKENDS = ("torch", "jax")
# The keras version here, and the packages Keras needs that the GPU image (KINDS.md) lacks.
WHEEL_PACKAGES = ("keras", "namex", "optree")
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
TF32_OFF = {"NVIDIA_TF32_OVERRIDE": "0", "JAX_DEFAULT_MATMUL_PRECISION": "highest"}


def log(msg: str) -> None:
    print(f"[gpu {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- wheels ---------------------------------------------------------------------------------------


def download_wheels(directory: str, python_version: str = "3.12") -> int:
    """Here, with PyPI: the wheels a session carries to the GPU machine (no network there)."""
    from importlib import metadata

    os.makedirs(directory, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in WHEEL_PACKAGES]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "-d",
        directory,
    ]
    for platform in WHEEL_PLATFORMS:
        cmd += ["--platform", platform]
    code = subprocess.run(cmd + pins).returncode
    if code == 0:
        print(
            f"\nCarry {directory} (an ignored path) to the GPU machine and run:\n"
            f"    python3 -m benchmarks.gpu --wheels {directory} --out /tmp/gpu --bundle $OUT/gpu.tar.gz"
        )
    return code


def install_wheels(directory: str, site: str) -> str:
    wheels = sorted(glob.glob(os.path.join(directory, "*.whl")))
    if not wheels:
        raise SystemExit(f"--wheels {directory}: no .whl files there")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        site,
        *wheels,
    ]
    log(f"installing {len(wheels)} wheels into {site}: {', '.join(os.path.basename(w) for w in wheels)}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip install of the wheels failed:\n{done.stderr[-3000:]}")
    return site


# --- processes --------------------------------------------------------------------------------------


class Job:
    def __init__(self, name: str, cmd: list, env: dict, log_path: str):
        self.name, self.cmd, self.env, self.log_path = name, cmd, env, log_path
        self.process = None
        self.started = self.seconds = None
        self.code = None
        self.timed_out = False

    def start(self) -> None:
        self._log = open(self.log_path, "w")
        self._log.write("$ " + " ".join(self.cmd) + "\n")
        self._log.flush()
        self.started = time.time()
        self.process = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, deadline: float) -> None:
        try:
            self.code = self.process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            # SIGINT first: pytest then ends the session and writes its JUnit file with the tests
            # run so far; the worker has saved its JSON after every group.
            self.timed_out = True
            for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 5), (signal.SIGKILL, None)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    self.code = self.process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.seconds = time.time() - self.started
        self._log.close()

    def tail(self, n: int = 15) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


def run_jobs(jobs: list, deadline: float, parallel: bool) -> None:
    if parallel:
        for job in jobs:
            job.start()
        for job in jobs:
            job.wait(deadline)
    else:
        for job in jobs:
            job.start()
            job.wait(deadline)
    for job in jobs:
        state = "timed out" if job.timed_out else f"exit {job.code}"
        log(f"{job.name}: {state} after {job.seconds:.0f} s")


def base_env(site: str | None) -> dict:
    env = dict(os.environ)
    path = [ROOT] + ([site] if site else []) + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONUNBUFFERED"] = "1"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # torch and JAX processes share the GPU
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def backend_env(env: dict, backend: str, cuda: bool, jax_cpu: bool = False) -> dict:
    env = dict(env, KERAS_BACKEND=backend)
    if backend == "torch":
        env["KERAS_TORCH_DEVICE"] = "cuda" if cuda else "cpu"
        env["JAX_PLATFORMS"] = "cpu"  # optax peers run on the CPU (tests/test_peers.py), not beside torch
        env["KA_GPU_EXPECT_DEVICE"] = "cuda" if cuda else "cpu"
    else:
        env["JAX_PLATFORMS"] = "cuda" if cuda and not jax_cpu else "cpu"
        env["KA_GPU_EXPECT_DEVICE"] = "gpu" if cuda and not jax_cpu else "cpu"
    return env


def detect_cuda(env: dict) -> dict:
    code = (
        "import json, torch; d = {'torch_cuda': torch.cuda.is_available()}\n"
        "if d['torch_cuda']: d['name'] = torch.cuda.get_device_name(0)\n"
        "print(json.dumps(d))"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as error:
        return {"torch_cuda": False, "error": str(error)}


def preflight(env: dict) -> dict:
    code = (
        "import json, importlib\nout = {}\n"
        "for m in ('keras', 'numpy', 'torch', 'jax', 'optax', 'pytest', 'hypothesis', 'ml_dtypes', 'optree'):\n"
        "    try:\n        out[m] = getattr(importlib.import_module(m), '__version__', '?')\n"
        "    except Exception as e:\n        out[m] = 'MISSING: ' + repr(e)[:200]\n"
        "print(json.dumps(out))"
    )
    env = dict(env, KERAS_BACKEND="torch", KERAS_TORCH_DEVICE="cpu", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": done.stderr[-2000:]}


# --- test results -----------------------------------------------------------------------------------


def _nodeid(classname: str, name: str) -> str:
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.exists(os.path.join(ROOT, path)):
            return "::".join([path, *parts[i:], name])
    return f"{classname}::{name}"


def junit(path: str) -> dict:
    out = {"tests": 0, "failed": 0, "skipped": 0, "passed": 0, "failures": [], "skips": []}
    if not os.path.exists(path):
        return out
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:  # a process killed while writing it
        out["failures"].append({"test": "(junit)", "message": f"{path}: {error}"})
        out["failed"] += 1
        return out
    for case in root.iter("testcase"):
        if not case.get("name"):  # the test running when pytest was interrupted
            out["interrupted"] = True
            continue
        out["tests"] += 1
        nodeid = _nodeid(case.get("classname", ""), case.get("name", ""))
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            out["failed"] += 1
            out["failures"].append({"test": nodeid, "message": (bad.get("message") or "")[:300]})
        elif skip is not None:
            out["skipped"] += 1
            out["skips"].append({"test": nodeid, "reason": (skip.get("message") or "")[:200]})
        else:
            out["passed"] += 1
    return out


# --- the short table --------------------------------------------------------------------------------


def _f(x, digits: int = 2) -> str:
    if x is None:
        return ""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.{digits}f}"


def targets(derived: list, cuda: bool) -> list:
    """The issue's targets, each row's verdict (on the CPU dry run: computed, not meaningful)."""
    out = []
    for d in derived:
        if d["bench"] != "apply":
            continue
        checks = []
        if d["backend"] == "torch":
            if d.get("ratio_vs_best_torch") is not None:
                checks.append(("<= 1.1x best torch.optim", d["ratio_vs_best_torch"], d["ratio_vs_best_torch"] <= 1.1))
            if d.get("ratio_vs_keras") is not None:
                checks.append(("< Keras", d["ratio_vs_keras"], d["ratio_vs_keras"] < 1.0))
        if d["backend"] == "jax":
            if d.get("ratio_vs_optax") is not None:
                checks.append(("<= 1.0x optax", d["ratio_vs_optax"], d["ratio_vs_optax"] <= 1.0))
            if d.get("ratio_vs_keras") is not None:
                checks.append(("<= 1.0x Keras", d["ratio_vs_keras"], d["ratio_vs_keras"] <= 1.0))
        if d["row"] == "adam" and d["size"] == "16M" and d.get("ka_x_bound") is not None:
            checks.append(("<= 1.3x bandwidth bound", d["ka_x_bound"], d["ka_x_bound"] <= 1.3))
        for what, value, met in checks:
            out.append(
                {
                    "backend": d["backend"],
                    "size": d["size"],
                    "row": d["row"],
                    "target": what,
                    "value": value,
                    "met": met,
                }
            )
    return out


def short_table(summary: dict, derived: list) -> str:
    lines = [f"## python -m benchmarks.gpu: {summary['mode']}", ""]
    if summary["mode"] != "cuda":
        head = "NOTHING RAN ON CUDA." if summary["mode"].startswith("the CUDA plan") else "DRY RUN on the CPU."
        lines += [
            head
            + " Skipped, as they need CUDA: "
            + "; ".join(summary["skipped_needs_cuda"])
            + "."
            + (
                ""
                if summary["mode"].startswith("the CUDA plan")
                else " The worker's --quick sizes stand in for the rows '16M' (2 x 256x256) and '1M' (20 x 100x50)."
            ),
            "",
        ]
    lines += ["| tests | device | passed | failed | skipped | seconds |", "|---|---|---|---|---|---|"]
    for name, t in summary["tests"].items():
        state = " (timed out)" if t["timed_out"] else ""
        lines.append(
            f"| {name} | {t.get('device') or '?'} | {t['passed']} | {t['failed']}{state} | {t['skipped']} | "
            f"{t['seconds']:.0f} |"
        )
    lines.append("")
    for name, t in summary["tests"].items():
        for fail in t["failures"][:12]:
            rerun = t.get("tf32_off", {}).get(fail["test"])
            note = "" if rerun is None else (" [passes with TF32 off]" if rerun else " [fails with TF32 off too]")
            lines.append(f"- FAILED {name} {fail['test']}{note}: {fail['message'][:160]}")
        if len(t["failures"]) > 12:
            lines.append(f"- ... {len(t['failures']) - 12} more in summary.json")
    apply_rows = [d for d in derived if d["bench"] == "apply"]
    if apply_rows:
        lines += [
            "",
            "| size | optimizer | torch ms | /Keras | /best torch | x bound | path | jax ms | /Keras | /optax | x bound |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        keys = sorted({(d["size"], d["row"], d["label"]) for d in apply_rows}, key=lambda k: (k[0] != "16M", k[1]))
        by = {(d["backend"], d["size"], d["row"]): d for d in apply_rows}
        for size, row, label in keys:
            t, j = by.get(("torch", size, row), {}), by.get(("jax", size, row), {})
            lines.append(
                f"| {size} | {label} | {_f(t.get('ka_ms'), 3)} | {_f(t.get('ratio_vs_keras'))} | "
                f"{_f(t.get('ratio_vs_best_torch'))} | {_f(t.get('ka_x_bound'))} | {t.get('torch_path') or ''} | "
                f"{_f(j.get('ka_ms'), 3)} | {_f(j.get('ratio_vs_keras'))} | {_f(j.get('ratio_vs_optax'))} | "
                f"{_f(j.get('ka_x_bound'))} |"
            )
        bws = {
            b: [d["bandwidth_GBps"] for d in apply_rows if d["backend"] == b and d.get("bandwidth_GBps")]
            for b in BACKENDS
        }
        lines.append("")
        lines.append(
            "Bandwidth (a += b, GB/s, best per group; median over groups): "
            + ", ".join(f"{b} {sorted(v)[len(v) // 2]:.0f}" for b, v in bws.items() if v)
        )
    fit_rows = [d for d in derived if d["bench"] == "fit"]
    if fit_rows:
        lines += [
            "",
            "| model.fit | optimizer | torch ms/step | /Keras | jax ms/step | /Keras |",
            "|---|---|---|---|---|---|",
        ]
        by = {(d["backend"], d["size"], d["row"]): d for d in fit_rows}
        for size, row, label in sorted({(d["size"], d["row"], d["label"]) for d in fit_rows}):
            t, j = by.get(("torch", size, row), {}), by.get(("jax", size, row), {})
            lines.append(
                f"| {size} | {label} | {_f(t.get('ka_ms'))} | {_f(t.get('ratio_vs_keras'))} | "
                f"{_f(j.get('ka_ms'))} | {_f(j.get('ratio_vs_keras'))} |"
            )
    missed = [t for t in summary["targets"] if not t["met"]]
    lines += [
        "",
        f"Targets: {len(summary['targets']) - len(missed)} of {len(summary['targets'])} met"
        + ("" if summary["mode"] == "cuda" else " (CPU dry run: not the GPU targets' numbers)")
        + (
            ": missed "
            + "; ".join(f"{t['backend']} {t['size']} {t['row']} {t['target']} ({t['value']:.2f})" for t in missed)
            if missed
            else ""
        ),
    ]
    for name, b in summary["bench"].items():
        state = b.get("note") or ("timed out (partial)" if b["timed_out"] else f"exit {b['code']}")
        lines.append(f"Benchmark {name}: {state} in {b['seconds']:.0f} s on {b.get('device') or '?'}")
    lines.append(f"Total {summary['seconds']:.0f} s. Results: {summary['directory']}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU, small, even if CUDA is there")
    parser.add_argument("--wheels", metavar="DIR", help="pip install --no-index --no-deps these wheels first")
    parser.add_argument("--site", default="/tmp/keras-adaptive-gpu-site", help="where --wheels installs (--target)")
    parser.add_argument("--download-wheels", metavar="DIR", help="download the wheels for a GPU machine, and stop")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--bundle", metavar="FILE", help="also write the results folder as one .tar.gz")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--parts", default="tests,bench", help="comma-separated among tests,bench")
    parser.add_argument(
        "--budget",
        type=float,
        default=480.0,
        help="seconds for the whole check (default 480: a 15-minute lease keeps room for a rerun)",
    )
    parser.add_argument("--rounds", type=int, default=10, help="worker rounds on CUDA (fit: max(5, rounds/2))")
    parser.add_argument("--rows", default=None, help="benchmark rows (benchmarks/specs.py ids; default all)")
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument(
        "--full-on-cpu",
        action="store_true",
        help="without CUDA, run the CUDA run's plan on the CPU (to test this script; slow unless -k "
        "and --rows narrow it)",
    )
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k for every test process")
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)

    start = time.time()
    deadline = start + args.budget
    site = install_wheels(args.wheels, args.site) if args.wheels else None
    env = base_env(site)
    detected = {"torch_cuda": False, "skipped": "--dry-run"} if args.dry_run else detect_cuda(env)
    cuda = bool(detected.get("torch_cuda"))
    full = cuda or args.full_on_cpu  # the CUDA run's plan (all tests, all rows, processes at once)
    mode = "cuda" if cuda else "the CUDA plan on the CPU (--full-on-cpu)" if full else "dry run on the CPU"
    if not cuda and not args.dry_run:
        log(
            f"no CUDA device ({detected}): "
            + ("the CUDA plan runs on the CPU" if full else "this is a dry run on the CPU")
        )
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("" if cuda else "-cpu" if full else "-dry")
    directory = os.path.join(args.out, f"gpu-{stamp}")
    os.makedirs(os.path.join(directory, "bench"), exist_ok=True)
    backends = [b for b in args.backends.split(",") if b]
    parts = set(args.parts.split(","))
    versions = preflight(env)
    log(f"mode: {mode}; backends {backends}; parts {sorted(parts)}; budget {args.budget:.0f} s; versions {versions}")
    skipped = (
        []
        if cuda
        else [
            "the conformance tests with CUDA tensors and on JAX's GPU backend (ran on the CPU"
            + ("" if full else ", a -k subset")
            + ")",
            "apply() and fit timings on a GPU (ran on the CPU"
            + ("" if full else ", the worker's --quick rows")
            + ": not the GPU's numbers)",
            "tests/test_jax_native.py beside a GPU backend",
        ]
        + ([] if full else ["the TF32-off rerun of failed tests"])
    )
    for s in skipped:
        log(f"skipped (needs CUDA): {s}")

    summary = {
        "mode": mode,
        "cuda": cuda,
        "detected": detected,
        "versions": versions,
        "directory": directory,
        "command": " ".join([sys.executable, "-m", "benchmarks.gpu", *(argv if argv is not None else sys.argv[1:])]),
        "site": site,
        "pythonpath": env["PYTHONPATH"],
        "skipped_needs_cuda": skipped,
        "tests": {},
        "bench": {},
        "targets": [],
        "notes": [],
    }

    # 1. conformance tests, one pytest process per backend (and the native kernel on JAX's CPU)
    files = [f for f in CONFORMANCE if os.path.exists(os.path.join(ROOT, f))]
    for f in CONFORMANCE:
        if f not in files:
            note = f"{f} is not in this checkout: not run"
            summary["notes"].append(note)
            log(note)
    test_jobs = []
    if "tests" in parts:
        plan = [(b, b, False) for b in backends]
        if "jax" in backends:
            plan.append(("jax-cpu-native", "jax", True))
        for name, backend, jax_cpu in plan:
            job_files = [NATIVE] if jax_cpu else [OWN] + files  # ours first: it checks the kernels' arguments
            if not full and backend == "jax":
                if not jax_cpu:
                    continue  # dry run: JAX is on the CPU anyway; one JAX process runs it all
                name, job_files = "jax", [OWN] + files + [NATIVE]
            junit_path = os.path.join(directory, f"tests-{name}.xml")
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-rfE",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit_path}",
                *job_files,
            ]
            keyword = args.keyword or (None if full else DRY_K)
            if keyword:
                cmd += ["-k", keyword]
            job_env = backend_env(env, backend, cuda, jax_cpu)
            job_env["KA_GPU_RECORD"] = os.path.join(directory, f"device-{name}.json")
            if not full:
                job_env["KA_GPU_QUICK"] = "1"
            job = Job(name, cmd, job_env, os.path.join(directory, f"tests-{name}.log"))
            job.junit, job.files = junit_path, job_files
            test_jobs.append(job)
        tests_deadline = start + args.budget * (0.45 if "bench" in parts else 0.9)
        log(f"tests: {', '.join(j.name for j in test_jobs)} ({'at once' if full else 'one after the other'})")
        run_jobs(test_jobs, tests_deadline, parallel=full)
        for job in test_jobs:
            result = junit(job.junit)
            record_path = job.env["KA_GPU_RECORD"]
            record = json.load(open(record_path)) if os.path.exists(record_path) else {}
            result.update(
                code=job.code,
                seconds=job.seconds,
                timed_out=job.timed_out,
                files=job.files,
                device=(record.get("environment") or {}).get("variable_device")
                or f"{job.env.get('KA_GPU_EXPECT_DEVICE')} (asked; not recorded)",
                record=record,
            )
            if job.code not in (0, None) and result["tests"] == 0:
                result["failures"].append({"test": "(pytest)", "message": job.tail(8)})
                result["failed"] += 1
            summary["tests"][job.name] = result

    # 2. timings: one backend at a time
    if "bench" in parts:
        bench_backends = backends
        for i, backend in enumerate(bench_backends):
            out = os.path.join(directory, "bench", f"{backend}.json")
            cmd = [sys.executable, "-m", "benchmarks.gpu_worker", "--out", out]
            if full:
                cmd += ["--rounds", str(args.rounds)]
                if args.rows:
                    cmd += ["--rows", args.rows]
            else:
                cmd += ["--quick", "--rows", args.rows or "adam", "--rounds", "2", "--threads", "1"]
            if args.no_fit:
                cmd.append("--no-fit")
            left = deadline - 15 - time.time()
            if left < 30:
                summary["bench"][backend] = {
                    "code": None,
                    "seconds": 0.0,
                    "timed_out": True,
                    "device": None,
                    "complete": False,
                    "note": "not run: the budget was spent",
                }
                log(f"bench-{backend}: not run, {left:.0f} s of the budget left")
                continue
            share = left * (0.45 if i == 0 and len(bench_backends) > 1 else 1.0)
            job = Job(
                f"bench-{backend}",
                cmd,
                backend_env(env, backend, cuda),
                os.path.join(directory, f"bench-{backend}.log"),
            )
            run_jobs([job], time.time() + share, parallel=False)
            data = json.load(open(out)) if os.path.exists(out) else {}
            summary["bench"][backend] = {
                "code": job.code,
                "seconds": job.seconds,
                "timed_out": job.timed_out,
                "device": (data.get("environment") or {}).get("device"),
                "complete": data.get("complete", False),
            }
            if not data:
                summary["bench"][backend]["log_tail"] = job.tail(20)

    # 3. failed tests again with TF32 off, if there is time left (the CUDA plan only)
    if full:
        for job in test_jobs:
            failures = [f["test"] for f in summary["tests"][job.name]["failures"] if "::" in f["test"]]
            if not failures or deadline - time.time() < 45:
                continue
            junit_path = os.path.join(directory, f"tests-{job.name}-tf32-off.xml")
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit_path}",
                *failures[:200],
            ]
            rerun_env = dict(
                job.env, **TF32_OFF, KA_GPU_RECORD=os.path.join(directory, f"device-{job.name}-tf32-off.json")
            )
            rerun = Job(
                f"{job.name}-tf32-off", cmd, rerun_env, os.path.join(directory, f"tests-{job.name}-tf32-off.log")
            )
            run_jobs([rerun], deadline - 15, parallel=False)
            again = junit(junit_path)
            failed_again = {f["test"] for f in again["failures"]}
            ran = again["tests"] > 0 and not rerun.timed_out
            summary["tests"][job.name]["tf32_off"] = {t: t not in failed_again for t in failures} if ran else {}

    # 4. tables and files
    from benchmarks import report

    runs = report.load(os.path.join(directory, "bench")) if os.listdir(os.path.join(directory, "bench")) else {}
    derived = report.derive(runs) if runs else []
    summary["targets"] = targets(derived, cuda)
    summary["seconds"] = time.time() - start
    table = short_table(summary, derived)
    with open(os.path.join(directory, "table.md"), "w") as f:
        f.write(
            f"Command: `{summary['command']}`\n\n{table}\n\n## Full tables (benchmarks/report.py)\n\n"
            f"{report.markdown(runs) if runs else '(no benchmark ran)'}\n"
        )
    if runs:
        report.write_csv(runs, os.path.join(directory, "results.csv"))
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump({**summary, "derived": derived}, f, indent=1, default=str)
    if args.bundle:
        os.makedirs(os.path.dirname(os.path.abspath(args.bundle)), exist_ok=True)
        with tarfile.open(args.bundle, "w:gz") as tar:
            tar.add(directory, arcname=os.path.basename(directory))
    print(table, flush=True)
    ok = all(t["failed"] == 0 and not t["timed_out"] and t["code"] == 0 for t in summary["tests"].values())
    ok = ok and all(b["code"] == 0 and not b["timed_out"] for b in summary["bench"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
