"""The page's "Find learning rate" action: per optimizer slot, the learning-rate range test
(`keras_adaptive.lr_finder`, run by `lr_find_job.run`) on the page's task and settings, in a
warm persistent worker of `sweep.POOL`; the curve is drawn and the slot's learning rate is
set to the suggestion.

`RangeTest` drives one test from the server: it takes a worker slot (the server's limit
counts it like a run), gives the worker a call job, takes in its progress and its result,
notices a worker that died, and stops it when asked. The 2-D functions have no batches and
no model, so the test is offered on the model tasks only (the page says so).
"""

from __future__ import annotations

import queue as queue_module
import time
import uuid
from dataclasses import dataclass
from typing import Any

import gradio as gr

from keras_adaptive_gui import charts, engine, hyperparams, sweep, tasks

TARGET = "keras_adaptive_gui.lr_find_job:run"
STEPS = 100  # batches of the test (each at a larger learning rate)
MIN_LR, MAX_LR = 1e-7, 10.0
MAX_SECONDS = 300.0  # a test still running after this is stopped
STOP_GRACE = 2.0  # seconds a worker gets to answer Stop before it is ended
NOT_2D = (
    "The range test needs a model task (MNIST MLP/CNN/RNN, adding): it trains batches at a growing learning "
    "rate, and a 2-D function has no batches (its loss is the function itself, and its good learning rate is "
    "a property of its curvature). On the 2-D functions use the Sweep panel to compare learning rates."
)


class RangeTest:
    """One range test in a worker of `pool`: `start()`, then `poll()` until `running` is
    False; `stop()` from any thread. `progress` is the last progress message, `result` the
    `lr_find` message, `error` a sentence when it failed."""

    def __init__(self, kwargs: dict, backend: str, limits: engine.Limits, pool: sweep.Pool | None = None) -> None:
        self.kwargs = kwargs
        self.backend = backend
        self.limits = limits
        self.pool = pool if pool is not None else sweep.POOL
        self.job_id = f"lr-find-{uuid.uuid4().hex[:8]}"
        self.worker: sweep.PersistentWorker | None = None
        self.progress: dict | None = None
        self.result: dict | None = None
        self.error = ""
        self.ready = False  # the worker has sent something: Keras is imported
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._slot = False

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.finished_at is None

    def start(self) -> RangeTest:
        engine._acquire_slots(1, self.limits)  # ValueError when the server is busy
        self._slot = True
        self.started_at = time.monotonic()
        try:
            self.worker = self.pool.take(self.backend)
            self.worker.give({"job": "call", "id": self.job_id, "target": TARGET, "kwargs": self.kwargs})
        except BaseException:
            self._end(keep=False)
            raise
        return self

    def poll(self) -> None:
        w = self.worker
        if not self.running or w is None:
            return
        for _ in range(1000):
            try:
                message = w.outbox.get_nowait()
            except (queue_module.Empty, EOFError, OSError):
                break
            self._handle(message)
            if not self.running:
                return
        if not w.alive:
            self.error = f"The {self.backend} worker process died (exit code {w.process.exitcode})."
            self._end(keep=False)
        elif time.monotonic() - self.started_at > MAX_SECONDS:
            self.error = f"Time limit of {MAX_SECONDS:g} s reached: the range test was stopped."
            self._end(keep=False)

    def _handle(self, m: dict) -> None:
        if m.get("job") != self.job_id:  # another job's leftovers: not this test's
            return
        self.ready = True
        kind = m.get("type")
        if kind == "progress":
            self.progress = m
        elif kind == "lr_find":
            self.result = m
        elif kind == "result":
            self.result = self.result or m.get("value")
            self._end(keep=True)
        elif kind == "error":
            self.error = m.get("message", "the range test failed")
            self._end(keep=True)  # the worker lives on and takes the next job

    def stop(self) -> None:
        """Ask the worker to stop the test (it ends within a batch and sends what it has);
        a worker that does not answer within STOP_GRACE seconds is ended."""
        w = self.worker
        if not self.running or w is None:
            return
        w.stop.set()
        deadline = time.monotonic() + STOP_GRACE
        while self.running and time.monotonic() < deadline and w.alive:
            self.poll()
            time.sleep(0.02)
        if self.running:
            self.error = self.error or "Stopped."
            self._end(keep=False)

    def _end(self, keep: bool) -> None:
        self.finished_at = time.monotonic()
        w, self.worker = self.worker, None
        if w is not None:
            if self.job_id in w.jobs:
                w.jobs.remove(self.job_id)
            if keep and w.alive:
                self.pool.give_back(w)  # clears its stop flag; an extra idle worker is ended
            else:
                w.end()
        if self._slot:
            engine._release_slots(1)
            self._slot = False


def check(
    task: str,
    key: Any,
    raw: dict,
    backend: str,
    batch_size: Any,
    seed: Any,
    cell: str,
    seq_len: Any,
    mnist_path: str | None,
    limits: engine.Limits,
) -> dict:
    """The job's keyword arguments from the page's inputs; ValueError says what is wrong (the
    checks of a run's settings, the learning rate left out: it is what the test finds)."""
    facts = tasks.TASKS.get(task)
    if facts is not None and facts.is_2d:
        raise ValueError(NOT_2D)
    if not key or key == "(none)":
        raise ValueError("Choose an optimizer in this slot first.")
    others = {k: v for k, v in (raw or {}).items() if k != "learning_rate"}
    config = engine.check_config(
        task,
        [(key, others)],
        [backend],
        batch_size=batch_size,
        seed=seed,
        cell=cell,
        seq_len=seq_len,
        mnist_path=mnist_path,
        limits=limits,
    )
    choice = config.optimizers[0]
    return {
        "task": config.task,
        "optimizer": choice.key,
        "hyperparameters": choice.kwargs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "cell": config.cell,
        "seq_len": config.seq_len,
        "mnist_path": config.mnist_path,
        "steps": STEPS,
        "min_lr": MIN_LR,
        "max_lr": MAX_LR,
    }


