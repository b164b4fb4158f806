"""The Gradio page: layout and wiring only. Widgets come from `hyperparams.catalog()`,
training from `engine.Comparison`, figures from `plots`.

Each browser session (Gradio's `session_hash`) has its own `Session`; a new run, Stop,
or closing the page ends that session's workers and no one else's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import gradio as gr

from keras_adaptive_gui import engine, hyperparams, plots, tasks

SLOTS = 6
NONE = "(none)"
FRAME_SECONDS = 0.5
SUMMARY_COLUMNS = ["optimizer", "backend", "status", "steps", "final loss", "best val acc", "final val loss",
                   "ms/step", "diverged at step"]

CSS = """
#plot svg { width: 100%; height: auto; display: block; }
#plot { min-height: 120px; }
#status { min-height: 2.5em; }
.slot-name input { font-weight: 600; }
"""

# Each preset: (title, task to switch to or None, [(optimizer, {hyperparameter: value})]).
PRESETS = [
    ("SGD vs Momentum vs RMSProp vs Adam", None, [
        ("sgd", {"learning_rate": "0.1"}),
        ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
        ("rmsprop", {"learning_rate": "0.001"}),
        ("adam", {"learning_rate": "0.001"}),
    ]),
    ("AdaGrad vs RMSProp vs AdaDelta", None, [
        ("adagrad", {"learning_rate": "0.01"}),
        ("rmsprop", {"learning_rate": "0.001"}),
        ("adadelta", {"learning_rate": "1.0"}),
    ]),
    ("Adam with and without bias correction", None, [
        ("adam", {"bias_correction": True}),
        ("adam", {"bias_correction": False}),
    ]),
    ("Epsilon inside vs outside the square root (RMSProp, eps=0.01)", None, [
        ("rmsprop", {"epsilon": "0.01", "epsilon_placement": "inside"}),
        ("rmsprop", {"epsilon": "0.01", "epsilon_placement": "outside"}),
    ]),
    ("keras_adaptive vs Keras built-ins (Adam, RMSProp)", None, [
        ("adam", {}), ("keras.Adam", {}), ("rmsprop", {}), ("keras.RMSprop", {}),
    ]),
    ("Rosenbrock: SGD, Momentum, RMSProp, Adam", "rosenbrock", [
        ("sgd", {"learning_rate": "0.001"}),
        ("sgd", {"learning_rate": "0.0005", "momentum": "0.9"}),
        ("rmsprop", {"learning_rate": "0.01"}),
        ("adam", {"learning_rate": "0.05"}),
    ]),
    ("Ill-conditioned quadratic: SGD, Momentum, AdaGrad, Adam", "quadratic", [
        ("sgd", {"learning_rate": "0.035"}),
        ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
        ("adagrad", {"learning_rate": "0.5"}),
        ("adam", {"learning_rate": "0.1"}),
    ]),
]


@dataclass
class Session:
    comparison: Optional[engine.Comparison] = None
    options: plots.DisplayOptions = field(default_factory=plots.DisplayOptions)
    run_dir: Optional[str] = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """Per-browser-session state, kept on the server, keyed by Gradio's session hash."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, request: Optional[gr.Request]) -> Session:
        key = getattr(request, "session_hash", None) or "no-session"
        with self._lock:
            return self._sessions.setdefault(key, Session())

    def close(self, request: Optional[gr.Request]) -> None:
        key = getattr(request, "session_hash", None) or "no-session"
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            if session.comparison is not None:
                session.comparison.stop()
            if session.run_dir:
                shutil.rmtree(session.run_dir, ignore_errors=True)


# --- what the page shows ---------------------------------------------------------------


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else value


def summary_rows(comparison: Optional[engine.Comparison]) -> list[list]:
    if comparison is None:
        return []
    return [[_fmt(row[c]) for c in SUMMARY_COLUMNS] for row in comparison.summary()]


