"""The Gradio page: layout and wiring only. Widgets come from `hyperparams.catalog()`,
training from `engine.Comparison.run` (the one loop the command line uses too), charts
from `charts`, run bundles from `history`.

Each browser session (Gradio's `session_hash`) has its own `Session`; a new run, Stop,
or closing the page ends that session's workers and no one else's. A visitor's runs are
kept on disk under an id stored in that browser (`gr.BrowserState`), so a reload, or a
restarted server, shows the same browser its own runs and nobody else's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from keras_adaptive_gui import charts, engine, history, hyperparams, live, lr_find_page, sweep_page, tasks

SLOTS = 6
NONE = "(none)"
TABLE_SECONDS = 1.0  # the summary table's refresh while a run trains (the status and chart: live.POLL_MS)
PNG_LINE_CHARS = 125  # the configuration above the PNG, wrapped to the chart's width
SUMMARY_COLUMNS = [
    "optimizer",
    "backend",
    "status",
    "steps",
    "final loss",
    "best val acc",
    "final val loss",
    "ms/step",
    "blown up at step",
]

CSS = """
#status { min-height: 2.5em; }
.slot-name input { font-weight: 600; }
/* Find LR: a small button beside the learning rate, on the slot's white (not a grey column). */
.slot-group, .slot-group > .styler, .slot-group .row { background: var(--block-background-fill) !important; }
.find-lr { align-self: flex-end !important; flex-grow: 0 !important; margin: 0 8px 10px 0 !important; }
/* Tables: words wrap whole (no "backen d"), numbers never, the optimizer's label anywhere; a
   table still too wide scrolls. */
#summary .table-wrap, #sweep-table .table-wrap { overflow-x: auto !important; }
#summary table, #sweep-table table { font-size: 13px; }
#summary th *, #sweep-table th * { word-break: normal !important; overflow-wrap: normal !important; }
#summary td *, #sweep-table td * { word-break: normal !important; overflow-wrap: normal !important; }
#summary td:first-child *, #sweep-table td:first-child * { overflow-wrap: anywhere !important; }
"""

INTRO = """Train several optimizers side by side (same initial weights, same batches, same order) and watch them
live. Hover a chart to read a value, drag to zoom (double-click to reset), click a legend entry to hide or show
that series in every panel. Each run is kept in **Earlier runs** below, for this browser only: tick one to lay
it over the current chart."""

PANEL_HELP = """- **Training loss per step**: the loss of each training batch before its update (not a running mean).
  Smoothing draws TensorBoard's debiased moving average over it, the raw curve faint.
- **Validation loss / accuracy**: on 1,000 held-out examples after each epoch.
- **Median effective learning rate**: the weighted median over the weights of the step size the optimizer
  applies to a unit gradient, alpha / denominator (for SGD just alpha). Keras' built-ins do not expose it.
