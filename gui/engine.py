"""The engine behind both the page and the `keras-adaptive compare` command.

`check_config` turns a person's inputs into a `RunConfig` or a ValueError listing what is
wrong; `Comparison` runs on one worker process per backend (multiprocessing `spawn`, see
`worker.py`): a warm persistent one of `sweep.POOL` that keeps its built and compiled models
between runs, or with warm workers off (`SPARES.enabled` False: the command line, the tests)
a fresh process that ends with the run. It gathers what the workers report into per-series
records, notices a worker that died, stops them all at once, and writes the CSV.

This module spawns the workers, so it never imports keras at module level.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import queue as queue_module
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from keras_adaptive_gui import hyperparams, tasks

BACKENDS = ("tensorflow", "jax", "torch")
# The optimizer statistics a worker reports (see worker.py), also the names of their CSV columns.
STATS = ("effective_lr", "update_ratio", "grad_norm")

# When a series counts as blown up (besides a NaN or infinite loss): its loss stays above
# BLOWUP_FACTOR times its first loss for BLOWUP_STEPS steps in a row, or a classifier ends
# with a validation accuracy at most CHANCE_MARGIN times chance and a loss no lower than its first.
BLOWUP_FACTOR = 10.0
BLOWUP_STEPS = 20
CHANCE_MARGIN = 1.5
BLOWUP_RULE = (
    f"a run is blown up when its loss is NaN or infinite, when its loss stays above {BLOWUP_FACTOR:g}× its "
    f"first loss for {BLOWUP_STEPS} steps in a row, or when a classifier ends at chance (validation accuracy "
    f"≤ {CHANCE_MARGIN:g}× chance) with a loss no lower than its first"
)
BUNDLE_FORMAT = "keras-adaptive-run/1"


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
    # Sweeps (gui/sweep.py): every (optimizer, learning rate, seed, backend) is a run.
    max_sweep_runs: int = 200  # runs in one sweep
    max_session_runs: int = 1000  # sweep runs one page session may start in all
    max_grid_points: int = 15  # learning rates per optimizer
    max_seeds: int = 10
    max_sweep_seconds: float = 1800.0  # a sweep is stopped after this

    def describe(self) -> str:
        return (
            f"up to {self.max_optimizers} optimizers; epochs ≤ {self.max_epochs}; steps per epoch ≤ "
            f"{self.max_steps_per_epoch}; batch size ≤ {self.max_batch_size}; epochs × steps ≤ "
            f"{self.max_total_steps}; 2-D steps ≤ {self.max_steps_2d}; sequence length ≤ {self.max_seq_len}; "
            f"{self.max_workers} worker processes at once on this server (one per backend of a run); "
            f"a run stops after {self.max_seconds / 60:g} minutes"
        )

    def describe_sweeps(self) -> str:
        return (
            f"a sweep: ≤ {self.max_grid_points} learning rates per optimizer, ≤ {self.max_seeds} seeds, "
            f"≤ {self.max_sweep_runs} runs in all (optimizers × learning rates × seeds × backends), "
            f"≤ {self.max_session_runs} sweep runs per session, stopped after {self.max_sweep_seconds / 60:g} minutes"
        )


LIMITS = Limits()


@dataclass
class OptimizerChoice:
    key: str
    kwargs: dict
    label: str
    # Every hyperparameter as a bundle stored it: what an optimizer outside the page's catalog
    # (a person's own class, from `keras_adaptive.compare`) is described by.
    hyperparameters: dict | None = None

    def all_hyperparameters(self) -> dict:
        """Every hyperparameter: what its bundle stored (what the run used, for any optimizer,
        a person's own class included), else the catalog's defaults updated with `kwargs`."""
        if self.hyperparameters is not None:
            return dict(self.hyperparameters)
        return hyperparams.full_kwargs(self.key, self.kwargs)


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
    mnist_path: str | None = None
    facts: tasks.Task | None = None  # a task that is not built in (a bundle of `keras_adaptive.compare`)

    @property
    def kind(self) -> str:
        return self.task_facts.kind

    @property
    def task_facts(self) -> tasks.Task:
        return self.facts if self.facts is not None else tasks.TASKS[self.task]

    def to_json(self) -> dict:
        """The full configuration: every hyperparameter of every optimizer (defaults included)."""
        return {
            "task": self.task,
            "task_description": self.task_facts.description,
            "kind": self.task_facts.kind,
            "classes": self.task_facts.classes,
            "backends": list(self.backends),
            "optimizers": [
                {
                    "key": o.key,
                    "label": o.label,
                    "hyperparameters": o.all_hyperparameters(),
                    "given": o.kwargs,
                }
                for o in self.optimizers
            ],
            "epochs": self.epochs if not self.task_facts.is_2d else None,
            "steps_per_epoch": self.steps_per_epoch if not self.task_facts.is_2d else None,
            "batch_size": self.batch_size if not self.task_facts.is_2d else None,
            "steps": self.steps_2d if self.task_facts.is_2d else self.epochs * self.steps_per_epoch,
            "seed": self.seed,
            "cell": self.cell if self.task_facts.uses_cell else None,
            "seq_len": self.seq_len if self.task_facts.uses_seq_len else None,
            "mnist": os.path.basename(self.mnist_path) if self.mnist_path else None,
        }

    @classmethod
    def from_json(cls, d: dict) -> RunConfig:
        """The configuration a bundle's config.json holds. A task that is not built in (a
        person's own model) is rebuilt from what the bundle says of it."""
        facts = tasks.TASKS.get(d["task"])
        if facts is None:
            facts = tasks.Task(
                str(d["task"]),
                d.get("kind") or "classify",
                d.get("task_description") or str(d["task"]),
                classes=int(d.get("classes") or 0),
            )
        optimizers = [
            OptimizerChoice(
                o["key"], dict(o.get("given", o.get("hyperparameters", {}))), o["label"], o.get("hyperparameters")
            )
            for o in d["optimizers"]
        ]
        config = cls(d["task"], list(d["backends"]), optimizers, seed=int(d.get("seed") or 0))
        config.facts = None if d["task"] in tasks.TASKS else facts
        if facts.is_2d:
            config.steps_2d = int(d["steps"])
        else:
            config.epochs, config.steps_per_epoch = int(d["epochs"]), int(d["steps_per_epoch"])
            config.batch_size = int(d["batch_size"])
        config.cell = d.get("cell") or "LSTM"
        config.seq_len = int(d.get("seq_len") or 30)
        return config

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
    mnist_path: str | None = None,
    limits: Limits = LIMITS,
) -> RunConfig:
    """A checked RunConfig. `optimizers` is a list of (key, raw hyperparameters) pairs;
    raw values may be text. Raises ValueError with every problem found, one per line."""
    errors: list[str] = []
    if task not in tasks.TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {list(tasks.TASKS)}.")
    facts = tasks.TASKS[task]
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
    for choice in choices:  # labels must tell the series apart (not "#": pandas' comment="#" cuts there)
        seen[choice.label] = seen.get(choice.label, 0) + 1
        if seen[choice.label] > 1:
            choice.label = f"{choice.label} ({seen[choice.label]})"
    seed = _integer("Seed", seed, 0, 2**31 - 1, errors)
    config = RunConfig(task, backends, choices, seed=seed, cell=cell, mnist_path=mnist_path)
    if facts.is_2d:
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
        if facts.uses_cell and cell not in tasks.CELLS:
            errors.append(f"Cell must be one of {list(tasks.CELLS)}, got {cell!r}.")
        if facts.uses_seq_len:
            config.seq_len = _integer("Sequence length", seq_len, 4, limits.max_seq_len, errors)
        if facts.uses_mnist and not mnist_path:
            errors.append("No MNIST file is configured on this server.")
    if errors:
        raise ValueError("\n".join(errors))
    return config


