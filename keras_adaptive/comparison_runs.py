"""compare's training loop: every optimizer of one seed on the current backend, interleaved
step by step with `train_on_batch` on the same batches, from the same weights; the same loop
in a worker process per backend (`run_worker`).

Each run's records are an `engine.Series` of the page (its blow-up rule included), imported
inside functions: the GUI package ships in the same distribution.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_adaptive import _compat, user_code
from keras_adaptive.batches import Batches
from keras_adaptive.comparison_inputs import Target, check_model, fresh_metric, rebuilt

STATS_POINTS = 100  # the optimizer statistics are recorded about this many times per run


def _accuracy_key(logs: dict) -> str | None:
    for key in logs:
        if key != "loss" and ("accuracy" in key or key == "acc" or key.endswith("_acc")):
            return key
    return None


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
    check_model(model, build_model)
    if len(model.weights) != len(weights):
        model(batches.epochs[0][0][0])  # built by its first call (no Input): make the weights to set
    model.set_weights(weights)
    optimizer = keras.optimizers.deserialize(choice.config)  # a fresh copy, on this backend
    model.compile(optimizer=optimizer, loss=loss, metrics=[fresh_metric(m) for m in metrics])
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


def train(
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
    loss, metrics = rebuilt(job["loss"]), [rebuilt(m) for m in job["metrics"]]
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
    logs = _compat.train_on_batch(run.model, x, y)
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

        import keras_adaptive.registry  # noqa: F401 (registers the optimizer classes, to deserialize them)

        if keras.backend.backend() != job["backend"]:
            raise RuntimeError(f"keras started on {keras.backend.backend()}, not {job['backend']}")
        build = user_code.load(job["model"], "build_model")

        def progress(done: int) -> None:
            if done % 10 == 0:
                queue.put({"type": "progress", "done": done})

        series = train(job, build, batches, validation, weights, progress=progress)
        queue.put({"type": "result", "series": series})
    except BaseException as error:  # told to the parent, which raises it there
        queue.put({"type": "error", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


def run_worker(
    backend: str, job: dict, batches: Batches, validation: Any, weights: list, progress: Callable | None
) -> list:
    """`train` in a worker process on `backend` (spawned with KERAS_BACKEND set before Keras
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