- **Update / weight size** ‖Δw‖/‖w‖: how large each step is next to the weights (around 1e-3 is typical).
- **Gradient norm** ‖g‖: the norm of the gradient the step applied, over all weights.
- **Blown up**: {rule}; its curve is marked with ✖ and the loss axis keeps the other curves readable.
- **`epsilon_placement`**: whether epsilon goes inside the square root, 1/√(v + ε), or outside, 1/(√v + ε):
  with a large epsilon the two differ noticeably."""

# Each preset: (title, task to switch to or None, [(optimizer, {hyperparameter: value})]).
# The "Tuned" ones are for the Sweep panel: each optimizer at its default learning rate, the
# centre of its grid.
PRESETS = [
    (
        "Tuned: SGD, Momentum, RMSProp, Adam on the MNIST MLP (press Sweep)",
        "mnist-mlp",
        [
            ("sgd", {"learning_rate": "0.01"}),
            ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
            ("rmsprop", {"learning_rate": "0.001"}),
            ("adam", {"learning_rate": "0.001"}),
        ],
    ),
    (
        "Tuned: Adam, AdamW, Nadam, AMSGrad on the MNIST MLP (press Sweep)",
        "mnist-mlp",
        [
            ("adam", {"learning_rate": "0.001"}),
            ("adamw", {"learning_rate": "0.001"}),
            ("nadam", {"learning_rate": "0.001"}),
            ("adam", {"learning_rate": "0.001", "amsgrad": True}),
        ],
    ),
    (
        "Tuned: SGD, Momentum, AdaGrad, Adam on the ill-conditioned quadratic (press Sweep)",
        "quadratic",
        [
            ("sgd", {"learning_rate": "0.035"}),
            ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
            ("adagrad", {"learning_rate": "0.5"}),
            ("adam", {"learning_rate": "0.1"}),
        ],
    ),
    (
        "SGD vs Momentum vs RMSProp vs Adam",
        None,
        [
            ("sgd", {"learning_rate": "0.1"}),
            ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
            ("rmsprop", {"learning_rate": "0.001"}),
            ("adam", {"learning_rate": "0.001"}),
        ],
    ),
    (
        "AdaGrad vs RMSProp vs AdaDelta",
        None,
        [
            ("adagrad", {"learning_rate": "0.01"}),
            ("rmsprop", {"learning_rate": "0.001"}),
            ("adadelta", {"learning_rate": "1.0"}),
        ],
    ),
    (
        "Adam with and without bias correction",
        None,
        [
            ("adam", {"bias_correction": True}),
            ("adam", {"bias_correction": False}),
        ],
    ),
    (
        "Epsilon inside vs outside the square root (RMSProp, eps=0.01)",
        None,
        [
            ("rmsprop", {"epsilon": "0.01", "epsilon_placement": "inside"}),
            ("rmsprop", {"epsilon": "0.01", "epsilon_placement": "outside"}),
        ],
    ),
    (
        "keras_adaptive vs Keras built-ins (Adam, RMSProp)",
        None,
        [
            ("adam", {}),
            ("keras.Adam", {}),
            ("rmsprop", {}),
            ("keras.RMSprop", {}),
        ],
    ),
    (
        "Rosenbrock: SGD, Momentum, RMSProp, Adam",
        "rosenbrock",
        [
            ("sgd", {"learning_rate": "0.001"}),
            ("sgd", {"learning_rate": "0.0005", "momentum": "0.9"}),
            ("rmsprop", {"learning_rate": "0.01"}),
            ("adam", {"learning_rate": "0.05"}),
        ],
    ),
    (
        "Ill-conditioned quadratic: SGD, Momentum, AdaGrad, Adam",
        "quadratic",
        [
            ("sgd", {"learning_rate": "0.035"}),
            ("sgd", {"learning_rate": "0.01", "momentum": "0.9"}),
            ("adagrad", {"learning_rate": "0.5"}),
            ("adam", {"learning_rate": "0.1"}),
        ],
    ),
]

# Download PNG runs in the browser: plotly.js draws the chart as it is on the screen (scale,
# smoothing, x axis, zoom, series hidden from the legend) with the run's full configuration
# (the figure's layout.meta) written above it.
PNG_JS = """
() => {
  const gd = document.querySelector('#plot .js-plotly-plot');
  if (!gd || !window.Plotly || !gd.data || !gd.data.length) { return; }
  const meta = (gd.layout && gd.layout.meta) || {};
  const lines = String(meta.config || '').split('\\n');
  const extra = 15 * lines.length + 16;
  const layout = JSON.parse(JSON.stringify(gd.layout));
  const width = gd.offsetWidth, height = gd.offsetHeight + extra;
  layout.width = width; layout.height = height; layout.autosize = false;
  layout.margin = Object.assign({}, layout.margin);
  layout.margin.t = (layout.margin.t || 60) + extra;
  layout.title = Object.assign({}, layout.title, {y: 1 - 6 / height, yanchor: 'top', yref: 'container'});
  layout.annotations = (layout.annotations || []).concat([{
    text: lines.join('<br>'), xref: 'paper', yref: 'paper', x: 0, y: 1, xanchor: 'left', yanchor: 'bottom',
    yshift: 24, align: 'left', showarrow: false, font: {size: 10, color: '#333'}}]);
  window.Plotly.toImage({data: gd.data, layout: layout}, {format: 'png', width: width, height: height})
    .then(url => {
      const a = document.createElement('a');
      a.href = url; a.download = meta.filename || 'keras-adaptive.png';
      document.body.appendChild(a); a.click(); a.remove();
    });
}
"""

VISITOR_JS_NOTE = "runs are kept per browser"


@dataclass
class Session:
    comparison: engine.Comparison | None = None
    options: charts.DisplayOptions = field(default_factory=charts.DisplayOptions)
    run_dir: str | None = None
    overlays: list = field(default_factory=list)  # run ids ticked in Earlier runs
    saved: tuple | None = None  # (run id, CSV to download) once the run has ended and is kept
    feed: str | None = None  # the running run's secret `live` token
    visitor: str = ""  # whose earlier runs the chart may lay over the current one
    lock: threading.Lock = field(default_factory=threading.Lock)
    sweep_state: Any = None  # sweep_page.SweepState, once the session sweeps
    range_test: Any = None  # lr_find_page.RangeTest: the session's latest learning-rate range test


class Sessions:
    """Per-browser-session state, kept on the server, keyed by Gradio's session hash."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, request: gr.Request | None) -> Session:
        key = getattr(request, "session_hash", None) or "no-session"
        with self._lock:
            return self._sessions.setdefault(key, Session())

    def by_feed(self, feed: str) -> Session | None:
        """The session whose running run has the `live` token `feed` (None: no such run)."""
        with self._lock:
            return next((s for s in self._sessions.values() if s.feed is not None and s.feed == feed), None)

    def close(self, request: gr.Request | None) -> None:
        key = getattr(request, "session_hash", None) or "no-session"
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            sweep_page.stop_session(session)
            if session.range_test is not None:
                session.range_test.stop()
            if session.comparison is not None:
                session.comparison.stop()
            if session.run_dir:
                shutil.rmtree(session.run_dir, ignore_errors=True)


# --- what the page shows ---------------------------------------------------------------


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else value


def summary_rows(comparison: engine.Comparison | None) -> list[list]:
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
        lines.append(f"**Training** on {backends}: step {comparison.steps_done()} of {total}.")
    else:
        elapsed = (comparison.finished_at or time.monotonic()) - (comparison.started_at or time.monotonic())
        reached = max((s.steps[-1] if s.steps else 0) for s in comparison.series)
        if comparison.stopped and comparison.finished_before_stop():
            lines.append(f"**Finished before Stop**: all {total} steps were done ({elapsed:.1f} s on {backends}).")
        elif comparison.stopped:
            lines.append(
                f"**Stopped** at step {reached} of {total} (the step the workers had reached); "
                "the curves so far are kept."
            )
        else:
            lines.append(f"**Finished** in {elapsed:.1f} s ({total} steps on {backends}).")
    difference = comparison.backend_difference()
    if difference is not None:
        lines.append(
            f"Largest loss difference between the backends: **{difference[0]:.3g}** (at step {difference[1]})."
        )
    lines += [f"⚠ {m}" for m in comparison.messages]
    return "\n\n".join(lines)


def keeping_text(comparison: engine.Comparison) -> str:
    """The status between a run's end and its last frame (which says "Finished" or "Stopped"
    with the table and the downloads, once the run is kept)."""
    reached = max((s.steps[-1] if s.steps else 0) for s in comparison.series)
    how = "stopped" if comparison.stopped and not comparison.finished_before_stop() else "ended"
    return f"**Keeping the run**: it {how} at step {reached} of {comparison.total_steps()}; the table follows."