def follow(job: Any, interval: float, pause: float) -> Iterator[Any]:
    """Drive `job` (a Comparison or a sweep.Sweep: `start`, `started_at`, `running`, `poll`,
    `version`, `stop`) from start to end: yield it whenever something new came in, at most
    every `interval` seconds, and once more when it has ended; between polls sleep `pause`.
    Closing the generator early (a closed page, Ctrl-C) stops the job."""
    if job.started_at is None:
        job.start()
    try:
        shown, last = -1, 0.0
        while job.running:
            job.poll()
            now = time.monotonic()
            if job.version != shown and now - last >= interval and job.running:
                shown, last = job.version, now
                yield job
            else:
                time.sleep(pause)
        job.poll()
        yield job
    finally:
        if job.running:
            job.stop()


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


# --- warm spares: worker processes that have imported Keras, waiting for a run --------


@dataclass
class _Spare:
    process: Any
    inbox: Any
    queue: Any
    stop: Any
    started: float


class Spares:
    """Used only with warm workers off (`enabled` False: then `take` starts a fresh process);
    with them on, runs go to `sweep.POOL` (`Comparison._pooled_worker`).

    One warm worker process per backend in use (`worker.run_when_given`): a run takes the
    backend's spare, which has already imported Keras, and a new spare is started when the run
    ends (importing Keras beside a run would take its CPU on a small machine). A spare runs one
    run and ends, so no state passes from one run to the next."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._spares: dict[str, _Spare] = {}
        self._lock = threading.Lock()

    def _spawn(self, backend: str) -> _Spare:
        from keras_adaptive_gui import worker

        context = multiprocessing.get_context("spawn")
        inbox, q, stop = context.Queue(), context.Queue(), context.Event()
        process = context.Process(
            target=worker.run_when_given, args=(backend, inbox, q, stop), name=f"keras-adaptive-{backend}", daemon=True
        )
        _start_with_backend(process, backend)
        return _Spare(process, inbox, q, stop, time.monotonic())

    def take(self, backend: str) -> _Spare:
        """The backend's warm spare if it is alive (else a fresh process); a new spare is started."""
        with self._lock:
            spare = self._spares.get(backend)
            if spare is not None:  # (None: one is being started; leave it be)
                del self._spares[backend]
        if spare is None or not spare.process.is_alive():
            spare = self._spawn(backend)
        return spare  # the next spare is started when this run ends (`Comparison._finish`), not beside it

    def warm(self, backend: str) -> None:
        """Start the backend's spare if it has none (in the background: spawning takes a moment)."""
        if not self.enabled or backend not in BACKENDS:
            return
        with self._lock:
            if backend in self._spares and self._spares[backend].process.is_alive():
                return
            self._spares[backend] = None  # being started

        def start() -> None:
            spare = self._spawn(backend)
            with self._lock:
                if not self.enabled:
                    extra = spare
                else:
                    extra, self._spares[backend] = None, spare
            if extra is not None:
                extra.process.terminate()

        threading.Thread(target=start, daemon=True).start()

    def close(self) -> None:
        with self._lock:
            spares, self._spares = [s for s in self._spares.values() if s is not None], {}
        for spare in spares:
            spare.process.terminate()
            spare.process.join(timeout=3)


