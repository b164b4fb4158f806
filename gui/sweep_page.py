"""The page's sweep panel: layout and wiring only (the engine is `sweep.Sweep`, the charts
`charts.sensitivity` and `charts.best_curves`).

A sweep takes the page's run settings and optimizers (the left column) and trains every
(optimizer, learning rate, seed) over warm persistent workers; while it runs, the panel
shows the sensitivity plot, the loss curves at each optimizer's best learning rate (median
over seeds and band) and the table. "Seeds only" runs each optimizer at its own learning
rate over k seeds: a plain comparison drawn as median curves with their band. A finished
(or stopped) sweep is kept in Earlier runs as one run bundle per seed.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from keras_adaptive_gui import charts, engine, history, hyperparams, sweep

MODES = [
    ("learning-rate sweep", "sweep"),
    ("seeds only: each optimizer at its learning rate (median curve and band)", "seeds"),
]
GRID_HELP = (
    "Empty: 7 learning rates over 2 decades either side of each optimizer's own (its box on the left); "
    "or for every optimizer a list (0.001, 0.01, 0.1) or low:high:n (1e-4:1e-1:7, log-spaced)."
)


@dataclass
class SweepPanel:
    mode: Any
    grid: Any
    seeds: Any
    target: Any
    start: Any
    stop: Any
    status: Any
    sensitivity: Any
    curves: Any
    table: Any
    csv: Any
    timer: Any


@dataclass
class SweepState:
    """A session's sweep: the one in progress or the last one, and the runs it started in all."""

    sweep: sweep.Sweep | None = None
    runs_started: int = 0
    saved: str | None = None  # once kept: the sweep.csv to download ("" once drawn)
    drawn_at: float = 0.0
    drawn_version: int = -1
    folder: str | None = None


def panel(limits: engine.Limits) -> SweepPanel:
    with gr.Accordion("Sweep: learning rates × seeds, a fair comparison", open=True):
        gr.Markdown(
            "Each optimizer of the left column at several learning rates and seeds, every one a complete run "
            "(same initial weights and batches per seed for every optimizer), on warm workers. "
            f"**Limits:** {limits.describe_sweeps()}.",
            elem_id="sweep-intro",
        )
        with gr.Row():
            mode = gr.Radio(MODES, value="sweep", label="Mode", elem_id="sweep-mode")
        with gr.Row():
            grid = gr.Textbox("", label="Learning rates", info=GRID_HELP, elem_id="sweep-grid", max_lines=1, scale=3)
            seeds = gr.Number(sweep.DEFAULT_SEEDS, label="Seeds", precision=0, elem_id="sweep-seeds", min_width=80)
            target = gr.Textbox(
                "",
                label="Target",
                info="accuracy (MNIST) or loss to reach; empty: the task's",
                elem_id="sweep-target",
                max_lines=1,
                min_width=200,
            )
        with gr.Row():
            start = gr.Button("Sweep", variant="primary", elem_id="sweep-start")
            stop = gr.Button("Stop sweep", variant="stop", elem_id="sweep-stop")
        status = gr.Markdown("Set the optimizers on the left, then press **Sweep**.", elem_id="sweep-status")
        timer = gr.Timer(0.25, active=False)
        sensitivity = gr.Plot(
            charts.plot_data(charts.empty("The sensitivity plot appears here while the sweep runs.")),
            elem_id="sensitivity",
            show_label=False,
            label="sensitivity",
        )
        curves = gr.Plot(
            charts.plot_data(charts.empty("The loss curves at each optimizer's best learning rate appear here.")),
            elem_id="best-curves",
            show_label=False,
            label="best learning-rate curves",
        )
        table = gr.Dataframe(  # headers until the first runs are in (then table_rows's own)
            headers=TABLE_HEADERS,
            value=[],
            label="Per optimizer",
            interactive=False,
            elem_id="sweep-table",
            wrap=True,
        )
        csv = gr.DownloadButton("Download sweep.csv", interactive=False, elem_id="sweep-csv")
    return SweepPanel(mode, grid, seeds, target, start, stop, status, sensitivity, curves, table, csv, timer)