def status_text(comparison: engine.Comparison) -> str:
    c = comparison.config
    backends = ", ".join(c.backends)
    total = comparison.total_steps()
    lines = []
    if comparison.running:
        waiting = [w.backend for w in comparison.workers if not w.ready and not w.done]
        if waiting:
            lines.append(f"Starting the worker process for {', '.join(waiting)} (importing Keras takes 5-15 s)…")
        done = int(round(comparison.progress() * total))
        lines.append(f"**Training** on {backends}: step {done} of {total}.")
    else:
        elapsed = (comparison.finished_at or time.monotonic()) - (comparison.started_at or time.monotonic())
        done = int(round(comparison.progress() * total))
        if comparison.stopped:
            lines.append(f"**Stopped** at step {done} of {total}; the curves so far are kept.")
        else:
            lines.append(f"**Finished** in {elapsed:.1f} s ({total} steps on {backends}).")
    lines += [f"⚠ {m}" for m in comparison.messages]
    return "\n\n".join(lines)


def error_text(error: Exception) -> str:
    problems = str(error).splitlines()
    return "**Cannot start the run:**\n\n" + "\n".join(f"- {p}" for p in problems)


def render(comparison: engine.Comparison, options: plots.DisplayOptions) -> str:
    if not any(s.steps for s in comparison.series):
        return plots.placeholder("Waiting for the first steps…")
    return plots.to_svg(plots.figure(comparison, options))


def write_downloads(session: Session) -> tuple[str, str]:
    """The run's own files, in its own directory: the CSV and the PNG of the figure."""
    comparison = session.comparison
    if session.run_dir is None:
        session.run_dir = tempfile.mkdtemp(prefix="keras-adaptive-run-")
    name = f"{comparison.config.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    csv_path = comparison.write_csv(os.path.join(session.run_dir, name + ".csv"))
    png_path = plots.save_png(plots.figure(comparison, session.options), os.path.join(session.run_dir, name + ".png"))
    return csv_path, png_path


# --- the page -----------------------------------------------------------------------


