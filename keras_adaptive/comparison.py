"""`compare`: optimizers side by side on a person's own model and data.

    comparison = keras_adaptive.compare(build, (x, y), ["adam", ("rmsprop", {"learning_rate": 1e-2})],
                                        epochs=3, loss="mse", validation_data=(x_val, y_val))
    comparison.summary(); comparison.records; comparison.plot(); comparison.save_bundle("results")

Every run of a comparison starts from the same weights and trains on the same batches in the
same order: per seed, `build_model()` is called once (after `keras.utils.set_random_seed`) and
its weights are copied into a fresh model for every optimizer; the data is read once into NumPy
batches (`keras_adaptive.batches.Batches`). The runs are interleaved step by step, each with
`train_on_batch`, so that a change in the machine's load hits all of them alike; each run's time
is its own step time. With `backends=[...]` the same loop runs in one worker process per backend
(one after another, so they do not take each other's CPU), from the weights made here.

The records have the columns of the page's and the CLI's CSV (`keras_adaptive_gui.engine
.CSV_COLUMNS`) plus `seed`, and a run is marked blown up by the page's rule (`engine.Series`).
Both come from the GUI package, which ships in the same distribution and is imported only inside
functions here; pandas (`records`, `summary`) likewise.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_adaptive import user_code
from keras_adaptive.batches import Batches

OWN_TASK = "own model"  # the bundle's task: not one of the page's built-in tasks
STATS_POINTS = 100  # the optimizer statistics are recorded about this many times per run
TARGET_KEYS = ("loss", "val_loss", "val_acc")
_BACKENDS = ("tensorflow", "jax", "torch")


# --- arguments ------------------------------------------------------------------------


@dataclass
class Target:
    """When a run counts as having reached its target: the batch loss at or below `value`
    (`metric="loss"`), the validation loss at or below it, or the validation accuracy at or
    above it (checked at each epoch's end)."""

    metric: str
    value: float

    @classmethod
    def of(cls, target: Any) -> Target | None:
        if target is None:
            return None
        if isinstance(target, dict) and len(target) == 1:
            ((metric, value),) = target.items()
        elif isinstance(target, (int, float)) and not isinstance(target, bool):
            metric, value = "loss", target
        else:
            metric, value = None, None
        if (
            metric not in TARGET_KEYS
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"Argument `target` must be a training loss (a number) or one of {{'loss': v}}, {{'val_loss': v}}, "
                f"{{'val_acc': v}}, got {target!r}."
            )
        return cls(metric, float(value))

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= self.value if self.metric == "val_acc" else value <= self.value

    def describe(self) -> str:
        sign = "≥" if self.metric == "val_acc" else "≤"
        return f"{self.metric} {sign} {self.value:g}"


def _keras_builtin(name: str) -> Any:
    import keras

    candidate = getattr(keras.optimizers, name, None)
    if isinstance(candidate, type) and issubclass(candidate, keras.optimizers.Optimizer):
        return candidate
    lowered = {n.lower(): getattr(keras.optimizers, n) for n in dir(keras.optimizers)}
    candidate = lowered.get(name.lower())
    if isinstance(candidate, type) and issubclass(candidate, keras.optimizers.Optimizer):
        return candidate
    return None


def _optimizer_names() -> list[str]:
    import keras

    from keras_adaptive.registry import OPTIMIZERS

    builtins = [
        f"keras.{n}"
        for n in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, n), type)
        and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)
        and n not in ("Optimizer", "LossScaleOptimizer")
    ]
    return sorted(OPTIMIZERS) + sorted(builtins)


def _resolve_optimizer(spec: Any, n: int) -> tuple[str, Any]:
    """(key, optimizer instance) of one entry of `optimizers`: an instance, a registered name
    ("adam", "keras.Adam") or (name, kwargs). The key is the registry's name ("adam") or
    "keras.<Class>" for Keras' own, as the page names them."""
    import keras

    from keras_adaptive.registry import OPTIMIZERS

    where = f"Argument `optimizers` (entry {n + 1})"
    if isinstance(spec, keras.optimizers.Optimizer):
        cls = type(spec)
        key = next((k for k, c in OPTIMIZERS.items() if c is cls), None)
        if key is None:
            key = f"keras.{cls.__name__}" if cls.__module__.startswith("keras") else cls.__name__
        return key, spec
    kwargs: Any = {}
    name = spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, kwargs = spec
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise ValueError(f"{where} must be an optimizer instance, a registered name or (name, kwargs), got {spec!r}.")
    key = name.split(">", 1)[1] if name.startswith("keras_adaptive>") else name
    if key.lower() in OPTIMIZERS:
        cls, key = OPTIMIZERS[key.lower()], key.lower()
    elif key.startswith(("keras.", "keras>")) and _keras_builtin(key[6:]) is not None:
        cls = _keras_builtin(key[6:])
        key = f"keras.{cls.__name__}"
    else:
        raise ValueError(f"{where}: unknown optimizer {name!r}; the registered names are {_optimizer_names()}.")
    try:
        return key, cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}={spec!r}: {error}") from None


def _label(key: str, optimizer: Any, given: dict | None) -> str:
    """ "adam (learning_rate=0.001)": the key, its learning rate, and what was given besides."""
    values = {}
    rate = optimizer.get_config().get("learning_rate")
    if isinstance(rate, (int, float)):
        values["learning_rate"] = rate
    for name, value in (given or {}).items():
        if name != "learning_rate" and isinstance(value, (bool, int, float, str)):
            values[name] = value
    shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    return f"{key} ({shown})" if shown else key


