"""The engine behind both the page and the `keras-adaptive compare` command.

`check_config` turns a person's inputs into a `RunConfig` or a ValueError listing what is
wrong; `Comparison` starts one worker process per backend (multiprocessing `spawn`, see
`worker.py`), gathers what the workers report into per-series records, notices a worker
that died, stops them all at once, and writes the CSV.

This module spawns the workers, so it never imports keras at module level.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import queue as queue_module
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from keras_adaptive_gui import hyperparams, tasks

BACKENDS = ("tensorflow", "jax", "torch")
# The optimizer statistics a worker reports (see worker.py), also the names of their CSV columns.
STATS = ("effective_lr", "update_ratio", "grad_norm")


@dataclass(frozen=True)
class Limits:
    max_optimizers: int = 6
    max_epochs: int = 20
    max_steps_per_epoch: int = 500
    max_batch_size: int = 512
    max_total_steps: int = 5000
    max_steps_2d: int = 3000
    max_seq_len: int = 200
    max_workers: int = 4  # worker processes at once, over all sessions
    max_seconds: float = 900.0  # a run is stopped after this

    def describe(self) -> str:
        return (
            f"up to {self.max_optimizers} optimizers; epochs ≤ {self.max_epochs}; steps per epoch ≤ "
            f"{self.max_steps_per_epoch}; batch size ≤ {self.max_batch_size}; epochs × steps ≤ "
            f"{self.max_total_steps}; 2-D steps ≤ {self.max_steps_2d}; sequence length ≤ {self.max_seq_len}; "
            f"{self.max_workers} worker processes at once on this server (one per backend of a run); "
            f"a run stops after {self.max_seconds / 60:g} minutes"
        )


LIMITS = Limits()


@dataclass
class OptimizerChoice:
    key: str
    kwargs: dict
    label: str


@dataclass
class RunConfig:
    task: str
    backends: list
    optimizers: list  # of OptimizerChoice
    epochs: int = 2
    steps_per_epoch: int = 50
    batch_size: int = 64
    steps_2d: int = 300
    seed: int = 0
    cell: str = "LSTM"
    seq_len: int = 30
    mnist_path: Optional[str] = None

    @property
    def kind(self) -> str:
        return tasks.TASKS[self.task].kind

    def worker_config(self, backend: str) -> dict:
        return {
            "task": self.task,
            "backend": backend,
            "optimizers": [{"key": o.key, "kwargs": o.kwargs} for o in self.optimizers],
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.batch_size,
            "steps_2d": self.steps_2d,
            "seed": self.seed,
            "cell": self.cell,
            "seq_len": self.seq_len,
            "mnist_path": self.mnist_path,
        }


def _integer(name: str, raw: Any, low: int, high: int, errors: list) -> int:
    try:
        value = float(str(raw).strip())
        if not math.isfinite(value) or value != int(value):
            raise ValueError
    except ValueError:
        errors.append(f"{name} must be a whole number, got {raw!r}.")
        return low
    if not low <= value <= high:
        errors.append(f"{name} must be between {low} and {high}, got {int(value)}.")
    return int(value)


def check_config(
    task: str,
    optimizers: list,
    backends: list,
    epochs: Any = 2,
    steps_per_epoch: Any = 50,
    batch_size: Any = 64,
    steps_2d: Any = 300,
    seed: Any = 0,
    cell: str = "LSTM",
    seq_len: Any = 30,
    mnist_path: Optional[str] = None,
    limits: Limits = LIMITS,
) -> RunConfig:
    """A checked RunConfig. `optimizers` is a list of (key, raw hyperparameters) pairs;
    raw values may be text. Raises ValueError with every problem found, one per line."""
    errors: list[str] = []
    if task not in tasks.TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {list(tasks.TASKS)}.")
    kind = tasks.TASKS[task].kind
    backends = list(backends or [])
    if not backends:
        errors.append("Choose a backend.")
    for b in backends:
        if b not in BACKENDS:
            errors.append(f"Unknown backend {b!r}; choose from {list(BACKENDS)}.")
    if not optimizers:
        errors.append("Choose at least one optimizer.")
    elif len(optimizers) > limits.max_optimizers:
        errors.append(f"Choose at most {limits.max_optimizers} optimizers, got {len(optimizers)}.")
    choices = []
    for n, (key, raw) in enumerate(optimizers, 1):
        try:
            key = hyperparams.resolve_key(key)
            kwargs = hyperparams.build_kwargs(key, raw, where=f"Optimizer {n} ({key}): ")
            choices.append(OptimizerChoice(key, kwargs, hyperparams.describe(key, kwargs)))
        except ValueError as error:
            errors.append(str(error) if str(error).startswith("Optimizer") else f"Optimizer {n}: {error}")
    seen: dict[str, int] = {}
    for choice in choices:  # labels must tell the series apart
        seen[choice.label] = seen.get(choice.label, 0) + 1
        if seen[choice.label] > 1:
            choice.label = f"{choice.label} #{seen[choice.label]}"
    seed = _integer("Seed", seed, 0, 2**31 - 1, errors)
    config = RunConfig(task, backends, choices, seed=seed, cell=cell, mnist_path=mnist_path)
    if kind == "2d":
        config.steps_2d = _integer("Steps", steps_2d, 1, limits.max_steps_2d, errors)
    else:
        config.epochs = _integer("Epochs", epochs, 1, limits.max_epochs, errors)
        config.steps_per_epoch = _integer("Steps per epoch", steps_per_epoch, 1, limits.max_steps_per_epoch, errors)
        config.batch_size = _integer("Batch size", batch_size, 1, limits.max_batch_size, errors)
        if config.epochs * config.steps_per_epoch > limits.max_total_steps and not errors:
            errors.append(
                f"Run too long: epochs × steps per epoch = {config.epochs * config.steps_per_epoch} "
                f"> {limits.max_total_steps}."
            )
        if task in ("mnist-rnn", "adding") and cell not in tasks.CELLS:
            errors.append(f"Cell must be one of {list(tasks.CELLS)}, got {cell!r}.")
        if task == "adding":
            config.seq_len = _integer("Sequence length", seq_len, 4, limits.max_seq_len, errors)
        if task.startswith("mnist") and not mnist_path:
            errors.append("No MNIST file is configured on this server.")
    if errors:
        raise ValueError("\n".join(errors))
    return config


_spawn_lock = threading.Lock()


def _start_with_backend(process: Any, backend: str) -> None:
    """Start `process` with KERAS_BACKEND=backend in its environment from its first
    instruction (spawn re-imports the main module, which might import keras)."""
    with _spawn_lock:
        previous = os.environ.get("KERAS_BACKEND")
        os.environ["KERAS_BACKEND"] = backend
        try:
            process.start()
        finally:
            if previous is None:
                del os.environ["KERAS_BACKEND"]
            else:
                os.environ["KERAS_BACKEND"] = previous


# --- worker slots, shared by every session of this server ----------------------------

_slots_lock = threading.Lock()
_slots_in_use = 0


def _acquire_slots(n: int, limits: Limits) -> None:
    global _slots_in_use
    with _slots_lock:
        if _slots_in_use + n > limits.max_workers:
            raise ValueError(
                f"The server is busy: {_slots_in_use} of {limits.max_workers} worker processes are in use "
                f"and this run needs {n}. Try again when a run has finished."
            )
        _slots_in_use += n


def _release_slots(n: int) -> None:
    global _slots_in_use
    with _slots_lock:
        _slots_in_use = max(0, _slots_in_use - n)


# --- a comparison in progress ----------------------------------------------------------


@dataclass
class Series:
    """What one optimizer on one backend has produced so far."""

    label: str
    optimizer: int
    backend: str
    status: str = "starting"  # starting, training, finished, diverged, stopped, worker died, error
    diverged_at: Optional[int] = None
    steps: list = field(default_factory=list)
    times: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    stats: dict = field(default_factory=lambda: {name: ([], []) for name in STATS})  # name -> (steps, values)
    xs: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    epoch_steps: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    val_accs: list = field(default_factory=list)

    def add_step(self, row: dict) -> None:
        self.steps.append(row["step"])
        self.times.append(row["time"])
        self.losses.append(row["loss"])
        if "x" in row:
            self.xs.append(row["x"])
            self.ys.append(row["y"])

    def add_stats(self, row: dict) -> None:
        for name in STATS:
            if row.get(name) is not None:
                steps, values = self.stats[name]
                steps.append(row["step"])
                values.append(row[name])

    def time_per_step_ms(self) -> Optional[float]:
        """Mean step time after the first step (which includes tracing/compiling)."""
        n = len(self.times)
        first = 1 if self.steps and self.steps[0] == 0 else 0  # 2-D runs record the start as step 0
        if n - first < 2:
            return None
        return 1000.0 * (self.times[-1] - self.times[first]) / (n - first - 1)


class _Worker:
    def __init__(self, backend: str, process: Any, queue: Any, stop: Any) -> None:
        self.backend = backend
        self.process = process
        self.queue = queue
        self.stop = stop
        self.ready = False
        self.done = False
        self.startup_s: Optional[float] = None


class Comparison:
    """One comparison: the selected optimizers on one backend each worker."""

    def __init__(self, config: RunConfig, limits: Limits = LIMITS) -> None:
        self.config = config
        self.limits = limits
        self.series: list[Series] = []
        self.messages: list[str] = []
        self.workers: list[_Worker] = []
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.stopped = False
        self._slots = 0
        self._lock = threading.RLock()
        multi = len(config.backends) > 1
        for backend in config.backends:
            for i, choice in enumerate(config.optimizers):
                label = f"{choice.label} · {backend}" if multi else choice.label
                self.series.append(Series(label, i, backend))

    def series_of(self, backend: str, optimizer: int) -> Series:
        for s in self.series:
            if s.backend == backend and s.optimizer == optimizer:
                return s
        raise KeyError((backend, optimizer))

    def start(self) -> "Comparison":
        from keras_adaptive_gui import worker

        _acquire_slots(len(self.config.backends), self.limits)
        self._slots = len(self.config.backends)
        self.started_at = time.monotonic()
        context = multiprocessing.get_context("spawn")
        try:
            for backend in self.config.backends:
                q, stop = context.Queue(), context.Event()
                process = context.Process(
                    target=worker.run,
                    args=(self.config.worker_config(backend), q, stop),
                    name=f"keras-adaptive-{backend}",
                    daemon=True,
                )
                _start_with_backend(process, backend)
                self.workers.append(_Worker(backend, process, q, stop))
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return any(not w.done for w in self.workers)

    def poll(self, max_messages: int = 10000) -> None:
        """Take in what the workers reported; notice dead workers and the time limit."""
        with self._lock:
            for w in self.workers:
                if w.done:
                    continue
                for _ in range(max_messages):
                    try:
                        message = w.queue.get_nowait()
                    except (queue_module.Empty, EOFError, OSError):
                        break
                    self._handle(w, message)
                    if w.done:
                        break
                if not w.done and not w.process.is_alive():
                    self._drain(w)
                    if not w.done:
                        code = w.process.exitcode
                        self._end_worker(w, "worker died")
                        self.messages.append(
                            f"The {w.backend} worker process died (exit code {code}"
                            f"{', killed by a signal' if code is not None and code < 0 else ''}"
                            f"{', perhaps out of memory' if code in (-9, 137) else ''}); its curves so far are kept."
                        )
            if self.running and self.started_at and time.monotonic() - self.started_at > self.limits.max_seconds:
                self.messages.append(f"Time limit of {self.limits.max_seconds:g} s reached: run stopped.")
                self.stop()
            if not self.running and self.finished_at is None:
                self.finished_at = time.monotonic()
                self._release()

    def _drain(self, w: _Worker) -> None:
        deadline = time.monotonic() + 0.5
        while not w.done and time.monotonic() < deadline:
            try:
                self._handle(w, w.queue.get(timeout=0.05))
            except (queue_module.Empty, EOFError, OSError):
                break

    def _handle(self, w: _Worker, m: dict) -> None:
        kind = m.get("type")
        if kind == "ready":
            w.ready, w.startup_s = True, m.get("startup_s")
            for s in self.series:
                if s.backend == w.backend and s.status == "starting":
                    s.status = "training"
        elif kind == "steps":
            for row in m["rows"]:
                self.series_of(w.backend, row["series"]).add_step(row)
            for row in m.get("stats", ()):
                self.series_of(w.backend, row["series"]).add_stats(row)
        elif kind == "epoch":
            s = self.series_of(w.backend, m["series"])
            s.epochs.append(m["epoch"])
            s.epoch_steps.append(m["step"])
            s.val_losses.append(m["val_loss"])
            s.val_accs.append(m["val_acc"])
        elif kind == "diverged":
            s = self.series_of(w.backend, m["series"])
            s.status, s.diverged_at = "diverged", m["step"]
            self.messages.append(f"{s.label} diverged at step {m['step']} (loss {m['loss']}); the others go on.")
        elif kind == "finished":
            self._end_worker(w, "stopped" if m.get("stopped") else "finished")
        elif kind == "error":
            self._end_worker(w, "error")
            self.messages.append(f"The {w.backend} worker failed: {m.get('message')}")

    def _end_worker(self, w: _Worker, status: str) -> None:
        w.done = True
        for s in self.series:
            if s.backend == w.backend and s.status in ("starting", "training"):
                s.status = status

    def stop(self) -> None:
        """End every worker process now; what they reported so far is kept."""
        with self._lock:
            self.stopped = True
            for w in self.workers:
                if not w.done:
                    w.stop.set()
            for w in self.workers:
                if w.process.is_alive():
                    w.process.terminate()
            for w in self.workers:
                w.process.join(timeout=3)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join(timeout=3)
                if not w.done:
                    self._drain_quietly(w)
                    self._end_worker(w, "stopped")
                w.queue.close()
                w.queue.cancel_join_thread()
            if self.finished_at is None:
                self.finished_at = time.monotonic()
            self._release()

    def _drain_quietly(self, w: _Worker) -> None:
        for _ in range(100000):
            try:
                message = w.queue.get_nowait()
            except Exception:
                return
            if message.get("type") in ("steps", "epoch", "diverged"):
                self._handle(w, message)

    def _release(self) -> None:
        if self._slots:
            _release_slots(self._slots)
            self._slots = 0

    def wait(self, timeout: Optional[float] = None, interval: float = 0.1) -> bool:
        """Poll until every worker is done (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            if not self.running:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(interval)

    # --- results -------------------------------------------------------------------------

    def total_steps(self) -> int:
        c = self.config
        return c.steps_2d if c.kind == "2d" else c.epochs * c.steps_per_epoch

    def progress(self) -> float:
        """The fraction of steps done by the slowest series still training (all done: 1)."""
        going = [s.steps[-1] if s.steps else 0 for s in self.series if s.status in ("starting", "training")]
        if not going:
            going = [max((s.steps[-1] if s.steps else 0) for s in self.series)] if self.series else [0]
        return min(1.0, min(going) / max(1, self.total_steps()))

    def summary(self) -> list[dict]:
        rows = []
        for s in self.series:
            finite = [v for v in s.losses if math.isfinite(v)]
            rows.append(
                {
                    "optimizer": s.label,
                    "backend": s.backend,
                    "status": s.status,
                    "steps": s.steps[-1] if s.steps else 0,
                    "final loss": finite[-1] if finite else None,
                    "best val acc": max(s.val_accs) if s.val_accs else None,
                    "final val loss": s.val_losses[-1] if s.val_losses else None,
                    "ms/step": s.time_per_step_ms(),
                    "diverged at step": s.diverged_at,
                }
            )
        return rows

    def write_csv(self, path: str) -> str:
        """Every recorded number, one row per (series, step) and per (series, epoch)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["optimizer", "backend", "record", "step", "epoch", "time_s", "loss", *STATS,
                          "x", "y", "val_loss", "val_acc"])
            for s in self.series:
                stats = [dict(zip(*s.stats[name])) for name in STATS]
                for j, step in enumerate(s.steps):
                    xy = (s.xs[j], s.ys[j]) if j < len(s.xs) else ("", "")
                    out.writerow([s.label, s.backend, "step", step, "", f"{s.times[j]:.6f}", repr(s.losses[j]),
                                  *(by_step.get(step, "") for by_step in stats), *xy, "", ""])
                for epoch, step, vl, va in zip(s.epochs, s.epoch_steps, s.val_losses, s.val_accs):
                    out.writerow([s.label, s.backend, "epoch", step, epoch, "", "", *[""] * len(STATS), "", "", vl, va])
        return path