def error_text(error: Exception) -> str:
    problems = str(error).splitlines()
    return "**Cannot start the run:**\n\n" + "\n".join(f"- {p}" for p in problems)


def config_text(comparison: engine.Comparison, options: charts.DisplayOptions) -> str:
    """The run's full configuration in a few lines, and the display options (written above the PNG)."""
    return engine.config_text(comparison) + "\n" + options.describe()


# --- the page -----------------------------------------------------------------------


@dataclass
class RunSettings:
    task: Any
    cell: Any
    seq_len: Any
    epochs: Any
    steps_per_epoch: Any
    batch_size: Any
    steps_2d: Any
    seed: Any
    backend: Any
    compare_backends: Any
    preset: Any
    slots: list  # per slot: (name dropdown, {param: widget}, accordion)
    find_lr: list = field(default_factory=list)  # per slot: its Find LR button
    # Events that change the settings without a person typing in them (their .then marks the chart stale).
    changed_by_page: list = field(default_factory=list)

    def inputs(self) -> list:
        return [
            self.task,
            self.cell,
            self.seq_len,
            self.epochs,
            self.steps_per_epoch,
            self.batch_size,
            self.steps_2d,
            self.seed,
            self.backend,
            self.compare_backends,
        ]

    def slot_inputs(self) -> list:
        return [c for name, widgets, _ in self.slots for c in (name, *widgets.values())]


@dataclass
class ChartArea:
    train: Any
    stop: Any
    status: Any
    plot: Any
    log_scale: Any
    smoothing: Any
    x_axis: Any
    summary: Any
    csv: Any
    png: Any
    stale: Any  # says when the settings have changed since the run on the chart
    timer: Any  # while a run trains: the summary table (the status and the chart come by `live`)
    feed: Any  # hidden: the running run's `live` token; a new one starts live.FOLLOW_JS
    finish: Any  # hidden: FOLLOW_JS clicks it once the run is kept (its last frame follows)

    def display_inputs(self) -> list:
        return [self.log_scale, self.smoothing, self.x_axis]


@dataclass
class HistoryPanel:
    visitor: Any
    runs: Any
    delete: Any
    bundle: Any
    note: Any


def build(
    mnist_path: str | None,
    data_source: str,
    default_backend: str = "tensorflow",
    limits: engine.Limits = engine.LIMITS,
    results_dir: str = "results",
) -> gr.Blocks:
    catalog = hyperparams.catalog()
    sessions = Sessions()
    store = history.Store(results_dir)
    if default_backend not in engine.BACKENDS:
        default_backend = "tensorflow"
    with gr.Blocks(title="keras-adaptive: compare optimizers") as demo:
        _header(data_source, limits)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                settings = _run_settings(catalog, default_backend)
            with gr.Column(scale=8):
                area = _chart_area()
                range_tests = lr_find_page.panel()
                sweeps = sweep_page.panel(limits)
                panel = _history_panel(store)
        _wire_settings(settings, area, catalog, sessions)
        settings.changed_by_page += lr_find_page.wire(settings, range_tests, sessions, catalog, mnist_path, limits)
        _wire_training(demo, settings, area, panel, sessions, store, catalog, mnist_path, limits)
        _wire_history(demo, settings, area, panel, sessions, store, catalog, mnist_path, limits)
        sweep_page.wire(
            settings,
            sweeps,
            panel.runs,
            panel.visitor,
            sessions,
            store,
            catalog,
            _chosen_optimizers,
            _runs_update,
            mnist_path,
            limits,
            area.stop,
        )
        _api(sessions, mnist_path, limits, default_backend)
        demo.unload(sessions.close)
    demo.live_answer = lambda feed, have: live_answer(sessions, store, feed, have)  # served by `launch`
    return demo


def launch(demo: gr.Blocks, block: bool = True, **kwargs: Any) -> gr.Blocks:
    """Serve `demo` (from `build`) as `keras-adaptive-gui` does: Gradio's own launch (the page's
    CSS unless given), then the page's live route (`live.ROUTE`, answered by `live_answer`);
    `block`: wait here until the server is closed."""
    from fastapi.responses import JSONResponse

    kwargs.setdefault("css", CSS)
    demo.launch(prevent_thread_lock=True, **kwargs)

    def route(feed: str, have: str = "") -> JSONResponse:
        return JSONResponse(demo.live_answer(feed, have), headers={"Cache-Control": "no-store"})

    demo.server_app.add_api_route(live.ROUTE, route, methods=["GET"], include_in_schema=False)
    if block:
        demo.block_thread()
    return demo


def live_answer(sessions: Sessions, store: history.Store, feed: str, have: str) -> dict:
    """What the running run with the `live` token `feed` has that the browser, which holds
    `have`, lacks (see `live`): the status and the chart's frame; `done` once it is kept;
    `gone` for a token no session has (the run was replaced or the page closed)."""
    session = sessions.by_feed(feed)
    comparison = session.comparison if session is not None else None
    if comparison is None:
        return {"gone": True}
    with comparison.lock:  # never half of a Stop
        if session.saved is not None and session.saved[0] == comparison.run_id:
            return {"done": True}
        answer = {
            "status": live.status_html(status_text(comparison) if comparison.running else keeping_text(comparison))
        }
        if not live.wants_chart(have) or not any(series.steps for series in comparison.series):
            return answer  # (no steps yet: Train's own frame says it is starting)
        fig = _figure_dict(session, store, session.visitor)
    answer["frame"] = live.frame(fig, have)
    return answer