@dataclass
class _Choice:
    """One optimizer of the comparison (what the page's charts read as `config.optimizers`)."""

    key: str
    label: str
    config: dict  # keras.optimizers.serialize of it: a fresh copy per run, on any backend
    given: dict


def _choices(optimizers: Any) -> list[_Choice]:
    import keras

    if isinstance(optimizers, dict):  # {label: optimizer}
        items = list(optimizers.items())
    elif isinstance(optimizers, (list, tuple)) and not (
        len(optimizers) == 2 and isinstance(optimizers[0], str) and isinstance(optimizers[1], dict)
    ):
        items = [(None, o) for o in optimizers]
    else:
        items = [(None, optimizers)]
    if not items:
        raise ValueError("Argument `optimizers` is empty: give at least one optimizer.")
    choices, seen = [], {}
    for n, (label, spec) in enumerate(items):
        key, optimizer = _resolve_optimizer(spec, n)
        given = spec[1] if isinstance(spec, (tuple, list)) else {}
        label = label or _label(key, optimizer, given)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # labels tell the runs apart (not "#": pandas reads it as a comment)
            label = f"{label} ({seen[label]})"
        choices.append(_Choice(key, label, keras.optimizers.serialize(optimizer), dict(given)))
    return choices


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return list(range(seeds))
    if (
        isinstance(seeds, (list, tuple))
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        return list(seeds)
    raise ValueError(
        f"Argument `seeds` must be a number of seeds (>= 1: seeds 0, 1, ...) or a list of distinct seeds >= 0, "
        f"got {seeds!r}."
    )


def _backends(backends: Any) -> list[str] | None:
    if backends is None:
        return None
    if isinstance(backends, str):
        backends = [b.strip() for b in backends.split(",") if b.strip()]
    if not backends or any(b not in _BACKENDS for b in backends) or len(set(backends)) != len(backends):
        raise ValueError(
            f"Argument `backends` must be a list of distinct names from {list(_BACKENDS)}, got {backends!r}."
        )
    return list(backends)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def split_loaded(loaded: Any) -> tuple[Any, Any]:
    """What a data loader returned, as (training data, validation data or None):
    `((x, y), (x_val, y_val))` is split, anything else is training data."""
    if _is_pair(loaded) and _is_pair(loaded[0]) and _is_pair(loaded[1]):
        return loaded[0], loaded[1]
    return loaded, None


def _portable(value: Any, argument: str) -> Any:
    """`loss` or a metric in a form a worker on another backend can rebuild: a string, Keras'
    serialized config, or a function's 'module:function' name."""
    import keras

    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "get_config"):
        return {"keras": keras.saving.serialize_keras_object(value)}
    return {"code": user_code.spec_of(value, argument)}


def _rebuilt(value: Any) -> Any:
    import keras

    if isinstance(value, dict) and "keras" in value:
        return keras.saving.deserialize_keras_object(value["keras"])
    if isinstance(value, dict) and "code" in value:
        return user_code.load(value["code"], "loss")
    return value


def _fresh_metric(metric: Any) -> Any:
    """A metric for one model: Metric objects hold state, so each model gets a copy."""
    import keras

    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric


def _from_template(template: Any) -> tuple[Any, list]:
    import keras

    if not isinstance(template, keras.Model) or not getattr(template, "compiled", False):
        raise ValueError(f"Argument `template` must be a compiled keras.Model, got {type(template).__name__}.")
    config = template.get_compile_config() or {}
    loss = config.get("loss", template.loss)
    if isinstance(loss, dict) and "class_name" in loss:
        loss = keras.saving.deserialize_keras_object(loss)
    metrics = [
        keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in config.get("metrics") or []
    ]
    return loss, metrics


# --- the training loop (the same in this process and in a worker) -----------------------


def _check_model(model: Any, build_model: Any) -> None:
    import keras

    name = getattr(build_model, "__qualname__", repr(build_model))
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Argument `build_model`: {name}() must return an uncompiled keras.Model, got {type(model).__name__}."
        )
    if getattr(model, "compiled", False):
        raise ValueError(
            f"Argument `build_model`: {name}() returned a compiled model (optimizer "
            f"{type(model.optimizer).__name__}); return it uncompiled: compare compiles each run with its own "
            "optimizer, and takes the loss and metrics from `loss=`, `metrics=` (or a compiled `template=`)."
        )


def _accuracy_key(logs: dict) -> str | None:
    for key in logs:
        if key != "loss" and ("accuracy" in key or key == "acc" or key.endswith("_acc")):
            return key
    return None