def status_text(the_sweep: sweep.Sweep) -> str:
    total, done = len(the_sweep.runs), the_sweep.done()
    c = the_sweep.config
    elapsed = (the_sweep.finished_at or time.monotonic()) - (the_sweep.started_at or time.monotonic())
    blown = sum(r.status == "blown up" for r in the_sweep.runs)
    what = (
        f"{len(c.base.optimizers)} optimizers × {', '.join(str(len(g)) for g in c.grids)} learning rates × "
        f"{len(c.seeds)} seeds on {', '.join(c.base.backends)}"
    )
    aim = f"{'validation accuracy ≥' if c.target_metric == 'val_acc' else 'training loss ≤'} {c.target:g}"
    if the_sweep.running:
        starting = not any(r.status != "pending" for r in the_sweep.runs)
        lines = [
            ("Starting the workers (importing Keras takes 5-15 s)… " if starting else "")
            + f"**Sweeping**: {done} of {total} runs done ({what}), {elapsed:.0f} s."
        ]
    elif the_sweep.stopped:
        lines = [f"**Stopped**: {done} of {total} runs ended ({what}); the finished ones are kept."]
    else:
        lines = [f"**Finished**: {total} runs in {elapsed:.1f} s ({what})."]
    lines.append(f"{blown} runs blown up (✖ on the plot). Target: {aim}.")
    lines += [f"⚠ {m}" for m in the_sweep.messages[-5:]]
    return "\n\n".join(lines)


# The table's headers until the first runs are in (then sweep.table_rows's own, which name the metric)
TABLE_HEADERS = [
    "optimizer",
    "backend",
    "best learning rate",
    "metric (median)",
    "spread (min–max)",
    "no blow-up at",
    "steps to target",
    "seconds to target",
]


def _table(points: list, c: sweep.SweepConfig) -> Any:
    import pandas as pd

    rows = sweep.table_rows(points, c.task_facts.kind, c.target, c.target_metric)
    if not rows:
        return pd.DataFrame(columns=TABLE_HEADERS)
    return pd.DataFrame([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])


def frame(the_sweep: sweep.Sweep) -> tuple:
    """The sensitivity plot, the best-lr curves and the table of the sweep as it stands."""
    c = the_sweep.config
    kind = c.task_facts.kind
    rows = the_sweep.result_rows()
    points = sweep.sensitivity(rows, kind)
    title = f"{c.base.task} · sweep {the_sweep.sweep_id}"
    if not points:
        waiting = charts.empty("Waiting for the first runs to finish…")
        return charts.plot_data(waiting), charts.plot_data(waiting), _table([], c)
    best = sweep.best_points(points, kind)
    order = c.keys()
    sens = charts.sensitivity(points, kind, title=title, revision=the_sweep.sweep_id, order=order)
    heading = (
        "training loss of each optimizer at its learning rate: median over seeds, band min–max"
        if all(len(g) == 1 for g in c.grids)
        else "training loss at each optimizer's best learning rate: median over seeds, band min–max"
    )
    curves = charts.best_curves(
        the_sweep.curves(best), title=title, revision=the_sweep.sweep_id, order=order, heading=heading
    )
    return charts.plot_data(sens), charts.plot_data(curves), _table(points, c)