def _header(data_source: str, limits: engine.Limits) -> None:
    gr.Markdown(
        "# keras-adaptive — compare optimizers live\n"
        f"{INTRO}\n\n"
        f"**Data:** {data_source}.  \n"
        f"**Limits:** {limits.describe()}."
    )
    with gr.Accordion("What the panels and settings mean", open=False):
        gr.Markdown(PANEL_HELP.format(rule=engine.BLOWUP_RULE))


def _run_settings(catalog: dict, default_backend: str) -> RunSettings:
    task = gr.Dropdown(
        [(f"{t.name} — {t.description}", t.name) for t in tasks.TASKS.values()],
        value="mnist-mlp",
        label="Task",
        elem_id="task",
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
    slots, find_lr = _optimizer_slots(catalog)
    return RunSettings(
        task,
        cell,
        seq_len,
        epochs,
        steps_per_epoch,
        batch_size,
        steps_2d,
        seed,
        backend,
        compare_backends,
        preset,
        slots,
        find_lr,
    )


def _optimizer_slots(catalog: dict) -> tuple[list, list]:
    param_names = hyperparams.all_param_names()
    slots, buttons = [], []
    choices = [NONE] + list(catalog)
    defaults = ["adam", "rmsprop"] + [NONE] * (SLOTS - 2)
    for i in range(SLOTS):
        entry = catalog.get(defaults[i])
        with gr.Group(elem_classes="slot-group"):
            with gr.Row():
                name = gr.Dropdown(
                    choices,
                    value=defaults[i],
                    label=f"Optimizer {i + 1}",
                    info=hyperparams.summary_line(entry.key) if entry else None,
                    elem_id=f"opt{i + 1}-name",
                    elem_classes="slot-name",
                    scale=3,
                )
                widgets = {"learning_rate": _widget("learning_rate", entry, i)}
                buttons.append(
                    gr.Button(
                        "Find LR",
                        size="sm",
                        elem_id=f"opt{i + 1}-find-lr",
                        elem_classes="find-lr",
                        scale=0,
                        min_width=80,
                    )
                )
            with gr.Accordion("more hyperparameters", open=False, visible=entry is not None) as more:
                for p in param_names:
                    if p != "learning_rate":
                        widgets[p] = _widget(p, entry, i)
        slots.append((name, widgets, more))
    return slots, buttons


def _chart_area() -> ChartArea:
    with gr.Row():
        train = gr.Button("Train", variant="primary", elem_id="train")
        stop = gr.Button("Stop", variant="stop", elem_id="stop")
    status = gr.Markdown("Choose optimizers and press **Train**.", elem_id="status")
    stale = gr.Markdown("", elem_id="stale")
    timer = gr.Timer(TABLE_SECONDS, active=False)
    feed = gr.Textbox("", visible="hidden", elem_id="live-feed", label="live feed")
    finish = gr.Button("finish", visible="hidden", elem_id="live-finish")
    plot = gr.Plot(
        charts.plot_data(charts.empty("The curves appear here while training runs.")),
        elem_id="plot",
        show_label=False,
        label="chart",
    )
    with gr.Row():
        log_scale = gr.Checkbox(False, label="Log-scale loss", elem_id="log-scale")
        smoothing = gr.Slider(
            0, 0.99, value=0, step=0.01, label="Smoothing (raw curve stays faint)", elem_id="smoothing"
        )
        x_axis = gr.Radio(
            [("step", "step"), ("wall-clock time", "time")], value="step", label="x axis", elem_id="x-axis"
        )
    summary = gr.Dataframe(
        headers=SUMMARY_COLUMNS,
        value=[],
        label="Summary",
        interactive=False,
        elem_id="summary",
        wrap=True,
    )
    with gr.Row():
        csv = gr.DownloadButton("Download CSV", interactive=False, elem_id="download-csv")
        png = gr.Button("Download PNG (the chart as shown)", interactive=False, elem_id="download-png")
    return ChartArea(
        train, stop, status, plot, log_scale, smoothing, x_axis, summary, csv, png, stale, timer, feed, finish
    )


def _history_panel(store: history.Store) -> HistoryPanel:
    visitor = gr.BrowserState("", storage_key="keras-adaptive-visitor", secret=store.secret())
    with gr.Accordion("Earlier runs (this browser's)", open=True):
        runs = gr.CheckboxGroup([], value=[], label="Tick a run to lay it over the chart (same task)", elem_id="runs")
        with gr.Row():
            delete = gr.Button("Delete the ticked runs", elem_id="delete-runs", size="sm")
        bundle = gr.File(
            file_count="multiple",
            file_types=[".json", ".csv"],
            type="filepath",
            label="Open a run bundle (its config.json and records.csv, e.g. from keras-adaptive compare)",
            elem_id="open-bundle",
        )
        note = gr.Markdown("", elem_id="history-note")
    return HistoryPanel(visitor, runs, delete, bundle, note)


# --- wiring ---------------------------------------------------------------------------


def _wire_settings(settings: RunSettings, area: ChartArea, catalog: dict, sessions: Sessions) -> None:
    s = settings

    def on_task(name: str, request: gr.Request):
        session = sessions.get(request)
        if session.comparison is not None and not session.comparison.running:
            session.comparison = None  # the chart is cleared: no run is shown (a running one goes on drawing)
            session.overlays = []
        facts = tasks.TASKS.get(name, tasks.TASKS["mnist-mlp"])
        model = not facts.is_2d
        cleared = charts.plot_data(charts.empty(f"Task {name}: press Train to run it."))
        return (
            gr.update(visible=facts.uses_cell),
            gr.update(visible=facts.uses_seq_len),
            gr.update(visible=model),
            gr.update(visible=model),
            gr.update(visible=model),
            gr.update(visible=not model),
            cleared,
            [],
            gr.update(value=None, interactive=False),
            gr.update(interactive=False),
            "",
        )

    s.task.change(
        on_task,
        s.task,
        [
            s.cell,
            s.seq_len,
            s.epochs,
            s.steps_per_epoch,
            s.batch_size,
            s.steps_2d,
            area.plot,
            area.summary,
            area.csv,
            area.png,
            area.stale,
        ],
        api_visibility="private",
    )

    def on_task_chosen(name: str, *keys: str):
        """A person picked a task: each slot's learning rate moves to one that moves on this task."""
        facts = tasks.TASKS.get(name)
        updates = []
        for key in keys:
            entry = catalog.get(key)
            if facts is None or entry is None or "learning_rate" not in entry.param_names:
                updates.append(gr.skip())
                continue
            rate = facts.learning_rate_for(key)
            default = {p.name: p for p in entry.params}["learning_rate"].default_text()
            updates.append(gr.update(value=hyperparams.format_number(rate) if rate is not None else default))
        return updates

    names = [name for name, _, _ in s.slots]
    s.task.input(
        on_task_chosen,
        [s.task, *names],
        [widgets["learning_rate"] for _, widgets, _ in s.slots],
        api_visibility="private",
    )

    def on_compare_backends(on: bool):
        # Compare backends runs the first optimizer on all three: the backend and slots 2-6 do not count.
        updates = [gr.update(interactive=not on)]
        for _name, _widgets, _ in s.slots[1:]:
            updates += [gr.update(interactive=not on), gr.update(interactive=not on)]
        return updates

    compare_outputs = [s.backend] + [c for name, widgets, _ in s.slots[1:] for c in (name, widgets["learning_rate"])]
    s.compare_backends.change(on_compare_backends, s.compare_backends, compare_outputs, api_visibility="private")

    for name, widgets, more in s.slots:

        def on_optimizer(key: str, task_name: str, widgets=widgets):
            facts = tasks.TASKS.get(task_name)
            rate = facts.learning_rate_for(key) if facts is not None and key in catalog else None
            values = {"learning_rate": hyperparams.format_number(rate)} if rate is not None else {}
            return [
                gr.update(info=hyperparams.summary_line(key) if key in catalog else ""),
                *_slot_updates(key, widgets, values),
            ]

        name.input(on_optimizer, [name, s.task], [name, *widgets.values(), more], api_visibility="private")

    slot_outputs = [c for name, widgets, more in s.slots for c in (name, *widgets.values(), more)]

    def on_preset(title: str):
        match = [p for p in PRESETS if p[0] == title]
        if not match:
            return [gr.skip()] * (len(slot_outputs) + 2)
        _, preset_task, chosen = match[0]
        updates = []
        for i, (_name, widgets, _more) in enumerate(s.slots):
            key, values = chosen[i] if i < len(chosen) else (NONE, {})
            updates.append(gr.update(value=key, info=hyperparams.summary_line(key) if key in catalog else ""))
            updates += _slot_updates(key, widgets, values)
        task_update = gr.update(value=preset_task) if preset_task else gr.skip()
        steps_update = gr.update(value=500) if preset_task else gr.skip()
        return [*updates, task_update, steps_update]

    s.changed_by_page.append(
        s.preset.input(on_preset, s.preset, [*slot_outputs, s.task, s.steps_2d], api_visibility="private")
    )


def _chosen_optimizers(slot_values: list, catalog: dict) -> list:
    param_names = hyperparams.all_param_names()
    per_slot = 1 + len(param_names)
    chosen = []
    for i in range(SLOTS):
        values = slot_values[i * per_slot : (i + 1) * per_slot]
        key = values[0]
        if not key or key == NONE:
            continue
        if key not in catalog:
            chosen.append((str(key), {}))
            continue
        raw = dict(zip(param_names, values[1:]))
        chosen.append((key, {p: raw[p] for p in catalog[key].param_names}))
    return chosen


def _shown(session: Session, store: history.Store, visitor: str) -> tuple[list, str]:
    """The runs to draw: the session's current one, then the ticked earlier runs of the same task."""
    current = session.comparison
    runs = [charts.Shown(current)] if current is not None else []
    skipped = []
    for run_id in session.overlays:
        if current is not None and run_id == current.run_id:
            continue
        earlier = store.load(visitor, run_id)
        if earlier is None:
            continue
        if runs and earlier.config.task != runs[0].comparison.config.task:
            skipped.append(run_id)
            continue
        first = sum(len(r.comparison.series) for r in runs)
        runs.append(
            charts.Shown(
                earlier, prefix=f"[{earlier.created[11:19]}] ", dash="dot" if runs else None, first_index=first
            )
        )
    note = f"Not laid over (another task): {', '.join(skipped)}." if skipped else ""
    return runs, note


def _figure(session: Session, store: history.Store, visitor: str, note: str = "") -> Any:
    """The chart for `gr.Plot`."""
    return charts.plot_data(_figure_dict(session, store, visitor, note))


def _figure_dict(session: Session, store: history.Store, visitor: str, note: str = "") -> dict:
    runs, skipped = _shown(session, store, visitor)
    if not runs:
        return charts.empty(note or "Choose optimizers and press Train.")
    main = runs[0].comparison
    fig = charts.figure(runs, session.options, title=_title(main), note=note)
    lines = [
        part
        for line in config_text(main, session.options).splitlines()
        for part in textwrap.wrap(line, PNG_LINE_CHARS, subsequent_indent="    ", break_on_hyphens=False)
    ]
    fig["layout"]["meta"] = {
        "config": "\n".join(lines),
        "filename": f"keras-adaptive-{main.config.task}-{main.run_id}.png",
    }
    return fig


def left_config(values: dict, settings: RunSettings, catalog: dict, mnist_path: str | None, limits: engine.Limits):
    """The run the settings on the left would start (as Train makes it), or None if they are not valid."""
    s = settings
    task, cell, seq, epochs, steps, batch, steps_2d, seed, backend, all_backends = [values[c] for c in s.inputs()]
    chosen = _chosen_optimizers([values[c] for c in s.slot_inputs()], catalog)
    backends = list(engine.BACKENDS) if all_backends else [backend]
    if all_backends:
        chosen = chosen[:1]
    try:
        return engine.check_config(
            task,
            chosen,
            backends,
            epochs=epochs,
            steps_per_epoch=steps,
            batch_size=batch,
            steps_2d=steps_2d,
            seed=seed,
            cell=cell,
            seq_len=seq,
            mnist_path=mnist_path,
            limits=limits,
        )
    except ValueError:
        return None


SETTING_NAMES = {
    "task": "task",
    "backends": "backend",
    "epochs": "epochs",
    "steps_per_epoch": "steps per epoch",
    "batch_size": "batch size",
    "steps": "steps",
    "seed": "seed",
    "cell": "cell",
    "seq_len": "sequence length",
}


def differences(shown: engine.RunConfig, left: engine.RunConfig | None) -> list[str]:
    """What differs between the run on the chart and the one the settings on the left would start."""
    if left is None:
        return ["the settings on the left are not valid"]
    a, b = shown.to_json(), left.to_json()
    # A setting one of the two tasks does not have (epochs on a 2-D function) is not listed: "task" says it.
    found = [
        name
        for key, name in SETTING_NAMES.items()
        if a.get(key) != b.get(key) and (key == "task" or None not in (a.get(key), b.get(key)))
    ]
    if [(o["key"], o["hyperparameters"]) for o in a["optimizers"]] != [
        (o["key"], o["hyperparameters"]) for o in b["optimizers"]
    ]:
        found.append("optimizers")
    return found


def stale_text(comparison: engine.Comparison | None, left: engine.RunConfig | None) -> str:
    """The warning above the chart when the run it shows is not what the settings on the left say
    (changed since, a run opened from the history, a learning rate filled in): which run it is and
    what differs. Empty when they agree."""
    if comparison is None:
        return ""
    found = differences(comparison.config, left)
    if not found:
        return ""
    what = engine.config_text(comparison).splitlines()[0].split(" · ", 1)[-1]
    labels = ", ".join(o.label for o in comparison.config.optimizers)
    return (
        f"⚠ The chart shows run {comparison.run_id} ({what}; {labels}), made with other settings than those on "
        f"the left (not the same: {', '.join(found)}): press **Train** to run these."
    )


def _title(comparison: engine.Comparison) -> str:
    backends = comparison.config.backends
    styles = " (solid, dashed, dotted)" if len(backends) > 1 else ""
    return f"{comparison.config.task} on {', '.join(backends)}{styles} · run {comparison.run_id}"


def _wire_training(
    demo,
    settings: RunSettings,
    area: ChartArea,
    panel: HistoryPanel,
    sessions: Sessions,
    store: history.Store,
    catalog: dict,
    mnist_path: str | None,
    limits: engine.Limits,
) -> None:
    s = settings
    run_inputs = [*s.inputs(), *area.display_inputs(), panel.visitor, *s.slot_inputs()]
    outputs = [area.plot, area.summary, area.status, area.csv, area.png, panel.runs, area.stale]

    def train(values: dict, request: gr.Request) -> tuple:
        (
            task_name,
            cell_name,
            seq,
            n_epochs,
            n_steps,
            n_batch,
            n_steps_2d,
            seed_value,
            backend_name,
            all_backends,
            log_value,
            smoothing_value,
            x_axis_value,
            visitor,
            *slot_values,
        ) = [values[c] for c in run_inputs]
        session = sessions.get(request)
        session.options = charts.DisplayOptions(bool(log_value), float(smoothing_value or 0), x_axis_value)
        chosen = _chosen_optimizers(slot_values, catalog)
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
                    task_name,
                    chosen,
                    backends,
                    epochs=n_epochs,
                    steps_per_epoch=n_steps,
                    batch_size=n_batch,
                    steps_2d=n_steps_2d,
                    seed=seed_value,
                    cell=cell_name,
                    seq_len=seq,
                    mnist_path=mnist_path,
                    limits=limits,
                )
                comparison = engine.Comparison(config, limits)
                if note:
                    comparison.messages.append(note)
                session.saved, session.visitor = None, visitor
                _follow(session, comparison, store, visitor)  # starts it: ValueError if the server is busy
                session.comparison = comparison
            except ValueError as error:
                skip = [gr.skip()] * (len(outputs) + 2)
                skip[outputs.index(area.status)] = error_text(error)
                return tuple(skip)
            session.feed = secrets.token_urlsafe(16)
        return (
            _figure(session, store, visitor, "Starting the worker processes…"),
            [],
            live.status_block(status_text(comparison)),
            gr.update(value=None, interactive=False),
            gr.update(interactive=False),
            gr.skip(),
            "",
            gr.Timer(active=True),
            session.feed,
        )

    area.train.click(train, set(run_inputs), [*outputs, area.timer, area.feed], api_name="train", concurrency_limit=16)
    area.feed.change(None, area.feed, None, js=live.FOLLOW_JS, api_visibility="private")

    def finish(visitor: str, request: gr.Request) -> tuple:
        """The ended run's last frame through `gr.Plot`, its table, downloads and status, the
        run in Earlier runs; the table's timer stops."""
        session = sessions.get(request)
        comparison = session.comparison
        if comparison is None or session.saved is None or session.saved[0] != comparison.run_id:
            return (*(gr.skip(),) * len(outputs), gr.Timer(active=False))
        with comparison.lock:
            session.feed = None
            csv_path = session.saved[1]
            return (
                _figure(session, store, visitor),
                summary_rows(comparison),
                status_text(comparison),
                gr.update(value=csv_path, interactive=csv_path is not None),
                gr.update(interactive=True),
                _runs_update(store, visitor, session),
                gr.skip(),
                gr.Timer(active=False),
            )

    area.finish.click(finish, [panel.visitor], [*outputs, area.timer], api_visibility="private", concurrency_limit=None)

    def table(request: gr.Request) -> Any:
        comparison = sessions.get(request).comparison
        if comparison is None or not comparison.running:
            return gr.skip()
        with comparison.lock:
            return summary_rows(comparison)

    area.timer.tick(
        table,
        None,
        area.summary,
        api_visibility="private",
        concurrency_limit=None,
        trigger_mode="once",
        show_progress="hidden",
    )

    left_inputs = {*s.inputs(), *s.slot_inputs(), panel.visitor}

    def settings_changed(values: dict, request: gr.Request):
        session = sessions.get(request)
        runs, _ = _shown(session, store, values[panel.visitor])
        shown = runs[0].comparison if runs else None
        return stale_text(shown, left_config(values, s, catalog, mnist_path, limits))

    for widget in [*s.inputs(), *s.slot_inputs()]:
        if widget is not s.task:  # a new task clears the chart instead
            widget.input(settings_changed, left_inputs, area.stale, api_visibility="private", concurrency_limit=None)
    # Settings the page changed itself: a preset's optimizers, a learning rate Find LR filled in.
    for event in s.changed_by_page:
        event.then(settings_changed, left_inputs, area.stale, api_visibility="private", concurrency_limit=None)

    def stop(request: gr.Request) -> str:
        """Ends the session's run: the workers stop where they are; the page's next frame says
        where they had got to."""
        session = sessions.get(request)
        if session.range_test is not None:
            session.range_test.stop()  # its own status says so
        comparison = session.comparison
        if comparison is None:
            return "Nothing is running."
        if comparison.running:
            comparison.stop()
        return gr.skip()  # an ended run's status already says how it ended

    area.stop.click(stop, None, [area.status], api_name="stop", concurrency_limit=None)

    def redraw(log_value, smoothing_value, x_axis_value, visitor, request: gr.Request):
        session = sessions.get(request)
        session.options = charts.DisplayOptions(bool(log_value), float(smoothing_value or 0), x_axis_value)
        if session.comparison is None and not session.overlays:
            return gr.skip()
        if session.comparison is not None and session.comparison.running:
            return gr.skip()  # the next tick draws it (`live`: a new option sends a full frame)
        return _figure(session, store, visitor)

    for widget in area.display_inputs():
        widget.change(
            redraw, [*area.display_inputs(), panel.visitor], area.plot, api_visibility="private", concurrency_limit=None
        )
    area.png.click(None, None, None, js=PNG_JS)