SPARES = Spares(enabled=os.environ.get("KERAS_ADAPTIVE_WARM_WORKERS", "1") != "0")


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
    status: str = "starting"  # starting, training, finished, blown up, stopped, worker died, error
    blown_up_at: int | None = None  # the step where it blew up (see BLOWUP_RULE)
    blown_up_value: float | None = None  # the loss there (the largest of the run above the threshold)
    blown_up_reason: str = ""
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
    first_loss: float | None = None
    _above: int = 0  # steps in a row above BLOWUP_FACTOR x the first loss
    _above_since: int | None = None
    _peak: float = 0.0

    def add_step(self, row: dict) -> None:
        self.steps.append(row["step"])
        self.times.append(row["time"])
        loss = row["loss"]
        self.losses.append(loss)
        if "x" in row:
            self.xs.append(row["x"])
            self.ys.append(row["y"])
        if not math.isfinite(loss):
            self.blow_up(row["step"], loss, "the loss is not finite")
        elif self.first_loss is None:
            self.first_loss = loss
        elif self.first_loss > 0 and loss > BLOWUP_FACTOR * self.first_loss:
            self._above += 1
            self._above_since = self._above_since or row["step"]
            self._peak = max(self._peak, loss)
            if self._above >= BLOWUP_STEPS:
                self.blow_up(
                    self._above_since,
                    self._peak,
                    f"loss above {BLOWUP_FACTOR:g}× its first loss {self.first_loss:.3g} "
                    f"for {BLOWUP_STEPS} steps in a row",
                )
        else:
            self._above, self._above_since, self._peak = 0, None, 0.0

    def blow_up(self, step: int, value: float, reason: str) -> bool:
        """Mark the series blown up (once): True if it was not already."""
        if self.blown_up_at is not None:
            return False
        self.blown_up_at, self.blown_up_value, self.blown_up_reason = step, value, reason
        if self.status in ("starting", "training", "finished"):
            self.status = "blown up"
        return True

    def blow_up_message(self) -> str:
        value = self.blown_up_value
        shown = f"{value:.3g}" if value is not None and math.isfinite(value) else str(value)
        return f"{self.label} blew up at step {self.blown_up_at}: loss {shown} ({self.blown_up_reason})."

    def check_chance(self, chance: float | None) -> bool:
        """At the end of a classifier's run: blown up if it ended at chance (see BLOWUP_RULE)."""
        if chance is None or not self.val_accs or self.first_loss is None or self.blown_up_at is not None:
            return False
        finite = [v for v in self.losses if math.isfinite(v)]
        if self.val_accs[-1] <= CHANCE_MARGIN * chance and finite and finite[-1] >= self.first_loss:
            return self.blow_up(
                self.steps[-1], finite[-1], f"it ended at chance, validation accuracy {100 * self.val_accs[-1]:.1f}%"
            )
        return False

    def add_stats(self, row: dict) -> None:
        for name in STATS:
            if row.get(name) is not None:
                steps, values = self.stats[name]
                steps.append(row["step"])
                values.append(row[name])

    def time_per_step_ms(self) -> float | None:
        """Mean step time after the first step (which includes tracing/compiling)."""
        n = len(self.times)
        first = 1 if self.steps and self.steps[0] == 0 else 0  # 2-D runs record the start as step 0
        if n - first < 2:
            return None
        return 1000.0 * (self.times[-1] - self.times[first]) / (n - first - 1)


