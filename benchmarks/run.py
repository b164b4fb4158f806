"""Benchmark keras_adaptive against Keras' built-ins, torch.optim and optax.

    python -m benchmarks.run                      # all backends, full run (about 15-25 minutes)
    python -m benchmarks.run --quick              # smoke run
    python -m benchmarks.run --backends torch --rows adam,sgd --sizes 16M

Each backend runs in its own process (`benchmarks/worker.py`), one after the other.
The markdown tables go to stdout and `<out>/<stamp>/table.md`; the raw numbers to
`<out>/<stamp>/<backend>.json`, `results.csv` and `summary.json` (derived ratios).
Also recorded: the load average and the busiest other processes before each backend,
since on a shared machine those decide how far the absolute times can be trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("torch", "jax", "tensorflow")
# glibc returns freed blocks above these sizes to the OS, so a path that allocates
# temporaries each step page-faults them in again; `--malloc-tuned` keeps them.
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184"}


def busy_processes(limit: int = 6) -> list:
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,etimes,comm,args", "--sort=-pcpu"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    mine = {str(os.getpid())}
    return [line[:160] for line in out[1:] if line.split()[0] not in mine][:limit]


def cpu_idle_share(seconds: float = 2.0) -> float:
    def read():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = read()
    time.sleep(seconds)
    idle1, total1 = read()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(limit: float, threshold: float = 0.9) -> float:
    """Wait (up to `limit` seconds) until the CPUs are at least `threshold` idle; return the last idle share."""
    deadline = time.time() + limit
    idle = cpu_idle_share()
    while idle < threshold and time.time() < deadline:
        print(f"== waiting for a quiet machine: {idle:.0%} idle", file=sys.stderr, flush=True)
        time.sleep(10)
        idle = cpu_idle_share()
    return idle


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--quick", action="store_true", help="few, small tensors and rounds: a smoke run")
    parser.add_argument("--rows", default=None, help="comma-separated row ids of benchmarks/specs.py")
    parser.add_argument("--sizes", default=None, help="comma-separated among 1M,16M")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--no-apply", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads for torch and TF (default: theirs, = CPU count)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each backend, wait up to this long for the CPUs to be 90%% idle",
    )
    parser.add_argument("--malloc-tuned", action="store_true", help=f"run the workers with {MALLOC_TUNED}")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)

    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    directory = os.path.join(args.out, stamp)
    os.makedirs(directory, exist_ok=True)
    context = {"command": " ".join([sys.executable, "-m", "benchmarks.run"] + (argv or sys.argv[1:])), "backends": {}}
    failed = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if args.malloc_tuned:
            env.update(MALLOC_TUNED)
        cmd = [sys.executable, "-m", "benchmarks.worker", "--out", os.path.join(directory, f"{backend}.json")]
        for flag in ("quick", "no_fit", "no_apply"):
            if getattr(args, flag):
                cmd.append("--" + flag.replace("_", "-"))
        for option in ("rows", "sizes", "rounds", "threads"):
            if getattr(args, option):
                cmd += ["--" + option, str(getattr(args, option))]
        idle = wait_quiet(args.wait_quiet) if args.wait_quiet else cpu_idle_share(1.0)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        context["backends"][backend] = {
            "loadavg_before": load,
            "idle_share_before": idle,
            "busy_before": busy_processes(),
        }
        print(f"== {backend}: load {' '.join(load)}", file=sys.stderr, flush=True)
        start = time.time()
        code = subprocess.run(cmd, env=env, cwd=ROOT).returncode
        context["backends"][backend]["seconds"] = time.time() - start
        context["backends"][backend]["busy_after"] = busy_processes()
        if code != 0:
            failed.append(backend)
            print(f"== {backend}: worker failed with exit code {code}", file=sys.stderr)

    runs = report.load(directory)
    table = report.markdown(runs)
    with open(os.path.join(directory, "table.md"), "w") as f:
        f.write(f"Command: `{context['command']}`\n\n{table}\n")
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump({"context": context, "derived": report.derive(runs)}, f, indent=1)
    report.write_csv(runs, os.path.join(directory, "results.csv"))
    print(table)
    print(f"\nRaw results: {directory}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
