"""Run the test suite once per Keras backend, each in its own process: `python -m tests`.

Keras fixes its backend at import, so `KERAS_BACKEND` is set per pytest process.
Extra arguments go to pytest (`python -m tests -x -k adam`); `--backends jax,torch`
picks backends; `--jobs N` runs N backends at once (default one per CPU: 2 backends at
once take 390 s instead of 540 s on a 2-core machine), printing a line of progress (tests
done per backend) every 20 s and each backend's output when it ends; `--jobs 1` shows
pytest's own output live. Prints one summary line per backend and a total, and exits
non-zero if any backend failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

BACKENDS = ("tensorflow", "jax", "torch")
PROGRESS_EVERY = 20  # seconds between progress lines


def _counts(junit_path: str) -> dict:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not os.path.exists(junit_path):
        return counts
    root = ET.parse(junit_path).getroot()
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests", description=__doc__)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, default all three")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(len(BACKENDS), os.cpu_count() or 1),
        help="backends run at once (default: one per CPU, at most three); with more than one, each "
        "backend's output is printed when it ends",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {sorted(unknown)}; choose from {BACKENDS}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = []
    with tempfile.TemporaryDirectory() as tmp:

        def start(backend: str):
            junit = os.path.join(tmp, f"{backend}.xml")
            log = None if args.jobs == 1 else open(os.path.join(tmp, f"{backend}.log"), "w+")
            if log is None:
                print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
            env = dict(os.environ, KERAS_BACKEND=backend, KERAS_ADAPTIVE_PROGRESS=progress_file(backend))
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest", "tests", "-p", "tests.progress", f"--junitxml={junit}", *pytest_args],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
            )
            return backend, process, junit, log, time.time()

        def progress_file(backend: str) -> str:
            return os.path.join(tmp, f"{backend}.progress")

        def show_progress(running: list, began: float) -> None:
            parts = []
            for backend, *_ in running:
                try:
                    with open(progress_file(backend)) as f:
                        done, collected, failed = f.read().split()
                except (OSError, ValueError):
                    done, collected, failed = "0", "?", "0"
                parts.append(f"{backend} {done}/{collected}" + (f" ({failed} failed)" if failed != "0" else ""))
            print(f"[{time.time() - began:4.0f} s] running: " + ", ".join(parts), flush=True)

        def finish(run) -> None:
            backend, process, junit, log, started = run
            code = process.wait()
            if log is not None:
                log.seek(0)
                print(f"\n===== KERAS_BACKEND={backend} =====\n{log.read()}", end="", flush=True)
                log.close()
            results.append((backend, code, _counts(junit), time.time() - started))

        # With backends at once, their output is held until each ends: a line of progress every
        # `PROGRESS_EVERY` seconds says which are running and how many tests each has done.
        pending, running, began = list(backends), [], time.time()
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                running.append(start(pending.pop(0)))
            shown = time.time()
            while (ended := next((run for run in running if run[1].poll() is not None), None)) is None:
                time.sleep(0.5)
                if args.jobs > 1 and time.time() - shown >= PROGRESS_EVERY:
                    show_progress(running, began)
                    shown = time.time()
            running.remove(ended)
            finish(ended)
        results.sort(key=lambda r: backends.index(r[0]))
    print("\n===== summary =====")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for backend, code, c, seconds in results:
        failed = c["failures"] + c["errors"]
        passed = c["tests"] - failed - c["skipped"]
        total["passed"] += passed
        total["failed"] += failed
        total["skipped"] += c["skipped"]
        print(
            f"{backend:>10}: {passed} passed, {failed} failed, {c['skipped']} skipped in {seconds:.0f} s (exit {code})"
        )
    ok = all(code == 0 for _, code, _, _ in results)
    if not ok and total["failed"] == 0:
        total["failed"] = 1  # pytest failed without a test failure (collection error, no tests run)
    print(f"total: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