def _shapes(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {np.shape(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(np.shape(v)) for v in value) + "]"
    return str(np.shape(value))


@dataclass
class _Run:
    """One (seed, optimizer) run while it trains."""

    series: Any  # engine.Series: its records and the blow-up rule
    model: Any
    monitor: Any  # OptimizerMonitor, or None (Keras' own optimizers have no effective learning rate)
    hooks: Any  # keras.callbacks.CallbackList of the given callbacks, or None
    every: int = 1  # the monitor records the steps whose number is a multiple of this
    own_time: float = 0.0  # seconds of its own train_on_batch calls (see _step)
    last_plain: float = 0.0  # the duration of its last step the monitor did not record
    alive: bool = True
    diverged: bool = False


def _new_run(
    job: dict,
    choice: Any,
    index: int,
    seed: int,
    build_model: Callable,
    weights: list,
    batches: Batches,
    loss: Any,
    metrics: list,
    callbacks: Any,
    every: int,
) -> _Run:
    import keras

    from keras_adaptive_gui.engine import Series

    series = Series(choice.label, index, keras.backend.backend(), status="training")
    series.seed, series.target_step, series.target_s = seed, None, None
    keras.utils.set_random_seed(seed)  # the same dropout seeds in every run of this seed
    model = build_model()
    _check_model(model, build_model)
    if len(model.weights) != len(weights):
        model(batches.epochs[0][0][0])  # built by its first call (no Input): make the weights to set
    model.set_weights(weights)
    optimizer = keras.optimizers.deserialize(choice.config)  # a fresh copy, on this backend
    model.compile(optimizer=optimizer, loss=loss, metrics=[_fresh_metric(m) for m in metrics])
    monitor = hooks = None
    if hasattr(optimizer, "effective_learning_rate"):
        from keras_adaptive.callbacks import OptimizerMonitor

        monitor = OptimizerMonitor(every=every, log_to_history=False, summary=True)
        monitor.set_model(model)
        monitor.on_train_begin()
    if callbacks:
        hooks = keras.callbacks.CallbackList(
            list(callbacks), model=model, epochs=len(batches.epochs), steps=batches.steps_per_epoch
        )
        hooks.on_train_begin()
    return _Run(series, model, monitor, hooks, every)


def _train(
    job: dict,
    build_model: Callable[[], Any],
    batches: Batches,
    validation: Any,
    weights: list,
    callbacks: Sequence[Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list:
    """Every optimizer of `job` on one seed (`job["seed"]`) on the current backend, from
    `weights`, interleaved step by step: a list of `engine.Series`, in optimizer order."""
    loss, metrics = _rebuilt(job["loss"]), [_rebuilt(m) for m in job["metrics"]]
    target = Target.of(job["target"])
    every = max(1, batches.steps_per_epoch * len(batches.epochs) // STATS_POINTS)
    runs = [
        _new_run(job, choice, i, job["seed"], build_model, weights, batches, loss, metrics, callbacks, every)
        for i, choice in enumerate(job["choices"])
    ]
    step = 0
    for epoch, epoch_batches in enumerate(batches.epochs):
        active = [run for run in runs if run.alive]
        if not active:
            break
        losses: dict = {id(run): [] for run in active}
        for run in active:
            if run.monitor is not None:
                run.monitor.on_epoch_begin(epoch)
            if run.hooks is not None:
                run.hooks.on_epoch_begin(epoch)
        for b, (x, y) in enumerate(epoch_batches):
            step += 1
            for run in active:
                if run.alive:
                    _step(run, b, step, x, y, target, losses[id(run)])
            if progress is not None:
                progress(step)
            if not any(run.alive for run in active):
                break
        for run in active:
            if not run.diverged:  # a run a callback stopped in this epoch still ends it, as in fit
                _end_epoch(run, epoch, step, validation, target, losses[id(run)])
    for run in runs:
        if run.hooks is not None:
            run.hooks.on_train_end()
        if run.monitor is not None:
            _take_stats(run.series, run.monitor)
        if run.series.status == "training":
            run.series.status = "finished"
        if run.series.status == "finished":
            run.series.check_chance(job.get("chance"))
    return [run.series for run in runs]


def _step(run: _Run, batch: int, step: int, x: Any, y: Any, target: Target | None, losses: list) -> None:
    series = run.series
    if run.monitor is not None:
        run.monitor.on_train_batch_begin(batch)
    if run.hooks is not None:
        run.hooks.on_train_batch_begin(batch)
    t0 = time.perf_counter()
    logs = run.model.train_on_batch(x, y, return_dict=True)
    value = float(np.asarray(logs["loss"]).reshape(-1)[0])
    seconds = time.perf_counter() - t0
    # A step the monitor records runs its measured training function (compiled at its first
    # record), which Keras' own optimizers never run: it counts as long as the step before it,
    # so that the statistics do not make keras_adaptive's optimizers look slower.
    # (With every=1, in runs under 2 * STATS_POINTS steps, every step is recorded: real times.)
    recorded = run.monitor is not None and run.every > 1 and step % run.every == 0
    if not recorded:
        run.last_plain = seconds
    run.own_time += run.last_plain if recorded else seconds
    losses.append(value)
    series.add_step({"step": step, "time": run.own_time, "loss": value})
    if target is not None and target.metric == "loss" and series.target_step is None and target.reached(value):
        series.target_step, series.target_s = step, run.own_time
    if run.hooks is not None:
        run.hooks.on_train_batch_end(batch, {k: _scalar(v) for k, v in logs.items()})
    if not math.isfinite(value):  # add_step marked it blown up; nothing more to learn from it
        series.blown_up_reason += "; this optimizer was stopped there"
        run.alive, run.diverged = False, True
    elif run.model.stop_training:  # a callback (EarlyStopping, ...) asked
        series.status, run.alive = "stopped by a callback", False


def _scalar(value: Any) -> Any:
    array = np.asarray(value)
    return float(array) if array.size == 1 else array


def _end_epoch(run: _Run, epoch: int, step: int, validation: Any, target: Target | None, losses: list) -> None:
    series = run.series
    logs = {"loss": float(np.mean(losses))} if losses else {}
    if validation is not None:
        found = run.model.evaluate(*validation, batch_size=256, verbose=0, return_dict=True)
        accuracy = _accuracy_key(found)
        series.epochs.append(epoch + 1)
        series.epoch_steps.append(step)
        series.val_losses.append(float(found["loss"]))
        series.val_accs.append(float(found[accuracy]) if accuracy else math.nan)
        logs.update({f"val_{name}": _scalar(v) for name, v in found.items()})
        if target is not None and target.metric != "loss" and series.target_step is None:
            value = series.val_losses[-1] if target.metric == "val_loss" else series.val_accs[-1]
            if target.reached(value):
                series.target_step, series.target_s = step, run.own_time
    if run.monitor is not None:
        with np.errstate(invalid="ignore", divide="ignore"):  # a diverged run's ratios are NaN
            run.monitor.on_epoch_end(epoch)
    if run.hooks is not None:
        run.hooks.on_epoch_end(epoch, logs)
        if run.model.stop_training and run.alive:
            series.status, run.alive = "stopped by a callback", False


def _take_stats(series: Any, monitor: Any) -> None:
    from keras_adaptive.callbacks import MODEL  # the whole-model record (`summary=True`)

    with np.errstate(invalid="ignore", divide="ignore"):  # a diverged run's ratios are NaN
        monitor.on_train_end()  # records the last step if it was a recorded one
    for r in monitor.records:
        if r["variable"] == MODEL:
            values = {"effective_lr": r["elr_p50"], "update_ratio": r["update_ratio"], "grad_norm": r["grad_norm"]}
            series.add_stats(
                {"step": r["step"], **{k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}}
            )


def _worker(job: dict, batches: Batches, validation: Any, weights: list, queue: Any) -> None:
    """A worker process's target (spawned with KERAS_BACKEND set): the same loop, its series back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras

        import keras_adaptive  # noqa: F401 (registers the optimizers for deserialization)

        if keras.backend.backend() != job["backend"]:
            raise RuntimeError(f"keras started on {keras.backend.backend()}, not {job['backend']}")
        build = user_code.load(job["model"], "build_model")

        def progress(done: int) -> None:
            if done % 10 == 0:
                queue.put({"type": "progress", "done": done})

        series = _train(job, build, batches, validation, weights, progress=progress)
        queue.put({"type": "result", "series": series})
    except BaseException as error:  # told to the parent, which raises it there
        queue.put({"type": "error", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


def _run_worker(
    backend: str, job: dict, batches: Batches, validation: Any, weights: list, progress: Callable | None
) -> list:
    """`_train` in a worker process on `backend` (spawned with KERAS_BACKEND set before Keras
    is imported there); its series, or a RuntimeError with the worker's traceback."""
    import queue as queue_module

    from keras_adaptive_gui.engine import _start_with_backend

    context = multiprocessing.get_context("spawn")
    q = context.Queue()
    process = context.Process(
        target=_worker, args=({**job, "backend": backend}, batches, validation, weights, q), daemon=True
    )
    _start_with_backend(process, backend)
    try:
        while True:
            try:
                message = q.get(timeout=0.5)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"The {backend} worker process died (exit code {process.exitcode}) before it reported."
                    ) from None
                continue
            if message["type"] == "progress":
                if progress is not None:
                    progress(message["done"])
            elif message["type"] == "error":
                raise RuntimeError(f"The {backend} worker failed: {message['message']}\n{message['traceback']}")
            else:
                return message["series"]
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


# --- the comparison ---------------------------------------------------------------------

_TASKS_LOCK = threading.Lock()


class Comparison:
    """The outcome of `compare`: every run's records, a summary, the page's charts, a bundle.

    `series` holds one `keras_adaptive_gui.engine.Series` per (backend, seed, optimizer);
    `config` the full configuration (what the bundle's config.json carries under "config");
    `initial_weights[seed]` the weights every run of that seed started from; `messages` what
    happened (blow-ups).
    """

    def __init__(self, config: dict, series: list, initial_weights: dict, messages: list | None = None) -> None:
        from keras_adaptive_gui.engine import new_run_id

        self.config = config
        self.series = series
        self.initial_weights = initial_weights
        self.messages = list(messages or [])
        self.run_id = new_run_id()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S")
        self.target = Target.of(config.get("target"))

    # --- records ------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        from keras_adaptive_gui.engine import CSV_COLUMNS

        return [*CSV_COLUMNS, "seed"]  # seed: several seeds' runs in one table

    def rows(self) -> list[list]:
        """Every record as the CSV writes it: one row per (run, step) and per (run, epoch)."""
        from keras_adaptive_gui.engine import STATS

        out = []
        for s in self.series:
            stats = [dict(zip(*s.stats[name])) for name in STATS]
            name = self._optimizer_label(s)
            for step, seconds, value in zip(s.steps, s.times, s.losses):
                stat_values = [by_step.get(step, "") for by_step in stats]
                out.append(
                    [
                        name,
                        s.backend,
                        s.optimizer,
                        "step",
                        step,
                        "",
                        seconds,
                        value,
                        *stat_values,
                        "",
                        "",
                        "",
                        "",
                        s.seed,
                    ]
                )
            for epoch, step, val_loss, val_acc in zip(s.epochs, s.epoch_steps, s.val_losses, s.val_accs):
                blanks = [""] * len(STATS)
                out.append(
                    [
                        name,
                        s.backend,
                        s.optimizer,
                        "epoch",
                        step,
                        epoch,
                        "",
                        "",
                        *blanks,
                        "",
                        "",
                        val_loss,
                        val_acc,
                        s.seed,
                    ]
                )
        return out

    def _optimizer_label(self, s: Any) -> str:
        return self.config["optimizers"][s.optimizer % len(self.config["optimizers"])]["label"]

    @property
    def records(self) -> Any:
        """A pandas DataFrame with the CSV's columns (empty cells are NaN)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows(), columns=self.columns)
        for column in frame.columns:
            if column not in ("optimizer", "backend", "record"):
                frame[column] = pd.to_numeric(frame[column].replace("", np.nan))
        return frame

    def to_csv(self, path: str) -> str:
        """Write every record (after one `#` line carrying the configuration as JSON), as the
        page's and the CLI's CSV; read it back with `pandas.read_csv(path, comment="#")`."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", newline="") as f:
            f.write("# keras-adaptive run " + json.dumps(self.describe(), default=str) + "\n")
            writer = csv.writer(f)
            writer.writerow(self.columns)
            for row in self.rows():
                writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
        return path

    # --- summary ------------------------------------------------------------------------

    def summary_rows(self) -> list[dict]:
        """One dict per run (the CLI's table; `summary()` is the same as a DataFrame)."""
        several_seeds = len(self.config["seeds"]) > 1
        rows = []
        for s in self.series:
            finite = [v for v in s.losses if math.isfinite(v)]
            accs = [v for v in s.val_accs if math.isfinite(v)]
            row = {"optimizer": self._optimizer_label(s), "backend": s.backend}
            if several_seeds:
                row["seed"] = s.seed
            row.update({"status": s.status, "steps": s.steps[-1] if s.steps else 0})
            row["final loss"] = finite[-1] if finite else None
            if any(math.isfinite(v) for t in self.series for v in t.val_accs):  # an accuracy metric
                row["best val acc"] = max(accs) if accs else None
            row["final val loss"] = s.val_losses[-1] if s.val_losses else None
            row["ms/step"] = s.time_per_step_ms()
            row["blown up at step"] = s.blown_up_at
            if self.target is not None:
                row["target"] = self.target.describe()
                row["target step"] = s.target_step
                row["target s"] = s.target_s
            rows.append(row)
        return rows

    def summary(self) -> Any:
        """One row per run: status, final loss, best validation accuracy, final validation loss,
        ms per step, where it blew up, and with a `target` the first step and the seconds of
        its own training time at which it reached it (None: not reached)."""
        import pandas as pd

        return pd.DataFrame(self.summary_rows())

    def time_to_target(self) -> dict:
        """{series label: (step, seconds) or None} for the comparison's target."""
        if self.target is None:
            raise ValueError("This comparison has no `target`: give compare(..., target=...).")
        return {s.label: (s.target_step, s.target_s) if s.target_step is not None else None for s in self.series}

    # --- what the page draws and reads ----------------------------------------------------

    def describe(self) -> dict:
        """The bundle's config.json: the page's format, its task the "own model"."""
        from keras_adaptive_gui.engine import BLOWUP_RULE, BUNDLE_FORMAT, versions

        return {
            "format": BUNDLE_FORMAT,
            "run_id": self.run_id,
            "created": self.created,
            "config": self._page_config(),
            "versions": versions(),
            "blowup_rule": BLOWUP_RULE,
            "stopped": False,
            "messages": list(self.messages),
            "summary": self.summary_rows(),
        }

    def _page_config(self) -> dict:
        """The configuration, with `optimizers` listed as the page lists its series (one entry
        per seed and optimizer, in series order): what `engine.RunConfig.from_json` reads."""
        c = dict(self.config)
        seeds = c["seeds"]
        c["optimizers"] = [
            {**o, "label": o["label"] + (f" · seed {seed}" if len(seeds) > 1 else ""), "seed": seed}
            for seed in seeds
            for o in self.config["optimizers"]
        ]
        c["seed"] = seeds[0]
        return c

    def save_bundle(self, folder: str) -> str:
        """The run bundle the page's history opens: `<folder>/<run id>/config.json` and
        `records.csv`. Returns its directory."""
        from keras_adaptive_gui.engine import CONFIG_FILE, RECORDS_FILE

        path = os.path.join(folder, self.run_id)
        os.makedirs(path, exist_ok=True)
        self.to_csv(os.path.join(path, RECORDS_FILE))
        with open(os.path.join(path, CONFIG_FILE), "w") as f:
            json.dump(self.describe(), f, indent=1, default=str)
        return path

    @contextlib.contextmanager
    def _as_page_run(self):
        """This comparison as the page's drawing code reads a run (`config.task` a key of
        `tasks.TASKS`, `config.optimizers[i].key`, `series`, `run_id`): the own model is entered
        in `tasks.TASKS` only while it is drawn (the page's task list never shows it)."""
        from types import SimpleNamespace

        from keras_adaptive_gui import tasks

        c = self.config
        facts = tasks.Task(OWN_TASK, "classify", c["task_description"], classes=c.get("classes") or 0)
        optimizers = [SimpleNamespace(key=o["key"], label=o["label"]) for o in self._page_config()["optimizers"]]
        config = SimpleNamespace(
            task=OWN_TASK, backends=c["backends"], optimizers=optimizers, task_facts=facts, kind=facts.kind
        )
        # Colours follow the optimizer (the page's PNG colours by series index): a seed's runs
        # share their optimizer's colour. Copies, so the records keep their own index.
        series = [copy.copy(s) for s in self.series]
        for s in series:
            s.optimizer %= len(c["optimizers"])
        view = SimpleNamespace(config=config, series=series, run_id=self.run_id)
        with _TASKS_LOCK:
            previous = tasks.TASKS.get(OWN_TASK)
            tasks.TASKS[OWN_TASK] = facts
            try:
                yield view
            finally:
                if previous is None:
                    del tasks.TASKS[OWN_TASK]
                else:
                    tasks.TASKS[OWN_TASK] = previous

    def plot(self, log_scale: bool = False, smoothing: float = 0.0, x_axis: str = "step") -> Any:
        """The page's interactive chart (training loss per step, validation loss and accuracy
        per epoch, the optimizer statistics): a plotly Figure, or its dict without plotly."""
        from keras_adaptive_gui import charts

        with self._as_page_run() as view:
            fig = charts.figure([charts.Shown(view)], charts.DisplayOptions(log_scale, smoothing, x_axis))
        try:
            import plotly.graph_objects as go
        except ImportError:
            return fig
        return go.Figure(fig)

    def save_png(self, path: str, log_scale: bool = False, smoothing: float = 0.0, x_axis: str = "step") -> str:
        """The CLI's PNG of this comparison (the same panels), its configuration at its foot."""
        from keras_adaptive_gui import plots

        options = plots.DisplayOptions(log_scale, smoothing, x_axis)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with self._as_page_run() as view:
            fig = plots.figure(view, options)
        if not any(math.isfinite(v) for s in self.series for v in s.val_accs):
            _no_accuracy_panel(fig, self.config["metrics"])
        return plots.save_png(fig, path, footer=self.footer() + "\n" + options.describe())

    def footer(self) -> str:
        c = self.config
        run = [
            f"run {self.run_id} · {c['task_description']}",
            f"backends {', '.join(c['backends'])}",
            f"{c['epochs']} epochs × {c['steps_per_epoch']} steps"
            + (f", batch size {c['batch_size']}" if c.get("batch_size") else ""),
            f"seeds {', '.join(map(str, c['seeds']))}",
            f"loss {c['loss_name']}",
        ]
        lines = [" · ".join(run)]
        for o in c["optimizers"]:
            values = ", ".join(f"{k}={_short(v)}" for k, v in o["changed"].items())
            lines.append(f"{o['label']}: {o['key']}({values})")
        return "\n".join(lines)


def _no_accuracy_panel(fig: Any, metrics: list) -> None:
    """Say why the validation-accuracy panel is empty (no accuracy metric), instead of NaN axes."""
    for ax in fig.axes:
        if ax.get_title().startswith("validation accuracy"):
            title = ax.get_title()
            ax.cla()
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            text = "no accuracy metric" + (f"\n(metrics: {', '.join(map(str, metrics))})" if metrics else "")
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.5")


def _first_loss_check(template: Any, loss: Any, metrics: list, batches: Batches, validation: Any) -> None:
    """Compile the weights' model and test it on the first batch (and on a few validation
    samples), so that a wrong loss or data of the wrong shape is named before anything trains."""
    import keras

    try:
        template.compile(optimizer=keras.optimizers.SGD(), loss=loss, metrics=[_fresh_metric(m) for m in metrics])
    except Exception as error:
        raise ValueError(
            f"Argument `loss`={loss!r} or `metrics`={metrics!r}: Keras cannot compile with it: {error}"
        ) from error
    probes = [("data", batches.epochs[0][0])]
    if validation is not None:
        probes.append(("validation_data", (_head(validation[0], 8), validation[1][:8])))
    for argument, (x, y) in probes:
        try:
            template.test_on_batch(x, y)
        except Exception as error:
            inputs = [tuple(t.shape) for t in getattr(template, "inputs", None) or []]
            outputs = [tuple(t.shape) for t in getattr(template, "outputs", None) or []]
            raise ValueError(
                f"Argument `{argument}` does not fit the model: a batch of x {_shapes(x)} and y {_shapes(y)} "
                f"for a model with inputs {inputs or '?'} and outputs {outputs or '?'}: "
                f"{type(error).__name__}: {error}"
            ) from error


def _head(x: Any, n: int) -> Any:
    if isinstance(x, dict):
        return {k: v[:n] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:n] for v in x]
    return x[:n]


def _validation_arrays(validation_data: Any) -> Any:
    """(x_val, y_val) as NumPy arrays, or None: arrays stay in their order, other data is read once."""
    from keras_adaptive import batches as batches_module

    if validation_data is None:
        return None
    if batches_module.is_arrays(validation_data):
        return batches_module.as_arrays(validation_data, "validation_data")
    parts = Batches(validation_data, epochs=1, argument="validation_data").epochs[0]
    x0 = parts[0][0]
    if isinstance(x0, dict):
        x = {k: np.concatenate([p[0][k] for p in parts]) for k in x0}
    elif isinstance(x0, list):
        x = [np.concatenate([p[0][i] for p in parts]) for i in range(len(x0))]
    else:
        x = np.concatenate([p[0] for p in parts])
    return x, np.concatenate([p[1] for p in parts])


def _classes(template: Any) -> int:
    """The chance level's classes of a classifier: its output's last size (2 for one unit)."""
    outputs = getattr(template, "outputs", None) or []
    if len(outputs) != 1:
        return 0
    units = outputs[0].shape[-1]
    return 2 if units == 1 else int(units or 0)


def compare(
    build_model: Callable[[], Any] | str,
    data: Any,
    optimizers: Any,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    seeds: int | Sequence[int] = 1,
    backends: Sequence[str] | None = None,
    validation_data: Any = None,
    target: float | dict | None = None,
    callbacks: Sequence[Any] | None = None,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    template: Any = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Comparison:
    """Train every optimizer of `optimizers` on the model `build_model()` makes, from the same
    initial weights and on the same batches, and return the `Comparison`.

    Args:
        build_model: a function returning an uncompiled `keras.Model` (or its 'module:function'
            name). Per seed it is called once for the initial weights, which are then copied
            into a fresh model per optimizer: every optimizer starts from the same point.
        data: NumPy arrays `(x, y)` (shuffled each epoch from the seed, batches of
            `batch_size`, default 32), a `tf.data.Dataset`, a `keras.utils.PyDataset`, an
            iterable or generator of `(x, y)` batches, or a loader (a function or its
            'module:function' name) returning one of these or `((x, y), (x_val, y_val))`. Read
            once: every run trains on the same batches in the same order.
        optimizers: a list of optimizer instances (copied per run, never trained themselves),
            registered names ("adam", "keras.Adam" for Keras' own) or `(name, kwargs)`; or a
            dict {label: any of those}.
        epochs: passes over the data (of `steps_per_epoch` batches each, default: one pass).
        seeds: a number of seeds (0, 1, ...) or a list of them; each seed has its own
            initial weights and batch order, shared by every optimizer.
        backends: None (train here, on the current backend) or names of backends, each
            trained in a worker process of its own, one after another, from the weights made
            here. Workers need `build_model` importable ('module:function': defined at the top
            of a module, not in `__main__` or a notebook); the data is read here and sent.
        validation_data: evaluated at each epoch's end (`val_loss`, and `val_acc` when a
            metric is an accuracy).
        target: when a run counts as done, for the time to target: a number (a batch loss at or
            below it), `{"val_loss": v}` (at or below, at an epoch's end) or `{"val_acc": v}`
            (at or above). The summary gives per run the first step and the seconds of its own
            training time at which it was reached (None: not reached).
        callbacks: Keras callbacks, driven by hand around `train_on_batch` for every run (in
            this process only: not with `backends`). `model.stop_training` ends a run.
        loss, metrics: what each run is compiled with; or `template`, a compiled model whose
            loss and metrics are taken.
        batch_size: batch size for array data (default 32).
        progress: called with (fraction done, text) as the runs go.

    Raises:
        ValueError naming the argument and what is wrong: a `build_model` that returns a
        compiled model or no model, data that does not fit the model, an unknown optimizer,
        a name that cannot be imported.
    """
    import keras

    from keras_adaptive import batches as batches_module

    if isinstance(build_model, str):
        build_model = user_code.load(build_model, "build_model")
    if not callable(build_model) or isinstance(build_model, keras.Model):
        raise ValueError(
            f"Argument `build_model` must be a function returning an uncompiled keras.Model (or its "
            f"'module:function' name), got {build_model!r}."
        )
    data, validation_data, data_name = _read_loader(data, validation_data)
    backends = _backends(backends)
    seed_list = _seeds(seeds)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"Argument `epochs` must be a positive integer, got {epochs!r}.")
    if template is not None:
        if loss is not None or metrics is not None:
            raise ValueError("Give either `loss=`/`metrics=` or a compiled `template=`, not both.")
        loss, metrics = _from_template(template)
    if loss is None:
        raise ValueError("Argument `loss` is missing: give compare(..., loss=...) (or a compiled `template=`).")
    metrics = list(metrics or [])
    if callbacks and backends is not None:
        raise ValueError(
            "Argument `callbacks` works in this process only (callbacks cannot be sent to worker processes): "
            "leave out `backends`, or the callbacks."
        )
    choices = _choices(optimizers)
    target_spec = Target.of(target)
    model_spec = None
    if backends is not None:  # the clear error now, before anything trains
        model_spec = user_code.spec_of(build_model, "build_model")
        loss_job, metrics_job = _portable(loss, "loss"), [_portable(m, "metrics") for m in metrics]
    else:
        loss_job, metrics_job = loss, metrics
    validation = _validation_arrays(validation_data)
    # Array data is shuffled from each seed; other data is read once, in its own order, for every seed.
    arrays = batches_module.is_arrays(data)
    batches_of: dict = {}
    for seed in seed_list if arrays else seed_list[:1]:
        batches_of[seed] = Batches(
            data, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed
        )
    batches_for = lambda seed: batches_of.get(seed) or batches_of[seed_list[0]]  # noqa: E731
    initial, classes = {}, 0
    for n, seed in enumerate(seed_list):  # per seed, the weights every run of it starts from
        keras.utils.set_random_seed(seed)
        weights_model = build_model()
        _check_model(weights_model, build_model)
        if n == 0:
            _first_loss_check(weights_model, loss, metrics, batches_for(seed), validation)
            classes = _classes(weights_model) if any(_is_accuracy(m) for m in metrics) else 0
        elif not weights_model.weights:
            weights_model(batches_for(seed).epochs[0][0][0])
        initial[seed] = [np.array(w) for w in weights_model.get_weights()]
    steps = batches_for(seed_list[0]).steps_per_epoch
    config = {
        "task": OWN_TASK,
        "task_description": _describe_model(weights_model, model_spec or function_name(build_model)),
        "model": model_spec or function_name(build_model),
        "data": data_name,
        "loss_name": loss if isinstance(loss, str) else getattr(loss, "name", None) or function_name(loss),
        "metrics": [m if isinstance(m, str) else getattr(m, "name", None) or function_name(m) for m in metrics],
        "backends": backends or [keras.backend.backend()],
        "optimizers": [
            {
                "key": c.key,
                "label": c.label,
                "hyperparameters": c.config.get("config", {}),
                "changed": _changed(c.config),
                "given": c.given,
            }
            for c in choices
        ],
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": len(batches_for(seed_list[0]).epochs[0][0][1]),  # the first batch's, for other data
        "steps": epochs * steps,
        "seeds": seed_list,
        "classes": classes,
        "validation": validation is not None,
        "target": {target_spec.metric: target_spec.value} if target_spec else None,
    }
    job = {
        "choices": choices,
        "loss": loss_job,
        "metrics": metrics_job,
        "target": config["target"],
        "chance": 1.0 / classes if classes else None,
        "model": model_spec,
    }
    per_seed = epochs * steps
    whole = per_seed * len(seed_list) * len(config["backends"])
    series, done = [], 0
    for backend in config["backends"]:
        for n, seed in enumerate(seed_list):

            def report(step: int, done: int = done, backend: str = backend) -> None:
                if progress is not None:
                    progress((done + step) / whole, f"{backend}: step {done + step} of {whole}")

            seed_job = {**job, "seed": seed}
            if backends is None:
                found = _train(seed_job, build_model, batches_for(seed), validation, initial[seed], callbacks, report)
            else:
                found = _run_worker(backend, seed_job, batches_for(seed), validation, initial[seed], report)
            for s in found:  # the series index counts (seed, optimizer), as the bundle lists them
                s.optimizer += n * len(choices)
                if len(seed_list) > 1:
                    s.label = f"{s.label} · seed {seed}"
                if len(config["backends"]) > 1:
                    s.label = f"{s.label} · {s.backend}"
            series += found
            done += per_seed
    messages = [s.blow_up_message() for s in series if s.blown_up_at is not None]
    return Comparison(config, series, initial, messages)


def _is_loader(value: Any) -> bool:
    """A function to call for the data (not a dataset, generator or PyDataset, which are callable-free)."""
    return callable(value) and not any(
        hasattr(value, a) for a in ("__iter__", "__getitem__", "__next__", "as_numpy_iterator")
    )


def _call_loader(value: Any, argument: str) -> tuple[Any, str | None]:
    """What a loader ('module:function' or a function) returns, and its name; other values as they are."""
    name = value if isinstance(value, str) else None
    if isinstance(value, str):
        value = user_code.load(value, argument)
    if not _is_loader(value):
        return value, name
    name = name or function_name(value)
    try:
        return value(), name
    except Exception as error:
        raise ValueError(
            f"Argument `{argument}`: the loader {name!r} failed: {type(error).__name__}: {error}"
        ) from error


def _read_loader(data: Any, validation_data: Any) -> tuple[Any, Any, str]:
    """(training data, validation data, a name for the configuration) from `data` and
    `validation_data`: loaders are called, and `((x, y), (x_val, y_val))` is split."""
    called = _is_loader(data) or isinstance(data, str)
    data, name = _call_loader(data, "data")
    validation_data, _ = _call_loader(validation_data, "validation_data")
    if called:  # a loader's ((x, y), (x_val, y_val)); given directly, a pair of pairs is two batches
        data, found = split_loaded(data)
        validation_data = found if validation_data is None else validation_data
    return data, validation_data, name or type(data).__name__


def _describe_model(model: Any, name: str) -> str:
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return f"own model {model.name!r} ({count:,} weights) from {name.removeprefix('__main__:')}"


def _changed(serialized: dict) -> dict:
    """The hyperparameters of a serialized optimizer that differ from its class's defaults (and
    its learning rate always): what a label or a footer needs to tell runs apart."""
    import keras

    config = serialized.get("config", {})
    try:
        defaults = type(keras.optimizers.deserialize(serialized)).from_config({}).get_config()
    except Exception:  # a class that needs arguments: show everything
        defaults = {}
    return {
        k: v
        for k, v in config.items()
        if k != "name" and (k == "learning_rate" or k not in defaults or defaults[k] != v)
    }


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _is_accuracy(metric: Any) -> bool:
    name = metric if isinstance(metric, str) else getattr(metric, "name", "") or ""
    return "acc" in str(name).lower()


def function_name(function: Any) -> str:
    """'module:qualname' of a function, for the configuration (importable or not)."""
    return f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"