def _follow(session: Session, comparison: engine.Comparison, store: history.Store, visitor: str) -> None:
    """Start `comparison` and drive it to its end with the engine's loop (`Comparison.run`, as the
    command line does) in a thread of its own, so what the workers report is taken in as it
    comes whatever the page does; then keep the run as a bundle for the page's last frame."""
    comparison.start()  # ValueError (server busy) goes to the caller

    def drive() -> None:
        for _ in comparison.run(0.1):
            pass
        path = _save(session, store, visitor, comparison)
        with comparison.lock:
            session.saved = (comparison.run_id, path)

    threading.Thread(target=drive, name=f"run-{comparison.run_id}", daemon=True).start()


def _save(session: Session, store: history.Store, visitor: str, comparison: engine.Comparison | None = None) -> str:
    """Keep the run as a bundle in the visitor's folder; the CSV to download, named for the run."""
    comparison = comparison or session.comparison
    bundle = store.save(visitor, comparison)
    if session.run_dir is None:
        session.run_dir = tempfile.mkdtemp(prefix="keras-adaptive-run-")
    csv_path = os.path.join(session.run_dir, f"keras-adaptive-{comparison.config.task}-{comparison.run_id}.csv")
    shutil.copyfile(os.path.join(bundle, engine.RECORDS_FILE), csv_path)
    return csv_path