def _reap(process: Any) -> None:
    """Join a worker that said its last word ("finished", "error"), in a thread of its own: it
    exits right after (its interpreter's shutdown can take seconds, which the page's frames
    must not wait for), and an exited child nobody joins stays a zombie (`[ka-run] <defunct>`)
    as long as the server runs."""
    threading.Thread(target=process.join, name="ka-reap", daemon=True).start()


class _Worker:
    def __init__(self, backend: str, process: Any, queue: Any, stop: Any) -> None:
        self.backend = backend
        self.process = process
        self.queue = queue
        self.stop = stop
        self.ready = False
        self.done = False
        self.startup_s: float | None = None
        self.pooled: Any = None  # the sweep.PersistentWorker running this run, if from the pool
        self.job: str | None = None  # this run's job id on it: its messages carry it


class _PooledProcess:
    """A pool worker's process as a run sees it: it lives on after the run for the next one,
    so joining it waits only once it was told to end (terminate, kill)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self._ending = False

    @property
    def pid(self) -> int:
        return self.worker.process.pid

    @property
    def exitcode(self) -> int | None:
        return self.worker.process.exitcode

    def is_alive(self) -> bool:
        return self.worker.process.is_alive()

    def terminate(self) -> None:
        self._ending = True
        self.worker.process.terminate()

    def kill(self) -> None:
        self._ending = True
        self.worker.process.kill()

    def join(self, timeout: float | None = None) -> None:
        if self._ending or not self.is_alive():
            self.worker.process.join(timeout)


def pooled() -> bool:
    """Whether runs go to the warm persistent workers of `sweep.POOL` (KERAS_ADAPTIVE_WARM_WORKERS
    unset or not 0, and `SPARES` enabled) or each to a fresh process that ends with it."""
    return SPARES.enabled


def warm(backend: str) -> None:
    """Have a worker with Keras imported ready for `backend`'s next run (in the background)."""
    if backend not in BACKENDS or not pooled():
        return
    from keras_adaptive_gui import sweep

    threading.Thread(target=sweep.POOL.warm, args=(backend,), daemon=True).start()