def status_text(test: RangeTest, slot: int) -> str:
    k = test.kwargs
    what = f"optimizer {slot + 1} ({k['optimizer']}) on {k['task']}, {test.backend}, batch size {k['batch_size']}"
    if test.running:
        if not test.ready:
            return f"Starting the {test.backend} worker for the range test of {what} (importing Keras takes 5-15 s)…"
        p = test.progress
        where = f"batch {p['step']} of {p['steps']}, learning rate {p['learning_rate']:.3g}" if p else "building"
        return f"**Range test** of {what}: {where}…"
    if test.result is None:
        return f"**The range test of {what} failed:** {test.error}"
    r = test.result
    suggestion = r.get("suggestion")
    tested = f"{min(r['learning_rates']):.3g} to {max(r['learning_rates']):.3g}" if r["learning_rates"] else "none"
    others = ", ".join(
        f"{rule} {hyperparams.format_number(lr)}" for rule, lr in r["suggestions"].items() if rule != r["rule"] and lr
    )
    ended = f"; ended: {r['stop_reason']}" if r.get("stop_reason") else ""
    if suggestion is None:
        return (
            f"**Range test** of {what}: no suggestion from the {r['rule']} rule (the curve is too short: "
            f"{len(r['learning_rates'])} batches, learning rates {tested}{ended}). The learning rate was left as it was."
        )
    return (
        f"**Range test** of {what}: learning rate **{hyperparams.format_number(suggestion)}** filled in, from the "
        f"**{r['rule']}** rule (half way down the longest falling stretch of the smoothed loss). Tested "
        f"{len(r['learning_rates'])} batches, learning rates {tested}{ended}. Other rules: {others or 'none'}."
    )


def figure(test: RangeTest, slot: int) -> Any:
    k = test.kwargs
    title = f"range test · optimizer {slot + 1}: {k['optimizer']} · {k['task']} · {test.backend}"
    return charts.plot_data(charts.range_test(test.result, title=title, revision=test.job_id))


@dataclass
class RangeTestPanel:
    status: Any
    plot: Any


def panel() -> RangeTestPanel:
    with gr.Accordion("Learning-rate range test (the Find LR button of each optimizer)", open=True):
        status = gr.Markdown(
            "**Find LR** beside an optimizer's learning rate trains that optimizer for "
            f"{STEPS} batches at a learning rate growing from {MIN_LR:g} to {MAX_LR:g} on this task "
            "(its settings, batch size and seed), draws the loss against the learning rate and fills in the "
            "suggestion. Model tasks only.",
            elem_id="lr-find-status",
        )
        plot = gr.Plot(
            charts.plot_data(charts.empty("The range test's curve appears here.")),
            elem_id="lr-find-plot",
            show_label=False,
            label="range test",
        )
    return RangeTestPanel(status, plot)


def wire(
    settings: Any, p: RangeTestPanel, sessions: Any, catalog: dict, mnist_path: str | None, limits: engine.Limits
) -> list:
    """Each slot's Find LR button; returns their click events (the page marks its chart stale after)."""
    s = settings
    events = []
    for i, (name, widgets, _more) in enumerate(s.slots):
        inputs = [s.task, s.cell, s.seq_len, s.batch_size, s.seed, s.backend, name, *widgets.values()]
        event = s.find_lr[i].click(
            _finder(i, inputs, list(widgets), sessions, catalog, mnist_path, limits),
            set(inputs),
            [p.status, p.plot, widgets["learning_rate"]],
            api_name=f"find_lr_{i + 1}",
            concurrency_limit=16,
        )
        events.append(event)
    return events


def _finder(
    slot: int,
    inputs: list,
    names: list,
    sessions: Any,
    catalog: dict,
    mnist_path: str | None,
    limits: engine.Limits,
):
    """Slot `slot`'s button handler: yields (status, chart, learning rate) while the test runs."""

    def find(values: dict, request: gr.Request):
        task, cell, seq_len, batch_size, seed, backend, key, *params = [values[c] for c in inputs]
        raw = dict(zip(names, params))
        if key in catalog:
            raw = {n: raw[n] for n in catalog[key].param_names}
        session = sessions.get(request)
        if session.range_test is not None:
            session.range_test.stop()
        try:
            kwargs = check(task, key, raw, backend, batch_size, seed, cell, seq_len, mnist_path, limits)
            test = RangeTest(kwargs, backend, limits).start()
        except ValueError as error:
            lines = "\n".join(f"- {line}" for line in str(error).splitlines())
            yield f"**Cannot start the range test of optimizer {slot + 1}:**\n\n{lines}", gr.skip(), gr.skip()
            return
        session.range_test = test
        try:
            yield status_text(test, slot), gr.skip(), gr.skip()
            while test.running:
                time.sleep(0.25)
                test.poll()
                if test.running:
                    yield status_text(test, slot), gr.skip(), gr.skip()
            if test.result is None:
                yield status_text(test, slot), gr.skip(), gr.skip()
                return
            suggestion = test.result.get("suggestion")
            value = gr.update(value=hyperparams.format_number(suggestion)) if suggestion else gr.skip()
            yield status_text(test, slot), figure(test, slot), value
        finally:
            test.stop()  # a closed page or a newer test: the worker stops (nothing if it has ended)

    return find