def wire(
    settings: Any,
    p: SweepPanel,
    history_runs: Any,
    visitor: Any,
    sessions: Any,
    store: history.Store,
    catalog: dict,
    chosen_optimizers: Any,
    runs_update: Any,
    mnist_path: str | None,
    limits: engine.Limits,
    main_stop: Any,
) -> None:
    s = settings
    inputs = [*s.inputs(), p.mode, p.grid, p.seeds, p.target, visitor, *s.slot_inputs()]
    outputs = [p.status, p.sensitivity, p.curves, p.table, p.csv, history_runs]

    def start(values: dict, request: gr.Request) -> tuple:
        (task, cell, seq, epochs, steps, batch, steps_2d, seed, backend, all_backends) = [values[c] for c in s.inputs()]
        mode, grid, seeds, target, visitor_id = (values[c] for c in (p.mode, p.grid, p.seeds, p.target, visitor))
        state = _state(sessions.get(request))
        chosen = chosen_optimizers([values[c] for c in s.slot_inputs()], catalog)
        backends = list(engine.BACKENDS) if all_backends else [backend]
        if mode == "seeds":  # each optimizer at its own learning rate: a one-point grid
            grid = [str(raw.get("learning_rate", "") or _default_lr(key)) for key, raw in chosen]
        skip = (gr.skip(),) * (len(outputs) - 1)
        try:
            config = sweep.check_sweep(
                task,
                chosen,
                backends,
                learning_rates=grid,
                seeds=seeds,
                target=target,
                limits=limits,
                first_seed=seed,
                epochs=epochs,
                steps_per_epoch=steps,
                batch_size=batch,
                steps_2d=steps_2d,
                cell=cell,
                seq_len=seq,
                mnist_path=mnist_path,
            )
            n = len(config.runs())
            if state.runs_started + n > limits.max_session_runs:
                raise ValueError(
                    f"This session has started {state.runs_started} sweep runs; {n} more would pass the limit of "
                    f"{limits.max_session_runs} per session."
                )
            if state.sweep is not None and state.sweep.running:
                state.sweep.stop()
            the_sweep = sweep.Sweep(config, limits).start()  # ValueError when the server is busy
        except ValueError as error:
            problems = "\n".join(f"- {line}" for line in str(error).splitlines())
            return (f"**Cannot start the sweep:**\n\n{problems}", *skip, gr.Timer(active=False))
        state.sweep, state.saved, state.drawn_at, state.drawn_version = the_sweep, None, 0.0, -1
        state.runs_started += n
        _drive(state, the_sweep, store, visitor_id)
        waiting = charts.plot_data(charts.empty("Waiting for the first runs to finish…"))
        return (
            status_text(the_sweep),
            waiting,
            waiting,
            [],
            gr.update(value=None, interactive=False),
            gr.skip(),
            gr.Timer(active=True),
        )

    p.start.click(start, set(inputs), [*outputs, p.timer], api_name="sweep", concurrency_limit=16)

    def refresh(visitor_id: str, request: gr.Request) -> tuple:
        state = _state(sessions.get(request))
        the_sweep = state.sweep
        skip = (gr.skip(),) * len(outputs)
        if the_sweep is None:
            return (*skip, gr.Timer(active=False))
        with the_sweep.lock:
            if state.saved is not None:
                csv_path, state.saved = state.saved, ""
                if not csv_path:
                    return (*skip, gr.Timer(active=False))
                sens, curves, table = frame(the_sweep)
                return (
                    status_text(the_sweep),
                    sens,
                    curves,
                    table,
                    gr.update(value=csv_path, interactive=True),
                    runs_update(store, visitor_id, sessions.get(request)),
                    gr.Timer(active=False),
                )
            due = time.monotonic() - state.drawn_at >= 1.0 and the_sweep.version != state.drawn_version
            if not due:
                return (status_text(the_sweep), *skip[1:], gr.skip())
            state.drawn_at, state.drawn_version = time.monotonic(), the_sweep.version
            sens, curves, table = frame(the_sweep)
            return (status_text(the_sweep), sens, curves, table, gr.skip(), gr.skip(), gr.skip())

    p.timer.tick(
        refresh,
        [visitor],
        [*outputs, p.timer],
        api_visibility="private",
        concurrency_limit=None,
        trigger_mode="once",
        show_progress="hidden",
    )

    def stop(request: gr.Request) -> Any:
        the_sweep = _state(sessions.get(request)).sweep
        if the_sweep is None or not the_sweep.running:
            return gr.skip()
        the_sweep.stop()
        return status_text(the_sweep)

    p.stop.click(stop, None, [p.status], api_name="stop_sweep", concurrency_limit=None)
    main_stop.click(stop, None, [p.status], api_visibility="private", concurrency_limit=None)


def _default_lr(key: str) -> str:
    return hyperparams.format_number(hyperparams.full_kwargs(key, {}).get("learning_rate", 0.001))


def _state(session: Any) -> SweepState:
    """The session's sweep state (kept on the page's Session)."""
    if session.sweep_state is None:
        session.sweep_state = SweepState()
    return session.sweep_state


def _drive(state: SweepState, the_sweep: sweep.Sweep, store: history.Store, visitor: str) -> None:
    """Drive the sweep to its end in a thread of its own; then keep it (a bundle per seed in the
    visitor's history, sweep.csv to download)."""

    def drive() -> None:
        for _ in the_sweep.run(0.1):
            pass
        if state.folder is None:
            state.folder = tempfile.mkdtemp(prefix="keras-adaptive-sweep-")
        path = os.path.join(state.folder, f"keras-adaptive-sweep-{the_sweep.config.base.task}-{the_sweep.sweep_id}.csv")
        the_sweep.write_csv(path)
        if history.is_visitor_id(visitor):
            for comparison in the_sweep.comparisons():
                store.save(visitor, comparison)
        with the_sweep.lock:
            if state.sweep is the_sweep:  # not replaced by a newer sweep meanwhile
                state.saved = path

    threading.Thread(target=drive, name=f"sweep-{the_sweep.sweep_id}", daemon=True).start()


def stop_session(session: Any) -> None:
    """The page was closed: end its sweep."""
    state = session.sweep_state
    if state is not None and state.sweep is not None and state.sweep.running:
        state.sweep.stop()