def build(mnist_path: Optional[str], data_source: str, default_backend: str = "tensorflow",
          limits: engine.Limits = engine.LIMITS) -> gr.Blocks:
    catalog = hyperparams.catalog()
    param_names = hyperparams.all_param_names()
    sessions = Sessions()
    if default_backend not in engine.BACKENDS:
        default_backend = "tensorflow"

    with gr.Blocks(title="keras-adaptive: compare optimizers") as demo:
        gr.Markdown(
            "# keras-adaptive — compare optimizers live\n"
            f"**Data:** {data_source}.  \n"
            f"**Limits:** {limits.describe()}."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=380):
                task = gr.Dropdown(
                    [(f"{t.name} — {t.description}", t.name) for t in tasks.TASKS.values()],
                    value="mnist-mlp", label="Task", elem_id="task",
                )
                with gr.Row():
                    cell = gr.Radio(list(tasks.CELLS), value="LSTM", label="Recurrent cell", visible=False, elem_id="cell")
                    seq_len = gr.Number(30, label="Sequence length", precision=0, visible=False, elem_id="seq-len")
                with gr.Row():
                    epochs = gr.Number(2, label="Epochs", elem_id="epochs", min_width=90)
                    steps_per_epoch = gr.Number(50, label="Steps per epoch", elem_id="steps-per-epoch", min_width=90)
                    batch_size = gr.Number(64, label="Batch size", elem_id="batch-size", min_width=90)
                    steps_2d = gr.Number(300, label="Steps", visible=False, elem_id="steps-2d", min_width=90)
                    seed = gr.Number(0, label="Seed", elem_id="seed", min_width=90)
                with gr.Row():
                    backend = gr.Radio(list(engine.BACKENDS), value=default_backend, label="Backend", elem_id="backend")
                    compare_backends = gr.Checkbox(
                        False, label="Compare backends (the first optimizer on all three)", elem_id="compare-backends"
                    )
                preset = gr.Dropdown(
                    [p[0] for p in PRESETS], value=None, label="Preset (sets the optimizers below)", elem_id="preset"
                )
                slots = []  # per slot: (name dropdown, {param: widget}, accordion)
                choices = [NONE] + list(catalog)
                defaults = ["adam", "rmsprop"] + [NONE] * (SLOTS - 2)
                for i in range(SLOTS):
                    entry = catalog.get(defaults[i])
                    with gr.Group():
                        with gr.Row():
                            name = gr.Dropdown(choices, value=defaults[i], label=f"Optimizer {i + 1}",
                                               elem_id=f"opt{i + 1}-name", elem_classes="slot-name", scale=3)
                            widgets = {"learning_rate": _widget("learning_rate", entry, i)}
                        with gr.Accordion("more hyperparameters", open=False, visible=entry is not None) as more:
                            for p in param_names:
                                if p != "learning_rate":
                                    widgets[p] = _widget(p, entry, i)
                    slots.append((name, widgets, more))
            with gr.Column(scale=7):
                with gr.Row():
                    train_button = gr.Button("Train", variant="primary", elem_id="train")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
                status = gr.Markdown("Choose optimizers and press **Train**.", elem_id="status")
                plot = gr.HTML(plots.placeholder("The curves appear here while training runs."), elem_id="plot")
                with gr.Row():
                    log_scale = gr.Checkbox(False, label="Log-scale loss", elem_id="log-scale")
                    smoothing = gr.Slider(0, 0.99, value=0, step=0.01, label="Smoothing (raw curve stays faint)",
                                          elem_id="smoothing")
                    x_axis = gr.Radio([("step", "step"), ("wall-clock time", "time")], value="step",
                                      label="x axis", elem_id="x-axis")
                summary = gr.Dataframe(headers=SUMMARY_COLUMNS, value=[], label="Summary", interactive=False,
                                       elem_id="summary", wrap=False)
                with gr.Row():
                    csv_button = gr.DownloadButton("Download CSV", interactive=False, elem_id="download-csv")
                    png_button = gr.DownloadButton("Download PNG", interactive=False, elem_id="download-png")

        # --- wiring: task and optimizer widgets -------------------------------------

        def on_task(name: str):
            kind = tasks.TASKS[name].kind if name in tasks.TASKS else "classify"
            recurrent = name in ("mnist-rnn", "adding")
            model = kind != "2d"
            return (gr.update(visible=recurrent), gr.update(visible=name == "adding"), gr.update(visible=model),
                    gr.update(visible=model), gr.update(visible=model), gr.update(visible=not model))

        task.change(on_task, task, [cell, seq_len, epochs, steps_per_epoch, batch_size, steps_2d],
                    api_visibility="private")

        for name, widgets, more in slots:
            def on_optimizer(key: str, widgets=widgets):
                return _slot_updates(key, widgets, {})

            name.input(on_optimizer, name, [*widgets.values(), more], api_visibility="private")

        slot_outputs = [c for name, widgets, more in slots for c in (name, *widgets.values(), more)]

        def on_preset(title: str):
            match = [p for p in PRESETS if p[0] == title]
            if not match:
                return [gr.skip()] * (len(slot_outputs) + 2)
            _, preset_task, chosen = match[0]
            updates = []
            for i, (name, widgets, more) in enumerate(slots):
                key, values = chosen[i] if i < len(chosen) else (NONE, {})
                updates.append(gr.update(value=key))
                updates += _slot_updates(key, widgets, values)
            task_update = gr.update(value=preset_task) if preset_task else gr.skip()
            steps_update = gr.update(value=500) if preset_task else gr.skip()
            return [*updates, task_update, steps_update]

        preset.input(on_preset, preset, [*slot_outputs, task, steps_2d], api_visibility="private")

        # --- wiring: training ------------------------------------------------------------

        slot_inputs = [c for name, widgets, _ in slots for c in (name, *widgets.values())]
        per_slot = 1 + len(param_names)

        run_inputs = [task, cell, seq_len, epochs, steps_per_epoch, batch_size, steps_2d, seed, backend,
                      compare_backends, log_scale, smoothing, x_axis, *slot_inputs]

        def train(values: dict, request: gr.Request) -> Iterator:
            (task_name, cell_name, seq, n_epochs, n_steps, n_batch, n_steps_2d, seed_value, backend_name,
             all_backends, log_value, smoothing_value, x_axis_value, *slot_values) = [values[c] for c in run_inputs]
            session = sessions.get(request)
            session.options = plots.DisplayOptions(bool(log_value), float(smoothing_value or 0), x_axis_value)
            chosen = []
            for i in range(SLOTS):
                values = slot_values[i * per_slot:(i + 1) * per_slot]
                key = values[0]
                if not key or key == NONE:
                    continue
                if key not in catalog:
                    chosen.append((str(key), {}))
                    continue
                raw = dict(zip(param_names, values[1:]))
                chosen.append((key, {p: raw[p] for p in catalog[key].param_names}))
            note = ""
            if all_backends:
                backends = list(engine.BACKENDS)
                if len(chosen) > 1:
                    note = f"Compare backends runs the first optimizer only ({chosen[0][0]})."
                    chosen = chosen[:1]
            else:
                backends = [backend_name]
            with session.lock:
                if session.comparison is not None and session.comparison.running:
                    session.comparison.stop()
                try:
                    config = engine.check_config(
                        task_name, chosen, backends, epochs=n_epochs, steps_per_epoch=n_steps,
                        batch_size=n_batch, steps_2d=n_steps_2d, seed=seed_value, cell=cell_name,
                        seq_len=seq, mnist_path=mnist_path, limits=limits,
                    )
                    comparison = engine.Comparison(config, limits).start()
                except ValueError as error:
                    yield gr.skip(), gr.skip(), error_text(error), gr.skip(), gr.skip()
                    return
                session.comparison = comparison
            if note:
                comparison.messages.append(note)
            # A fresh plot for the new run, downloads off until it has written its files.
            yield (plots.placeholder("Starting the worker processes…"), [], status_text(comparison),
                   gr.update(value=None, interactive=False), gr.update(value=None, interactive=False))
            # This generator is the only writer of the run's outputs, so its frames reach the page in
            # order: Stop only ends the workers, and the loop below draws the last frame (a frame
            # sent by another event could be overtaken by one of these already on its way).
            try:
                drawn, last = -1, 0.0
                while comparison.running:
                    comparison.poll()
                    count = sum(len(s.steps) + len(s.epochs) for s in comparison.series)
                    now = time.monotonic()
                    if count != drawn and now - last >= FRAME_SECONDS:
                        drawn, last = count, now
                        # Frames of a running comparison only (under its lock: never half of a Stop);
                        # the last frame, below, is the one that says how the run ended.
                        with comparison._lock:
                            if not comparison.running:
                                break
                            frame = (render(comparison, session.options), summary_rows(comparison),
                                     status_text(comparison), gr.skip(), gr.skip())
                        yield frame
                    else:
                        time.sleep(0.05)
                if session.comparison is not comparison:
                    return  # a newer run of this session owns the page now
                csv_path, png_path = write_downloads(session)
                yield (render(comparison, session.options), summary_rows(comparison), status_text(comparison),
                       gr.update(value=csv_path, interactive=True), gr.update(value=png_path, interactive=True))
            finally:
                if comparison.running:  # the page was closed
                    comparison.stop()

        train_button.click(
            train,
            set(run_inputs),
            [plot, summary, status, csv_button, png_button],
            api_name="train", concurrency_limit=16,
        )

        def stop(request: gr.Request) -> str:
            """Ends the session's run at once; the run's own event then draws its last frame."""
            comparison = sessions.get(request).comparison
            if comparison is None:
                return "Nothing is running."
            comparison.stop()
            return gr.skip()

        stop_button.click(stop, None, [status], api_name="stop", concurrency_limit=None)

        display_inputs = [log_scale, smoothing, x_axis]

        def redraw(log_value, smoothing_value, x_axis_value, request: gr.Request):
            session = sessions.get(request)
            session.options = plots.DisplayOptions(bool(log_value), float(smoothing_value or 0), x_axis_value)
            if session.comparison is None:
                return gr.skip()
            return render(session.comparison, session.options)

        for widget in display_inputs:
            widget.change(redraw, display_inputs, plot, api_visibility="private", concurrency_limit=None)

        # --- the API: one call with the command line's optimizer syntax -------------------

        def compare(task: str = "mnist-mlp", optimizers: str = "adam,rmsprop", backend: str = default_backend,
                    epochs: int = 1, steps_per_epoch: int = 20, batch_size: int = 64, steps_2d: int = 100,
                    seed: int = 0, request: gr.Request = None) -> Iterator[dict]:
            """Train `optimizers` (comma-separated, e.g. "adam,rmsprop:learning_rate=0.01:centered=true")
            on `task` with `backend` ("tensorflow", "jax", "torch" or "all"); yields progress dicts
            {"status", "running", "summary"} while training runs."""
            session = sessions.get(request)
            try:
                chosen = hyperparams.split_spec_list(optimizers)
                backends = list(engine.BACKENDS) if backend == "all" else [backend]
                config = engine.check_config(task, chosen, backends, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                             batch_size=batch_size, steps_2d=steps_2d, seed=seed,
                                             mnist_path=mnist_path, limits=limits)
                with session.lock:
                    if session.comparison is not None and session.comparison.running:
                        session.comparison.stop()
                    comparison = engine.Comparison(config, limits).start()
                    session.comparison = comparison
            except ValueError as error:
                yield {"status": error_text(error), "running": False, "error": str(error), "summary": []}
                return
            try:
                last = 0.0
                while comparison.running:
                    comparison.poll()
                    if time.monotonic() - last >= FRAME_SECONDS:
                        last = time.monotonic()
                        yield {"status": status_text(comparison), "running": comparison.running,
                               "summary": comparison.summary()}
                    time.sleep(0.05)
                yield {"status": status_text(comparison), "running": False, "summary": comparison.summary()}
            finally:
                if comparison.running:
                    comparison.stop()

        gr.api(compare, api_name="compare", concurrency_limit=16)
        demo.unload(sessions.close)
    return demo