class Comparison:
    """One comparison: the selected optimizers on one backend each worker.

    `run()` is the one loop that drives it from start to end (the page and the command
    line both iterate it); `stop()` may be called from another thread at any time.
    """

    def __init__(self, config: RunConfig, limits: Limits = LIMITS, run_id: str | None = None) -> None:
        self.config = config
        self.limits = limits
        self.run_id = run_id or new_run_id()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S")
        self.series: list[Series] = []
        self.messages: list[str] = []
        self.workers: list[_Worker] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.stopped = False  # Stop was asked for
        self.version = 0  # counts what was taken in: a display redraws when it changes
        self.last_wall: float | None = None  # when the newest message taken in was sent (time.time())
        self.wall_log: list = []  # (time.time() a steps message was sent, the furthest step in it)
        self._slots = 0
        self.pool: Any = None  # a sweep.Pool to take workers from (None: sweep.POOL, if `pooled()`)
        self.lock = threading.RLock()
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

    def start(self) -> Comparison:
        _acquire_slots(len(self.config.backends), self.limits)
        self._slots = len(self.config.backends)
        self.started_at = time.monotonic()
        try:
            for backend in self.config.backends:
                if self.pool is not None or pooled():
                    self.workers.append(self._pooled_worker(backend))
                    continue
                spare = SPARES.take(backend)
                spare.inbox.put(self.config.worker_config(backend))
                w = _Worker(backend, spare.process, spare.queue, spare.stop)
                w.inbox = spare.inbox  # kept: the child may not have unpickled it yet
                self.workers.append(w)
        except BaseException:
            self.stop()
            raise
        return self

    def _pooled_worker(self, backend: str) -> _Worker:
        """The run as a job of a warm persistent worker (`worker.serve`): it keeps Keras, the data
        and the built and compiled models between runs (a run of the same task and optimizers
        reuses them: the same numbers as a fresh process, tests/gui/test_sweep.py)."""
        from keras_adaptive_gui import sweep

        pool = self.pool if self.pool is not None else sweep.POOL
        pw = pool.take(backend)
        job = f"{self.run_id}-{backend}"
        pw.give({"job": "run", "id": job, "config": self.config.worker_config(backend)})
        w = _Worker(backend, _PooledProcess(pw), pw.outbox, pw.stop)
        w.pooled, w.job = pw, job
        return w

    def run(self, interval: float = 0.2) -> Iterator[Comparison]:
        """Start the comparison (unless started), then yield it whenever something new came in
        (at most every `interval` seconds) and once more when it has ended. Closing the
        generator early (a closed page, Ctrl-C) stops the workers."""
        return follow(self, interval, pause=0.02)

    @property
    def running(self) -> bool:
        return any(not w.done for w in self.workers)

    def poll(self, max_messages: int = 10000) -> None:
        """Take in what the workers reported; notice dead workers and the time limit."""
        with self.lock:
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
                self._finish()

    def _finish(self) -> None:
        self.finished_at = time.monotonic()
        for w in self.workers:
            if w.pooled is None:
                SPARES.warm(w.backend)  # for the next Train
            else:
                self._give_back(w)
        chance = self.config.task_facts.chance_accuracy
        for s in self.series:
            if s.status == "finished" and s.check_chance(chance):
                self.messages.append(s.blow_up_message())
        self.version += 1
        self._release()

    def _give_back(self, w: _Worker) -> None:
        """A pool worker that answered (its run's last message taken in) goes back to its pool,
        with what it built; one that did not, or died, is ended (the pool starts a new one)."""
        pw, w.pooled = w.pooled, None
        if pw is None:
            return
        if w.job in pw.jobs:
            pw.jobs.remove(w.job)
        pool = self.pool
        if pool is None:
            from keras_adaptive_gui import sweep

            pool = sweep.POOL
        if w.done and pw.alive and not w.process._ending:
            pool.give_back(pw)  # clears its stop flag
        else:
            pw.end()

    def _drain(self, w: _Worker, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while not w.done and time.monotonic() < deadline:
            try:
                self._handle(w, w.queue.get(timeout=0.05))
            except (queue_module.Empty, EOFError, OSError):
                break

    def _handle(self, w: _Worker, m: dict) -> None:
        if w.job is not None and m.get("job") != w.job:
            return  # a pool worker's message of an earlier job: not this run's
        kind = m.get("type")
        self.version += 1
        if kind == "ready":
            w.ready, w.startup_s = True, m.get("startup_s")
            for s in self.series:
                if s.backend == w.backend and s.status == "starting":
                    s.status = "training"
        elif kind == "steps":
            for row in m["rows"]:
                s = self.series_of(w.backend, row["series"])
                was = s.blown_up_at
                s.add_step(row)
                if was is None and s.blown_up_at is not None:
                    self.messages.append(s.blow_up_message())
            for row in m.get("stats", ()):
                self.series_of(w.backend, row["series"]).add_stats(row)
            self.last_wall = m.get("wall", self.last_wall)
            if m["rows"] and self.last_wall is not None:  # when the worker had reached which step
                self.wall_log.append((self.last_wall, max(row["step"] for row in m["rows"])))
        elif kind == "epoch":
            s = self.series_of(w.backend, m["series"])
            s.epochs.append(m["epoch"])
            s.epoch_steps.append(m["step"])
            s.val_losses.append(m["val_loss"])
            s.val_accs.append(m["val_acc"])
        elif kind == "diverged":  # the worker stopped this series: its loss was not finite
            s = self.series_of(w.backend, m["series"])
            if s.blow_up(m["step"], m["loss"], "the loss is not finite; this optimizer was stopped there"):
                self.messages.append(s.blow_up_message())
        elif kind == "finished":
            self._end_worker(w, "stopped" if m.get("stopped") else "finished")
            _reap(w.process)
        elif kind == "error":
            self._end_worker(w, "error")
            self.messages.append(f"The {w.backend} worker failed: {m.get('message')}")
            _reap(w.process)

    def _end_worker(self, w: _Worker, status: str) -> None:
        w.done = True
        for s in self.series:
            if s.backend == w.backend and s.status in ("starting", "training"):
                s.status = status

    def stop(self, grace: float = 2.0) -> None:
        """Ask every worker to stop and take in what it did up to there (a worker answers within
        a step); end those that do not answer within `grace` seconds. A worker that had already
        finished keeps its "finished"; what they reported so far is kept."""
        with self.lock:
            self.stopped = True
            # Not the pool workers given back at the run's end: they may be running another run now.
            mine = [w for w in self.workers if w.pooled is not None or not isinstance(w.process, _PooledProcess)]
            for w in mine:
                if not w.done:
                    w.stop.set()
            deadline = time.monotonic() + grace
            for w in mine:
                # A pool worker answers once its run has begun (a fresh process only after importing Keras).
                while not w.done and time.monotonic() < deadline and (w.ready or w.pooled is not None):
                    try:
                        self._handle(w, w.queue.get(timeout=0.05))
                    except (queue_module.Empty, EOFError, OSError):
                        if not w.process.is_alive():
                            break
            # A pool worker that answered lives on (`_finish` gives it back); the others are ended.
            ending = [w for w in mine if w.pooled is None or not w.done]
            for w in ending:
                if w.process.is_alive():
                    w.process.terminate()
            for w in ending:
                w.process.join(timeout=3)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join(timeout=3)
                if not w.done:
                    self._drain_quietly(w)
                    self._end_worker(w, "stopped")
                if w.pooled is None:  # a pool worker's queues are closed when it is ended (`_give_back`)
                    w.queue.close()
                    w.queue.cancel_join_thread()
            if self.finished_at is None:
                self._finish()

    def _drain_quietly(self, w: _Worker) -> None:
        for _ in range(100000):
            try:
                message = w.queue.get_nowait()
            except Exception:
                return
            if message.get("type") in ("steps", "epoch", "diverged", "finished"):
                self._handle(w, message)
                if w.done:
                    return

    def _release(self) -> None:
        if self._slots:
            _release_slots(self._slots)
            self._slots = 0

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> bool:
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
        return c.steps_2d if c.task_facts.is_2d else c.epochs * c.steps_per_epoch

    def steps_done(self) -> int:
        """The step the slowest series still training has reached (none training: the furthest)."""
        going = [s.steps[-1] if s.steps else 0 for s in self.series if s.status in ("starting", "training")]
        if not going:
            going = [max((s.steps[-1] if s.steps else 0) for s in self.series)] if self.series else [0]
        return min(going)

    def progress(self) -> float:
        """The fraction of steps done by the slowest series still training (all done: 1)."""
        return min(1.0, self.steps_done() / max(1, self.total_steps()))

    def finished_before_stop(self) -> bool:
        """Stop was asked for, but every worker had already finished its steps."""
        return self.stopped and not any(s.status == "stopped" for s in self.series)

    def backend_difference(self) -> tuple[float, int] | None:
        """Several backends: the largest |loss difference| between backends of one optimizer
        at one step, and that step (None with one backend or no common step)."""
        if len(self.config.backends) < 2:
            return None
        best: tuple[float, int] | None = None
        for i in range(len(self.config.optimizers)):
            by_backend = [dict(zip(s.steps, s.losses)) for s in self.series if s.optimizer == i]
            common = set.intersection(*(set(d) for d in by_backend)) if by_backend else set()
            for step in common:
                values = [d[step] for d in by_backend]
                if all(math.isfinite(v) for v in values):
                    diff = max(values) - min(values)
                    if best is None or diff > best[0]:
                        best = (diff, step)
        return best

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
                    "blown up at step": s.blown_up_at,
                }
            )
        return rows

    def describe(self) -> dict:
        """The run's full configuration and outcome, as the bundle's config.json holds it."""
        return {
            "format": BUNDLE_FORMAT,
            "run_id": self.run_id,
            "created": self.created,
            "config": self.config.to_json(),
            "versions": versions(),
            "blowup_rule": BLOWUP_RULE,
            "stopped": self.stopped,
            "messages": list(self.messages),
            "summary": self.summary(),
        }

    def write_csv(self, path: str) -> str:
        """Every recorded number, one row per (series, step) and per (series, epoch), after one
        line starting with `#` that carries the full configuration as JSON (read the CSV with
        comment="#", or skip that line)."""
        rows = [row for s in self.series for row in record_rows(s)]
        return write_records(path, self.describe(), CSV_COLUMNS, rows)

    def save_bundle(self, folder: str) -> str:
        """The run bundle: `<folder>/<run_id>/config.json` (full configuration and outcome) and
        `records.csv` (every record). Returns the bundle's directory."""
        path = os.path.join(folder, self.run_id)
        os.makedirs(path, exist_ok=True)
        self.write_csv(os.path.join(path, RECORDS_FILE))
        with open(os.path.join(path, CONFIG_FILE), "w") as f:
            json.dump(self.describe(), f, indent=1, default=str)
        return path