def _runs_update(store: history.Store, visitor: str, session: Session) -> Any:
    choices = store.choices(visitor)
    ids = {value for _, value in choices}
    session.overlays = [r for r in session.overlays if r in ids]
    return gr.update(choices=choices, value=session.overlays)


def _wire_history(
    demo,
    settings: RunSettings,
    area: ChartArea,
    panel: HistoryPanel,
    sessions: Sessions,
    store: history.Store,
    catalog: dict,
    mnist_path: str | None,
    limits: engine.Limits,
) -> None:
    left_inputs = {*settings.inputs(), *settings.slot_inputs(), panel.visitor}

    def stale(session: Session, values: dict) -> str:
        runs, _ = _shown(session, store, values[panel.visitor])
        shown = runs[0].comparison if runs else None
        return stale_text(shown, left_config(values, settings, catalog, mnist_path, limits))

    def on_load(visitor: str, backend: str, request: gr.Request):
        engine.warm(backend)  # a worker with Keras imported, ready for the first Train
        visitor = visitor if history.is_visitor_id(visitor) else history.new_visitor_id()
        return visitor, _runs_update(store, visitor, sessions.get(request))

    demo.load(on_load, [panel.visitor, settings.backend], [panel.visitor, panel.runs], api_visibility="private")
    settings.backend.change(engine.warm, settings.backend, None, api_visibility="private")

    def on_overlay(values: dict, request: gr.Request):
        session = sessions.get(request)
        visitor = values[panel.visitor]
        session.overlays = [r for r in (values[panel.runs] or []) if engine.is_run_id(r)]
        figure = _figure(session, store, visitor)
        _, note = _shown(session, store, visitor)
        return figure, note, stale(session, values)

    panel.runs.input(
        on_overlay, {panel.runs, *left_inputs}, [area.plot, panel.note, area.stale], api_visibility="private"
    )

    def on_delete(ticked: list, visitor: str, request: gr.Request):
        session = sessions.get(request)
        removed = [r for r in (ticked or []) if store.delete(visitor, r)]
        session.overlays = []
        note = (
            f"Deleted {len(removed)} run{'s' if len(removed) != 1 else ''}." if removed else "Tick the runs to delete."
        )
        return _runs_update(store, visitor, session), _figure(session, store, visitor), note

    panel.delete.click(
        on_delete, [panel.runs, panel.visitor], [panel.runs, area.plot, panel.note], api_visibility="private"
    )

    def on_bundle(values: dict, request: gr.Request):
        session = sessions.get(request)
        paths, visitor = values[panel.bundle], values[panel.visitor]
        if not paths:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            run_id = store.open(visitor, paths)
        except ValueError as error:
            return gr.skip(), gr.skip(), f"⚠ {error}", gr.skip(), gr.skip(), gr.skip()
        session.overlays = [run_id] if session.comparison is None else session.overlays + [run_id]
        earlier = store.load(visitor, run_id)
        current = session.comparison
        if current is not None and not current.running and earlier.config.task != current.config.task:
            session.comparison = None  # show the opened run: it is of another task
        if session.comparison is None:
            session.comparison = earlier
        shown = session.comparison
        status = (
            f"Showing run **{shown.run_id}** ({shown.config.task}, {shown.created}) from the history."
            if shown is earlier
            else gr.skip()
        )
        return (
            _runs_update(store, visitor, session),
            _figure(session, store, visitor),
            f"Opened run {run_id} ({earlier.config.task}).",
            summary_rows(shown),
            status,
            stale(session, values),
        )

    panel.bundle.upload(
        on_bundle,
        {panel.bundle, *left_inputs},
        [panel.runs, area.plot, panel.note, area.summary, area.status, area.stale],
        api_visibility="private",
    )