def _widget(param: str, entry: Optional[hyperparams.OptimizerEntry], slot: int) -> Any:
    """One hyperparameter's widget for a slot; shown when the slot's optimizer has it."""
    spec = hyperparams.find_param(param)
    own = {p.name: p for p in entry.params} if entry else {}
    visible = param in own
    value = own[param].default_text() if visible else spec.default_text()
    elem_id = f"opt{slot + 1}-{param}"
    if spec.kind == "bool":
        return gr.Checkbox(value, label=param, visible=visible, elem_id=elem_id, min_width=120)
    if spec.kind == "choice":
        return gr.Radio(list(spec.choices), value=value, label=param, visible=visible, elem_id=elem_id, min_width=120)
    return gr.Textbox(value, label=param, visible=visible, elem_id=elem_id, min_width=100, max_lines=1,
                      scale=1 if param == "learning_rate" else None)


def _slot_updates(key: str, widgets: dict, values: dict) -> list:
    """Show the widgets of optimizer `key` with its defaults (or `values`); hide the rest."""
    entry = hyperparams.catalog().get(key)
    own = {p.name: p for p in entry.params} if entry else {}
    updates = []
    for param in widgets:
        if param in own:
            value = values.get(param, own[param].default_text())
            updates.append(gr.update(visible=True, value=value))
        else:
            updates.append(gr.update(visible=False))
    updates.append(gr.update(visible=entry is not None and len(own) > 1))
    return updates