CSV_COLUMNS = [
    "optimizer",
    "backend",
    "series",
    "record",
    "step",
    "epoch",
    "time_s",
    "loss",
    *STATS,
    "x",
    "y",
    "val_loss",
    "val_acc",
]
CONFIG_FILE, RECORDS_FILE = "config.json", "records.csv"


def record_rows(s: Series, label: str | None = None, extra: tuple = ()) -> list[list]:
    """The CSV rows of one series (CSV_COLUMNS, then `extra` on every row): one per step, then
    one per epoch. `label` names the series in the optimizer column (default its own label);
    `keras_adaptive.compare` gives the optimizer's label and the seed as `extra`."""
    label = s.label if label is None else label
    stats = [dict(zip(*s.stats[name])) for name in STATS]
    rows = []
    for j, step in enumerate(s.steps):
        xy = (s.xs[j], s.ys[j]) if j < len(s.xs) else ("", "")
        values = [by_step.get(step, "") for by_step in stats]
        rows.append(
            [label, s.backend, s.optimizer, "step", step, "", s.times[j], s.losses[j], *values, *xy, "", "", *extra]
        )
    for epoch, step, val_loss, val_acc in zip(s.epochs, s.epoch_steps, s.val_losses, s.val_accs):
        blanks = [""] * len(STATS)
        rows.append(
            [label, s.backend, s.optimizer, "epoch", step, epoch, "", "", *blanks, "", "", val_loss, val_acc, *extra]
        )
    return rows