def _api(sessions: Sessions, mnist_path: str | None, limits: engine.Limits, default_backend: str) -> None:
    """The API: one call with the command line's optimizer syntax."""

    def compare(
        task: str = "mnist-mlp",
        optimizers: str = "adam,rmsprop",
        backend: str = default_backend,
        epochs: int = 1,
        steps_per_epoch: int = 20,
        batch_size: int = 64,
        steps_2d: int = 100,
        seed: int = 0,
        request: gr.Request = None,
    ) -> Iterator[dict]:
        """Train `optimizers` (comma-separated, e.g. "adam,rmsprop:learning_rate=0.01:centered=true")
        on `task` with `backend` ("tensorflow", "jax", "torch" or "all"); yields progress dicts
        {"status", "running", "summary"} while training runs."""
        session = sessions.get(request)
        try:
            chosen = hyperparams.split_spec_list(optimizers)
            backends = list(engine.BACKENDS) if backend == "all" else [backend]
            config = engine.check_config(
                task,
                chosen,
                backends,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                batch_size=batch_size,
                steps_2d=steps_2d,
                seed=seed,
                mnist_path=mnist_path,
                limits=limits,
            )
            with session.lock:
                if session.comparison is not None and session.comparison.running:
                    session.comparison.stop()
                comparison = engine.Comparison(config, limits).start()
                session.comparison = comparison
        except ValueError as error:
            yield {"status": error_text(error), "running": False, "error": str(error), "summary": []}
            return
        frames = comparison.run(0.5)
        try:
            for c in frames:
                yield {"status": status_text(c), "running": c.running, "summary": c.summary()}
        finally:
            frames.close()

    gr.api(compare, api_name="compare", concurrency_limit=16)


