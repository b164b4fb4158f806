"""Sweeps: every (optimizer, learning rate, seed, backend) a real, complete training run.

`check_sweep` turns a person's inputs into a `SweepConfig` (or a ValueError listing what is
wrong); `Sweep` schedules its runs over persistent warm workers (`worker.serve`: Keras
imported once, models and compiled training functions reused from run to run), gathers each
run's records into an `engine.Series` (so the blow-up rule is the comparisons' one), and
stops at once when asked, keeping what finished. The page and `keras-adaptive sweep` both
drive `Sweep.run()`.

What is computed from the runs (`result_rows`, one dict per run, the rows of sweep.csv) is
aggregated by `sensitivity` (per optimizer and learning rate: median and min-max over the
seeds that did not blow up), `best_points` and `table_rows`, from those rows only, so a
sweep.csv read back gives the same figures.

A run of a sweep is the run `keras-adaptive compare` makes with that one optimizer, its
learning rate, the task and `--seed` = the run's seed: same config, same worker code.

No keras here either (this module spawns workers).
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keras_adaptive_gui import engine, hyperparams, tasks

GRID_POINTS = 7  # the default grid: this many learning rates ...
GRID_DECADES = 2.0  # ... log-spaced over this many decades either side of the optimizer's rate
DEFAULT_SEEDS = 3
IN_FLIGHT = 2  # jobs given to a worker at once (the next waits in its inbox: no idle gap)
CSV_COLUMNS = [
    "optimizer",
    "name",
    "hyperparameters",
    "learning_rate",
    "seed",
    "backend",
    "status",
    "final_loss",
    "best_val_loss",
    "best_val_acc",
    "steps_to_target",
    "seconds_to_target",
]
SWEEP_FILE = "sweep.csv"


# --- grids ------------------------------------------------------------------------------


def default_grid(center: float, points: int = GRID_POINTS, decades: float = GRID_DECADES) -> list[float]:
    """`points` learning rates log-spaced over `decades` either side of `center`."""
    return [float(center * 10.0**e) for e in np.linspace(-decades, decades, points)]


def parse_grid(text: Any, center: float, max_points: int, where: str = "Learning rates") -> list[float]:
    """A grid from a person's text: empty (the default grid around `center`), a list
    `0.001, 0.01, 0.1` or `low:high:n` (n points log-spaced from low to high). ValueError
    names the text and what is allowed."""
    raw = "" if text is None else str(text).strip()
    allowed = "a list such as 0.001, 0.01, 0.1 or low:high:n such as 1e-4:1e-1:7"
    if not raw:
        return default_grid(center)
    try:
        if ":" in raw:
            parts = [p.strip() for p in raw.split(":")]
            if len(parts) != 3:
                raise ValueError
            low, high, n = float(parts[0]), float(parts[1]), float(parts[2])
            if n != int(n) or n < 1:
                raise ValueError(f"{where}: the number of points in {raw!r} must be a whole number ≥ 1.")
            n = int(n)
            if n > max_points:
                raise ValueError(f"{where}: {raw!r} has {n} points; at most {max_points} are allowed.")
            if not (low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"{where}: {raw!r}: learning rates must be positive and finite.")
            if n > 1 and not low < high:
                raise ValueError(f"{where}: {raw!r}: low must be below high.")
            values = [low] if n == 1 else [float(v) for v in np.logspace(math.log10(low), math.log10(high), n)]
        else:
            values = [float(p) for p in raw.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where}: cannot read {raw!r}; give {allowed}.") from None
    if not values:
        raise ValueError(f"{where}: {raw!r} holds no learning rate; give {allowed}.")
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"{where}: {raw!r}: learning rates must be positive and finite, got {bad[0]:g}.")
    values = sorted(set(values))
    if len(values) > max_points:
        raise ValueError(f"{where}: {raw!r} has {len(values)} points; at most {max_points} are allowed.")
    return values


# --- the checked configuration -------------------------------------------------------------


@dataclass
class SweepConfig:
    base: engine.RunConfig  # task and run settings; its optimizers carry the centre learning rates
    grids: list  # per optimizer of `base`, its learning rates
    seeds: list  # the seeds (each: initial weights and batch order)
    target: float
    target_metric: str  # "val_acc" or "loss"

    @property
    def task_facts(self) -> tasks.Task:
        return self.base.task_facts

    def runs(self) -> list[RunSpec]:
        """Every run, seed by seed (so each curve of the sensitivity plot fills in early)."""
        specs = []
        for seed in self.seeds:
            for backend in self.base.backends:
                for i in range(len(self.base.optimizers)):
                    for lr in self.grids[i]:
                        specs.append(RunSpec(len(specs), i, lr, seed, backend))
        return specs

    def run_config(self, spec: RunSpec) -> engine.RunConfig:
        """The run as `keras-adaptive compare` makes it: that one optimizer at that learning
        rate, on that backend, with that seed."""
        choice = self.base.optimizers[spec.optimizer]
        kwargs = dict(choice.kwargs, learning_rate=spec.learning_rate)
        one = engine.OptimizerChoice(choice.key, kwargs, hyperparams.describe(choice.key, kwargs))
        return replace(self.base, backends=[spec.backend], optimizers=[one], seed=spec.seed)

    def name(self, i: int) -> str:
        """Optimizer `i` without its learning rate (what the sweep varies): its key and the
        hyperparameters that differ from its defaults; repeats numbered."""
        names = [self._plain(j) for j in range(len(self.base.optimizers))]
        label = names[i]
        if names.count(label) > 1:  # "(2)", not "#2": pandas' comment="#" would cut the name there
            label = f"{label} ({names[: i + 1].count(label)})"
        return label

    def _plain(self, i: int) -> str:
        choice = self.base.optimizers[i]
        defaults = hyperparams.full_kwargs(choice.key, {})
        changed = [
            f"{k}={hyperparams.format_number(v)}"
            for k, v in choice.kwargs.items()
            if k != "learning_rate" and v != defaults.get(k)
        ]
        return f"{choice.key} ({', '.join(changed)})" if changed else choice.key

    def default_lr(self, i: int) -> float:
        choice = self.base.optimizers[i]
        return float(hyperparams.full_kwargs(choice.key, {}).get("learning_rate", 0.001))

    def hyperparameters(self, i: int) -> dict:
        """Every hyperparameter of optimizer `i` but the learning rate (the sweep's axis)."""
        choice = self.base.optimizers[i]
        values = hyperparams.full_kwargs(choice.key, choice.kwargs)
        values.pop("learning_rate", None)
        return values

    def keys(self) -> list[tuple[str, str]]:
        """Every (name, backend) of the sweep in its order: the charts' colours stay put while
        the runs come in."""
        return [(self.name(i), b) for b in self.base.backends for i in range(len(self.base.optimizers))]

    def describe(self) -> dict:
        d = self.base.to_json()
        d["optimizers"] = [
            {"key": o.key, "name": self.name(i), "hyperparameters": self.hyperparameters(i), "learning_rates": g}
            for i, (o, g) in enumerate(zip(self.base.optimizers, self.grids))
        ]
        d.update(seeds=list(self.seeds), target=self.target, target_metric=self.target_metric)
        return d


@dataclass
class RunSpec:
    index: int
    optimizer: int
    learning_rate: float
    seed: int
    backend: str


def check_sweep(
    task: str,
    optimizers: list,
    backends: list,
    learning_rates: Any = None,
    seeds: Any = DEFAULT_SEEDS,
    target: Any = None,
    limits: engine.Limits = engine.LIMITS,
    first_seed: Any = 0,
    **settings: Any,
) -> SweepConfig:
    """A checked SweepConfig. `optimizers`: (key, raw hyperparameters) pairs as for
    `engine.check_config` (a learning rate given there is the centre of its default grid);
    `learning_rates`: None or "" (default grids), one text for every optimizer, or a list of
    texts, one per optimizer; `seeds`: how many, from `first_seed` on; `target`: None (the
    task's default) or a number. Raises ValueError with every problem found, one per line."""
    errors: list[str] = []
    try:
        base = engine.check_config(task, optimizers, backends, seed=first_seed, limits=limits, **settings)
    except ValueError as error:
        errors += str(error).splitlines()
        base = None
    n_seeds = engine._integer("Seeds", seeds, 1, limits.max_seeds, errors)
    facts = tasks.TASKS.get(task)
    grids: list = []
    if base is not None:
        texts = learning_rates if isinstance(learning_rates, list | tuple) else [learning_rates] * len(base.optimizers)
        if len(texts) != len(base.optimizers):
            errors.append(f"Learning rates: {len(texts)} grids for {len(base.optimizers)} optimizers.")
            texts = [None] * len(base.optimizers)
        for i, (choice, text) in enumerate(zip(base.optimizers, texts)):
            center = float(hyperparams.full_kwargs(choice.key, choice.kwargs).get("learning_rate", 0.001))
            where = f"Learning rates of optimizer {i + 1} ({choice.key})"
            try:
                grid = parse_grid(text, center, limits.max_grid_points, where)
                for lr in grid:
                    hyperparams.check(choice.key, dict(choice.kwargs, learning_rate=lr), where=f"{where}: ")
                grids.append(grid)
            except ValueError as error:
                errors.append(str(error))
                grids.append([])
    metric = facts.target_metric if facts else "loss"
    value = facts.target if facts else 0.0
    if target not in (None, ""):
        try:
            value = float(str(target).strip())
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            errors.append(f"Target must be a number, got {target!r}.")
        if metric == "val_acc" and not 0 < value <= 1:
            errors.append(f"Target: a validation accuracy between 0 and 1 for {task}, got {target!r}.")
        elif metric == "loss" and value < 0:
            errors.append(f"Target: a loss ≥ 0, got {target!r}.")
    if base is not None and not errors:
        total = sum(len(g) for g in grids) * n_seeds * len(base.backends)
        if total > limits.max_sweep_runs:
            errors.append(
                f"Sweep too large: {total} runs (learning rates × seeds × backends); at most "
                f"{limits.max_sweep_runs} are allowed."
            )
    if errors:
        raise ValueError("\n".join(errors))
    seeds_list = [int(base.seed) + k for k in range(n_seeds)]
    return SweepConfig(base, grids, seeds_list, value, metric)


# --- persistent workers ----------------------------------------------------------------------


@dataclass
class PersistentWorker:
    backend: str
    process: Any
    inbox: Any
    outbox: Any
    stop: Any
    jobs: list = field(default_factory=list)  # job ids given and not finished
    ready: bool = False

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def give(self, job: dict) -> None:
        self.jobs.append(job["id"])
        self.inbox.put(job)

    def terminate(self) -> None:
        if self.alive:
            self.process.terminate()
        self.process.join(timeout=3)
        if self.alive:
            self.process.kill()
            self.process.join(timeout=3)

    def end(self) -> None:
        """Terminate the process (always safe: it holds nothing to save) and close its queues."""
        self.terminate()
        for q in (self.inbox, self.outbox):
            q.close()
            q.cancel_join_thread()


def start_worker(backend: str) -> PersistentWorker:
    from keras_adaptive_gui import worker

    context = multiprocessing.get_context("spawn")
    inbox, outbox, stop = context.Queue(), context.Queue(), context.Event()
    process = context.Process(
        target=worker.serve, args=(backend, inbox, outbox, stop), name=f"keras-adaptive-sweep-{backend}", daemon=True
    )
    engine._start_with_backend(process, backend)
    return PersistentWorker(backend, process, inbox, outbox, stop)


class Pool:
    """Idle persistent workers kept between sweeps (with what they built), per backend."""

    def __init__(self, keep: int = 1) -> None:  # per backend: an idle worker holds ~0.7 GB
        self.keep = keep
        self._idle: dict[str, list] = {}
        self._lock = threading.Lock()

    def take(self, backend: str) -> PersistentWorker:
        with self._lock:
            idle = self._idle.get(backend, [])
            while idle:
                w = idle.pop()
                if w.alive:
                    return w
        return start_worker(backend)

    def warm(self, backend: str, n: int = 1) -> None:
        """Start `n` workers for `backend` now (they import Keras while the caller gets ready)."""
        with self._lock:
            idle = self._idle.setdefault(backend, [])
            missing = max(0, n - sum(w.alive for w in idle))
        for _ in range(missing):
            w = start_worker(backend)
            with self._lock:
                self._idle.setdefault(backend, []).append(w)

    def give_back(self, w: PersistentWorker) -> None:
        with self._lock:
            idle = self._idle.setdefault(w.backend, [])
            if w.alive and not w.jobs and len(idle) < self.keep:
                w.stop.clear()
                idle.append(w)
                return
        w.end()

    def close(self) -> None:
        with self._lock:
            workers = [w for idle in self._idle.values() for w in idle]
            self._idle = {}
        for w in workers:
            w.end()


POOL = Pool()


def default_workers_per_backend() -> int:
    """Workers per backend of a sweep: half the cores (at least one): see benchmarks/sweep.py."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


# --- a sweep in progress --------------------------------------------------------------------


@dataclass
class Run:
    spec: RunSpec
    series: engine.Series
    status: str = "pending"  # pending, training, finished, at chance, blown up, stopped, not run, error, worker died
    error: str = ""


class Sweep:
    """One sweep: its runs over `workers_per_backend` persistent workers per backend.

    `run()` drives it from start to end (page and command line iterate it); `stop()` may be
    called from another thread at any time: it ends the workers at once, keeps the runs that
    finished and marks the run in progress "stopped"."""

    def __init__(
        self,
        config: SweepConfig,
        limits: engine.Limits = engine.LIMITS,
        workers_per_backend: int | None = None,
        pool: Pool | None = None,
        sweep_id: str | None = None,
    ) -> None:
        self.config = config
        self.limits = limits
        self.sweep_id = sweep_id or engine.new_run_id()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S")
        self.pool = pool if pool is not None else POOL
        self.per_backend = workers_per_backend or default_workers_per_backend()
        self.runs = [
            Run(spec, engine.Series(config.run_config(spec).optimizers[0].label, spec.optimizer, spec.backend))
            for spec in config.runs()
        ]
        self.pending = list(range(len(self.runs)))
        self.workers: list[PersistentWorker] = []
        self.messages: list[str] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.stopped = False
        self.version = 0
        self._slots = 0
        self.lock = threading.RLock()

    # --- scheduling ---

    def start(self) -> Sweep:
        backends = self.config.base.backends
        n = self.per_backend * len(backends)
        engine._acquire_slots(n, self.limits)
        self._slots = n
        self.started_at = time.monotonic()
        try:
            for backend in backends:
                for _ in range(self.per_backend):
                    self.workers.append(self.pool.take(backend))
            with self.lock:
                self._feed()
        except BaseException:
            self.stop()
            raise
        return self

    def _feed(self) -> None:
        for w in self.workers:
            while len(w.jobs) < IN_FLIGHT and w.alive:
                index = next((i for i in self.pending if self.runs[i].spec.backend == w.backend), None)
                if index is None:
                    break
                self.pending.remove(index)
                spec = self.runs[index].spec
                config = dict(self.config.run_config(spec).worker_config(spec.backend), stats=False)
                w.give({"job": "run", "id": index, "config": config})

    @property
    def running(self) -> bool:
        return self.finished_at is None and self.started_at is not None

    def run(self, interval: float = 0.2) -> Iterator[Sweep]:
        """Start (unless started), yield whenever something new came in (at most every
        `interval` s) and once at the end. Closing the generator early stops the sweep."""
        return engine.follow(self, interval, pause=0.01)

    def poll(self, max_messages: int = 10000) -> None:
        with self.lock:
            if not self.running:
                return
            for w in self.workers:
                for _ in range(max_messages):
                    try:
                        message = w.outbox.get_nowait()
                    except (queue_module.Empty, EOFError, OSError):
                        break
                    self._handle(w, message)
                if w.jobs and not w.alive:
                    self._drain(w)
                    for index in list(w.jobs):
                        self._end_run(index, "worker died")
                        self.messages.append(
                            f"The {w.backend} worker died (exit code {w.process.exitcode}) during "
                            f"{self.runs[index].series.label}, seed {self.runs[index].spec.seed}."
                        )
                    w.jobs.clear()
            if self.pending and not any(w.alive for w in self.workers):
                for index in self.pending:
                    self.runs[index].status = "not run"
                self.pending = []
            self._feed()
            if self.started_at and time.monotonic() - self.started_at > self.limits.max_sweep_seconds:
                self.messages.append(f"Time limit of {self.limits.max_sweep_seconds:g} s reached: sweep stopped.")
                self.stop()
                return
            if not self.pending and not any(w.jobs for w in self.workers):
                self._finish(keep_workers=True)

    def _drain(self, w: PersistentWorker) -> None:
        for _ in range(100000):
            try:
                self._handle(w, w.outbox.get_nowait())
            except (queue_module.Empty, EOFError, OSError):
                return

    def _handle(self, w: PersistentWorker, m: dict) -> None:
        index, kind = m.get("job"), m.get("type")
        if index is None or not 0 <= index < len(self.runs):
            return
        run, s = self.runs[index], self.runs[index].series
        self.version += 1
        if kind == "ready":
            w.ready = True
            run.status = "training"
        elif kind == "steps":
            for row in m["rows"]:
                s.add_step(row)
        elif kind == "epoch":
            s.epochs.append(m["epoch"])
            s.epoch_steps.append(m["step"])
            s.val_losses.append(m["val_loss"])
            s.val_accs.append(m["val_acc"])
        elif kind == "diverged":
            s.blow_up(m["step"], m["loss"], "the loss is not finite; this run was stopped there")
        elif kind == "finished":
            self._end_run(index, "stopped" if m.get("stopped") else "finished")
        elif kind == "error":
            run.error = m.get("message", "")
            self._end_run(index, "error")
            self.messages.append(f"{s.label}, seed {run.spec.seed} on {w.backend} failed: {run.error}")

    def _end_run(self, index: int, status: str) -> None:
        run = self.runs[index]
        for w in self.workers:
            if index in w.jobs:
                w.jobs.remove(index)
        run.status = run.series.status = sweep_status(run.series, status, self.config.task_facts.chance_accuracy)

    def stop(self) -> None:
        """End the sweep now: workers are ended (a run in progress is "stopped", its records so
        far kept), runs not started are "not run"."""
        with self.lock:
            if self.finished_at is not None:
                return
            self.stopped = True
            for w in self.workers:
                w.stop.set()
            for w in self.workers:
                w.terminate()
                self._drain(w)  # what it sent before it ended is kept
                for index in list(w.jobs):
                    self._end_run(index, "stopped" if self.runs[index].status == "training" else "not run")
                w.jobs.clear()
            for index in self.pending:
                self.runs[index].status = "not run"
            self.pending = []
            self._finish(keep_workers=False)

    def _finish(self, keep_workers: bool) -> None:
        self.finished_at = time.monotonic()
        for w in self.workers:
            if keep_workers:
                self.pool.give_back(w)
            else:
                w.end()
        self.workers = []
        if self._slots:
            engine._release_slots(self._slots)
            self._slots = 0
        self.version += 1

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            self.poll()
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- progress and results ---

    def done(self) -> int:
        return sum(r.status not in ("pending", "training") for r in self.runs)

    def progress(self) -> float:
        total_steps = self.total_steps()
        partial = sum(
            min(1.0, (r.series.steps[-1] if r.series.steps else 0) / total_steps)
            for r in self.runs
            if r.status == "training"
        )
        return min(1.0, (self.done() + partial) / max(1, len(self.runs)))

    def total_steps(self) -> int:
        c = self.config.base
        return max(1, c.steps_2d if c.task_facts.is_2d else c.epochs * c.steps_per_epoch)

    def result_rows(self, include_unfinished: bool = False) -> list[dict]:
        """One dict per run (sweep.csv's rows): runs that ended, or every run."""
        rows = []
        for run in self.runs:
            if run.status in ("pending", "training", "not run") and not include_unfinished:
                continue
            rows.append(result_row(self.config, run))
        return rows

    def write_csv(self, path: str) -> str:
        return write_csv(self.result_rows(), path)

    def comparisons(self) -> list[engine.Comparison]:
        """The sweep as run bundles, one per seed: a comparison of every (optimizer, learning
        rate) at that seed (the page's history lays them over a chart like any run)."""
        found = []
        for seed in self.config.seeds:
            runs = [r for r in self.runs if r.spec.seed == seed and r.status not in ("pending", "not run")]
            if not runs:
                continue
            keys = []
            for r in runs:
                key = (r.spec.optimizer, r.spec.learning_rate)
                if key not in keys:
                    keys.append(key)
            choices = [self.config.run_config(RunSpec(0, i, lr, seed, "")).optimizers[0] for i, lr in keys]
            config = replace(self.config.base, optimizers=choices, seed=seed)
            comparison = engine.Comparison(config, limits=self.limits)
            comparison.messages = [f"sweep {self.sweep_id}, seed {seed}"]
            for s in comparison.series:
                s.status = "not run"
            for r in runs:
                s = comparison.series_of(r.spec.backend, keys.index((r.spec.optimizer, r.spec.learning_rate)))
                copy = replace(r.series, label=s.label, optimizer=s.optimizer)
                comparison.series[comparison.series.index(s)] = copy
            comparison.started_at = comparison.finished_at = 0.0
            comparison.stopped = self.stopped
            found.append(comparison)
        return found

    def save(self, folder: str) -> dict:
        """sweep.csv, sweep.json (the configuration) and the run bundles under `folder`."""
        os.makedirs(folder, exist_ok=True)
        paths = {"csv": self.write_csv(os.path.join(folder, SWEEP_FILE))}
        with open(os.path.join(folder, "sweep.json"), "w") as f:
            json.dump(
                {"sweep_id": self.sweep_id, "created": self.created, "config": self.config.describe()},
                f,
                indent=1,
                default=str,
            )
        paths["bundles"] = [c.save_bundle(folder) for c in self.comparisons()]
        return paths

    def curves(self, best: dict) -> list[dict]:
        """The loss curves at each optimizer's best learning rate (`best_curves`)."""
        runs = [(self.config.name(r.spec.optimizer), r.spec.backend, r.spec.learning_rate, r.series) for r in self.runs]
        index = {self.config.name(i): i for i in range(len(self.config.base.optimizers))}
        return [{"optimizer": index[c["name"]], **c} for c in best_curves(best, runs)]


def best_curves(best: dict, runs: list) -> list[dict]:
    """The loss curves at each optimizer's best learning rate: per optimizer (and backend)
    the steps, and over the seeds the median, min and max of the batch loss at each step
    every seed reached (blown-up seeds included up to where they stopped). `best` as
    `best_points` gives it; `runs` (name, backend, learning rate, engine.Series) per run."""
    out = []
    for (name, backend), point in best.items():
        mine = [
            s
            for n, b, lr, s in runs
            if n == name and b == backend and math.isclose(lr, point["learning_rate"]) and s.steps
        ]
        if not mine:
            continue
        n = min(len(s.steps) for s in mine)
        losses = np.array([s.losses[:n] for s in mine], dtype=float)
        times = np.array([s.times[:n] for s in mine], dtype=float)
        out.append(
            {
                "backend": backend,
                "name": point["name"],
                "learning_rate": point["learning_rate"],
                "steps": list(mine[0].steps[:n]),
                "time": list(np.median(times, axis=0)),
                "median": list(np.median(losses, axis=0)),
                "low": list(np.min(losses, axis=0)),
                "high": list(np.max(losses, axis=0)),
                "seeds": len(mine),
            }
        )
    return out


def sweep_status(s: engine.Series, status: str, chance: float | None) -> str:
    """A sweep run's status, once it ended with `status` ("finished", "stopped", ...). The
    comparisons' chance rule calls a classifier that ends at chance blown up. In a sweep, a
    learning rate too small to move in the run's steps also ends at chance: blown up only if
    the loss went up on the way (above BLOWUP_FACTOR x its first); else "at chance", its
    numbers kept as measured (the sensitivity plot shows the low accuracy)."""
    if status == "finished" and at_chance(s, chance):
        finite = [v for v in s.losses if math.isfinite(v)]
        if max(finite) > engine.BLOWUP_FACTOR * s.first_loss:
            s.check_chance(chance)
        else:
            status = "at chance"
    return "blown up" if s.blown_up_at is not None and status == "finished" else status


def at_chance(s: engine.Series, chance: float | None) -> bool:
    """The comparisons' chance rule (engine.BLOWUP_RULE): a classifier that ends with a
    validation accuracy at most CHANCE_MARGIN x chance and a loss no lower than its first."""
    if chance is None or not s.val_accs or s.first_loss is None or s.blown_up_at is not None:
        return False
    finite = [v for v in s.losses if math.isfinite(v)]
    return bool(finite) and s.val_accs[-1] <= engine.CHANCE_MARGIN * chance and finite[-1] >= s.first_loss


def result_row(config: SweepConfig, run: Run) -> dict:
    spec = run.spec
    return run_row(
        run.series,
        optimizer=config.base.optimizers[spec.optimizer].key,
        name=config.name(spec.optimizer),
        hyperparameters=config.hyperparameters(spec.optimizer),
        learning_rate=spec.learning_rate,
        seed=spec.seed,
        backend=spec.backend,
        status=run.status,
        reached=time_to_target(run.series, config.target, config.target_metric),
    )


def run_row(
    s: engine.Series,
    *,
    optimizer: str,
    name: str,
    hyperparameters: dict,
    learning_rate: float,
    seed: int,
    backend: str,
    status: str,
    reached: tuple,
) -> dict:
    """One row of sweep.csv (CSV_COLUMNS) from a run's series: the page's sweeps and
    `keras_adaptive.sweep` both make their rows here. `name` is the optimizer without its
    learning rate, `hyperparameters` every other hyperparameter, `reached` (step, seconds) at
    which it reached the target, or (None, None)."""
    finite = [v for v in s.losses if math.isfinite(v)]
    return {
        "optimizer": optimizer,
        "name": name,
        "hyperparameters": json.dumps(hyperparameters, sort_keys=True, default=str),
        "learning_rate": learning_rate,
        "seed": seed,
        "backend": backend,
        "status": status,
        "final_loss": finite[-1] if finite and s.blown_up_at is None else (s.losses[-1] if s.losses else None),
        "best_val_loss": min(s.val_losses) if s.val_losses else None,
        "best_val_acc": max(s.val_accs) if s.val_accs else None,
        "steps_to_target": reached[0],
        "seconds_to_target": reached[1],
    }


def time_to_target(s: engine.Series, target: float, metric: str) -> tuple[int | None, float | None]:
    """The first step at which the run reached the target, and its cumulated training time
    (its own step times) there: a validation accuracy ≥ target at an epoch's evaluation
    (the step is that epoch's last), or a training batch loss ≤ target. (None, None): not reached."""
    if metric == "val_acc":
        for step, acc in zip(s.epoch_steps, s.val_accs):
            if acc >= target:
                j = s.steps.index(step) if step in s.steps else None
                return step, (s.times[j] if j is not None else None)
        return None, None
    for step, loss, t in zip(s.steps, s.losses, s.times):
        if math.isfinite(loss) and loss <= target:
            return step, t
    return None, None


def write_csv(rows: list[dict], path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        out.writeheader()
        for row in rows:
            out.writerow(
                {
                    k: ("" if row[k] is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                    for k in CSV_COLUMNS
                }
            )
    return path


def read_csv(path: str) -> list[dict]:
    """sweep.csv back as rows (numbers as numbers, empty cells as None)."""
    numbers = {"learning_rate", "final_loss", "best_val_loss", "best_val_acc", "seconds_to_target"}
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict = dict(r)
            for k in numbers:
                row[k] = float(r[k]) if r[k] != "" else None
            for k in ("seed", "steps_to_target"):
                row[k] = int(r[k]) if r[k] != "" else None
            rows.append(row)
    return rows


# --- aggregation (from result rows only) ----------------------------------------------------

BLOWN = ("blown up",)
ENDED = ("finished", "blown up", "at chance")  # runs that ran all their steps (or blew up)


def metric_of(kind: str) -> tuple[str, str, bool]:
    """The sensitivity plot's validation metric: (column, title, higher is better)."""
    if kind == "classify":
        return "best_val_acc", "best validation accuracy", True
    if kind == "regress":
        return "best_val_loss", "best validation loss", False
    return "final_loss", "final loss", False


def _spread(values: list) -> tuple:
    if not values:
        return None, None, None
    a = np.asarray(values, dtype=float)
    return float(np.median(a)), float(a.min()), float(a.max())


def sensitivity(rows: list[dict], kind: str) -> list[dict]:
    """Per (name, backend, learning rate): the runs that ended, those that blew up, and over
    the seeds that did not blow up the median, min and max of the final loss and of the
    validation metric (`metric_of`)."""
    column, _, _ = metric_of(kind)
    groups: dict = {}
    for r in rows:
        if r["status"] not in ENDED:
            continue
        groups.setdefault((r["name"], r["backend"], r["learning_rate"]), []).append(r)
    points = []
    first_seen = list(dict.fromkeys(key[:2] for key in groups))  # the optimizers in the rows' order
    for (name, backend, lr), group in sorted(groups.items(), key=lambda kv: (first_seen.index(kv[0][:2]), kv[0][2])):
        kept = [r for r in group if r["status"] not in BLOWN]
        loss = _spread([r["final_loss"] for r in kept if r["final_loss"] is not None])
        metric = _spread([r[column] for r in kept if r[column] is not None])
        points.append(
            {
                "name": name,
                "backend": backend,
                "learning_rate": lr,
                "runs": len(group),
                "blown_up": len(group) - len(kept),
                "loss_median": loss[0],
                "loss_low": loss[1],
                "loss_high": loss[2],
                "metric_median": metric[0],
                "metric_low": metric[1],
                "metric_high": metric[2],
                "steps_to_target": [r["steps_to_target"] for r in kept],
                "seconds_to_target": [r["seconds_to_target"] for r in kept],
            }
        )
    return points


def best_points(points: list[dict], kind: str) -> dict:
    """Per (name, backend): its best learning rate's point, the best median metric among the
    learning rates where no seed blew up (if every one had a blow-up: among all with a median)."""
    _, _, higher = metric_of(kind)
    best: dict = {}
    for key in dict.fromkeys((p["name"], p["backend"]) for p in points):
        mine = [p for p in points if (p["name"], p["backend"]) == key and p["metric_median"] is not None]
        clean = [p for p in mine if p["blown_up"] == 0] or mine
        if clean:
            best[key] = (max if higher else min)(clean, key=lambda p: p["metric_median"])
    return best


AIMS = {"val_acc": "val acc ≥", "val_loss": "val loss ≤", "loss": "loss ≤"}  # target metric -> its words


def table_rows(points: list[dict], kind: str, target: float | None, target_metric: str) -> list[dict]:
    """The sweep's table: per optimizer, its best learning rate, the metric there (median and
    min-max over seeds), how many grid points trained without a blow-up, and steps and seconds
    to the target at the best learning rate (medians over the seeds that reached it; no such
    columns without a target)."""
    _, title, _ = metric_of(kind)
    aim = f"{AIMS[target_metric]} {target:g}" if target is not None else None
    rows = []
    for (name, backend), p in best_points(points, kind).items():
        mine = [q for q in points if (q["name"], q["backend"]) == (name, backend)]
        reached = [(s, t) for s, t in zip(p["steps_to_target"], p["seconds_to_target"]) if s is not None]
        seeds = p["runs"] - p["blown_up"]
        grid = [q["learning_rate"] for q in mine]
        edge = len(grid) > 1 and p["learning_rate"] in (min(grid), max(grid))
        row = {
            "optimizer": name,
            "backend": backend,
            "best learning rate": p["learning_rate"],
            "at the grid's edge": "yes: widen it" if edge else "no",
            f"{title} (median)": p["metric_median"],
            "spread (min–max)": f"{p['metric_low']:.4g}–{p['metric_high']:.4g}",
            "no blow-up at": f"{sum(q['blown_up'] == 0 for q in mine)}/{len(mine)} learning rates",
        }
        if aim is not None:
            row[f"steps to {aim}"] = float(np.median([s for s, _ in reached])) if reached else "not reached"
            row["seconds to target"] = float(np.median([t for _, t in reached])) if reached else "not reached"
            row["seeds reaching it"] = f"{len(reached)}/{seeds}"
        rows.append(row)
    return rows