def write_records(path: str, meta: dict, columns: list, rows: list) -> str:
    """The records CSV: one `#` line carrying `meta` (the configuration) as JSON, the header,
    the rows (floats written with repr: they read back exactly)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("# keras-adaptive run " + json.dumps(meta, default=str) + "\n")
        out = csv.writer(f)
        out.writerow(columns)
        for row in rows:
            out.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return path


_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(str(text)))


def versions() -> dict:
    """Versions of the packages a run depends on (from their metadata: nothing is imported)."""
    from importlib import metadata

    found = {}
    for name in (
        "keras-adaptive",
        "keras",
        "tensorflow-cpu",
        "tensorflow",
        "jax",
        "jaxlib",
        "torch",
        "numpy",
        "gradio",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def load_bundle(path: str) -> Comparison:
    """A finished comparison read back from a run bundle (a directory with config.json and
    records.csv, as `save_bundle` writes). ValueError says what is wrong with it."""
    try:
        with open(os.path.join(path, CONFIG_FILE)) as f:
            meta = json.load(f)
        if meta.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"not a {BUNDLE_FORMAT} bundle (format {meta.get('format')!r})")
        config = RunConfig.from_json(meta["config"])
        comparison = Comparison(config, run_id=meta.get("run_id"))
        comparison.created = meta.get("created", "")
        comparison.stopped = bool(meta.get("stopped"))
        comparison.messages = list(meta.get("messages", []))
        with open(os.path.join(path, RECORDS_FILE), newline="") as f:
            rows = csv.DictReader(line for line in f if not line.startswith("#"))
            for r in rows:
                s = comparison.series_of(r["backend"], int(r["series"]))
                step = int(r["step"])
                if r["record"] == "step":
                    row = {"step": step, "time": float(r["time_s"]), "loss": float(r["loss"])}
                    if r["x"] != "":
                        row.update(x=float(r["x"]), y=float(r["y"]))
                    s.add_step(row)
                    s.add_stats({"step": step, **{n: float(r[n]) for n in STATS if r[n] != ""}})
                else:
                    s.epochs.append(int(r["epoch"]))
                    s.epoch_steps.append(step)
                    s.val_losses.append(float(r["val_loss"]))
                    s.val_accs.append(float(r["val_acc"]))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the run bundle {os.path.basename(path)!r}: {error}") from None
    for s, row in zip(comparison.series, meta.get("summary", [])):
        s.status = row.get("status", "finished")
        if row.get("blown up at step") is not None and s.blown_up_at is None:
            s.blown_up_at = row["blown up at step"]
    comparison.finished_at = comparison.started_at = 0.0
    return comparison


def config_text(comparison: Comparison) -> str:
    """The run's full configuration in a few lines: task and run settings, every optimizer
    with every hyperparameter, package versions (the PNGs carry it)."""
    d = comparison.config.to_json()
    facts = comparison.config.task_facts
    run = [f"task {d['task']} ({d['task_description']})", f"backends {', '.join(d['backends'])}"]
    if facts.is_2d:
        run.append(f"{d['steps']} steps")
    else:
        run.append(f"{d['epochs']} epochs × {d['steps_per_epoch']} steps, batch size {d['batch_size']}")
    run.append(f"seed {d['seed']}")
    if d["cell"]:
        run.append(f"cell {d['cell']}")
    if d["seq_len"]:
        run.append(f"sequence length {d['seq_len']}")
    lines = [f"run {comparison.run_id} · " + " · ".join(run)]
    for o in d["optimizers"]:
        values = ", ".join(f"{k}={hyperparams.format_number(v)}" for k, v in o["hyperparameters"].items())
        lines.append(f"{o['label']}: {o['key']}({values})")
    lines.append(", ".join(f"{k} {v}" for k, v in versions().items()))
    return "\n".join(lines)