def _widget(param: str, entry: hyperparams.OptimizerEntry | None, slot: int) -> Any:
    """One hyperparameter's widget for a slot; shown when the slot's optimizer has it."""
    spec = hyperparams.find_param(param)
    own = {p.name: p for p in entry.params} if entry else {}
    visible = param in own
    value = own[param].default_text() if visible else spec.default_text()
    elem_id = f"opt{slot + 1}-{param}"
    info = hyperparams.param_help(entry.key, param) if visible else None
    if spec.kind == "bool":
        return gr.Checkbox(value, label=param, info=info, visible=visible, elem_id=elem_id, min_width=120)
    if spec.kind == "choice":
        return gr.Radio(
            list(spec.choices), value=value, label=param, info=info, visible=visible, elem_id=elem_id, min_width=120
        )
    return gr.Textbox(
        value,
        label=param,
        visible=visible,
        elem_id=elem_id,
        min_width=100,
        max_lines=1,
        scale=1 if param == "learning_rate" else None,
        info=info if param != "learning_rate" else None,
    )


def _slot_updates(key: str, widgets: dict, values: dict) -> list:
    """Show the widgets of optimizer `key` with its defaults (or `values`); hide the rest."""
    entry = hyperparams.catalog().get(key)
    own = {p.name: p for p in entry.params} if entry else {}
    updates = []
    for param in widgets:
        if param in own:
            value = values.get(param, own[param].default_text())
            info = hyperparams.param_help(key, param) if param != "learning_rate" else None
            updates.append(gr.update(visible=True, value=value, info=info))
        else:
            updates.append(gr.update(visible=False))
    updates.append(gr.update(visible=entry is not None and len(own) > 1))
    return updates
