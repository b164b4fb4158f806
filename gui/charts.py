"""The page's interactive charts: Plotly figures, built as plain JSON-ready dicts and drawn by
the plotly.js that Gradio's `gr.Plot` carries (no network, nothing to install).

Hover shows the series, the step and the value; zoom, pan and a click on a legend entry
(which hides or shows that series in every panel: one legend group per series) are the
browser's. `layout.uirevision` is the run's id, so the zoom and the hidden series stay
while the run's frames replace each other. Each frame carries every series decimated to
at most `MAX_POINTS` points (the minimum and maximum of each bucket, so a spike stays
visible); the CSV carries every point.

Traces are named for what they show; each trace's `meta` is `"<panel>-<n>"` (n the series'
index over the shown runs; panels `loss`, `loss-raw`, `val-loss`, `val-acc`, `path`, `lr`,
`ratio`, `gnorm`), which the tests read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_adaptive_gui import tasks

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
BACKEND_DASHES = {"tensorflow": "solid", "jax": "dash", "torch": "dot"}
# A log axis labelled 0.001, 1e+06: few ticks, no minor digits crowding a short range.
LOG = {"type": "log", "nticks": 5, "tickformat": ".3~g"}
MAX_POINTS = 600  # per trace and frame
HEIGHT = 760
CONTOUR_POINTS = 70
STAT_PANELS = (  # (name in Series.stats, meta prefix, title on models, title on 2-D functions)
    ("effective_lr", "lr", "median effective learning rate", "effective learning rate"),
    ("update_ratio", "ratio", "update / weight size ‖Δw‖/‖w‖", "step / distance from 0 ‖Δp‖/‖p‖"),
    ("grad_norm", "gnorm", "gradient norm of the batch ‖g‖", "gradient norm of the step ‖∇f‖"),
)


@dataclass
class DisplayOptions:
    log_scale: bool = False
    smoothing: float = 0.0  # exponential smoothing of the training loss, in [0, 0.99]
    x_axis: str = "step"  # "step" or "time"

    def describe(self) -> str:
        return (
            f"display: {'log' if self.log_scale else 'linear'} loss axis, smoothing {self.smoothing:g}, "
            f"x axis {'wall-clock time' if self.x_axis == 'time' else 'step'}"
        )


@dataclass
class Shown:
    """One run on the chart: the current one (`prefix` empty) or one from the history."""

    comparison: Any
    prefix: str = ""
    dash: str | None = None  # overrides the backend's dash (runs from the history are dotted)
    first_index: int = 0  # its first series' index among all the shown series (colours)
    hidden: set = field(default_factory=set)


def smooth(values: Any, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing); NaN/inf pass through."""
    out = np.empty(len(values))
    average, count = 0.0, 0
    for i, v in enumerate(values):
        if not math.isfinite(v):
            out[i] = v
            continue
        average = weight * average + (1 - weight) * v
        count += 1
        out[i] = average / (1 - weight**count) if weight > 0 else v
    return out


def decimate(steps: Any, x: Any, y: Any, max_points: int = MAX_POINTS) -> tuple[list, list, int, int]:
    """At most about `max_points` of (x, y), in order; how many of them are final; the bucket size.

    The steps fall in buckets of a power-of-two number of steps, the smallest that makes at
    most max_points / 2 buckets of the steps so far; each bucket keeps the minimum and the
    maximum of its y, in order, so a spike stays visible; the first and the last point are
    always kept (the last is the curve's head). Until the steps double, the size stays and a
    bucket is complete once a later step has come, so every kept point before the last bucket
    is final: the first `stable` of them never change, which lets the page send the browser only
    what is new (`live`; a new size changes the trace's `bucket`, and the page sends it whole).
    Non-finite y count for neither minimum nor maximum; a bucket of only those keeps one (a gap)."""
    steps = np.asarray(steps, dtype=np.int64)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(steps)
    if n == 0:
        return [], [], 0, 1
    per_bucket = -(-int(steps[-1]) // (max_points // 2))
    size = 1 << max(0, (per_bucket - 1).bit_length())  # the power of two >= per_bucket
    bucket = steps // size
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    if len(starts) == n:
        index = np.arange(n)
    else:
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
        finite = np.isfinite(y)
        lowest = np.lexsort((np.where(finite, y, np.inf), group))[starts]
        highest = np.lexsort((-np.where(finite, y, -np.inf), group))[starts]
        index = np.unique(np.r_[0, n - 1, lowest, highest])
    stable = int(np.searchsorted(index, starts[-1]))  # the points before the last bucket
    return _clean(x[index]), _clean(y[index]), stable, size


def _clean(values: np.ndarray) -> list:
    """JSON-ready numbers: NaN and inf become None (a gap), values rounded to 6 significant digits."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values.tolist()]


def _x_of(series: Any, steps: list, by_time: bool) -> list:
    if not by_time:
        return list(steps)
    time_of = dict(zip(series.steps, series.times))
    return [time_of.get(k, math.nan) for k in steps]


def _axis(n: int, letter: str) -> str:
    return letter if n == 1 else f"{letter}{n}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def _style(shown: Shown, s: Any, index: int) -> dict:
    several = len(shown.comparison.config.backends) > 1
    dash = shown.dash or (BACKEND_DASHES.get(s.backend, "solid") if several else "solid")
    return {"color": COLORS[index % len(COLORS)], "dash": dash}


def _name(shown: Shown, s: Any) -> str:
    label = s.label if s.status in ("training", "finished", "starting") else f"{s.label} ({s.status})"
    return f"{shown.prefix}{label}"


def _line(
    x: list,
    y: list,
    name: str,
    group: str,
    meta: str,
    style: dict,
    axis: int,
    hover: str,
    *,
    legend: bool = False,
    width: float = 1.6,
    opacity: float = 1.0,
    markers: bool = False,
    visible: Any = True,
    decimated: tuple | None = None,
) -> dict:
    """One series' line; `decimated`: (how many of its first points are final, its bucket size),
    from `decimate` (by default all are final, one step per point)."""
    return {
        "type": "scatter",
        "mode": "lines+markers" if markers else "lines",
        "x": x,
        "y": y,
        "name": name,
        "legendgroup": group,
        "showlegend": legend,
        "meta": meta,
        "opacity": opacity,
        "visible": visible,
        "line": {"color": style["color"], "dash": style["dash"], "width": width},
        "marker": {"size": 6},
        "xaxis": _axis(axis, "x"),
        "yaxis": _axis(axis, "y"),
        "hovertemplate": f"<b>{name}</b><br>{hover}<extra></extra>",
        "stable": len(x) if decimated is None else decimated[0],
        "bucket": 1 if decimated is None else decimated[1],
    }


def figure(runs: list, options: DisplayOptions, title: str = "", note: str = "") -> dict:
    """The chart of `runs` (a list of `Shown`, the current run first) as a Plotly figure dict."""
    if not runs:
        return empty(note or "Choose optimizers and press Train.")
    if not any(s.steps for shown in runs for s in shown.comparison.series):
        return empty(note or "Waiting for the first steps…")  # no empty axes with made-up ticks
    config = runs[0].comparison.config
    facts = config.task_facts
    by_time = options.x_axis == "time"
    x_hover = "t %{x:.3g} s" if by_time else "step %{x}"
    data, annotations = [], []
    layout = _layout_2d(config.task) if facts.is_2d else _layout_model(facts)
    loss_axis = 2 if facts.is_2d else 1
    blown = []
    clip_values = []  # the values the loss axis must show: all but what blown-up series did after blowing up
    for shown in runs:
        for k, s in enumerate(shown.comparison.series):
            index = shown.first_index + k
            group, name, style = f"{shown.prefix}{k}", _name(shown, s), _style(shown, s, index)
            visible = "legendonly" if s.label in shown.hidden else True
            x_all = s.times if by_time else s.steps
            losses = np.asarray(s.losses, dtype=float)
            if s.blown_up_at is not None:
                blown.append((shown, s, name, style, x_all))
                before = [v for st, v in zip(s.steps, s.losses) if st < s.blown_up_at]
                clip_values += before
            else:
                clip_values += s.losses
            legend_done = False
            if facts.is_2d:
                px, py, *decimated = decimate(s.steps, s.xs, s.ys)
                data.append(
                    _line(
                        px,
                        py,
                        name,
                        group,
                        f"path-{index}",
                        style,
                        1,
                        "x %{x:.4g}, y %{y:.4g}",
                        legend=True,
                        width=2,
                        visible=visible,
                        decimated=decimated,
                    )
                )
                if s.xs:
                    data.append(
                        {
                            "type": "scatter",
                            "mode": "markers",
                            "x": [px[-1]],
                            "y": [py[-1]],
                            "legendgroup": group,
                            "showlegend": False,
                            "hoverinfo": "skip",
                            "meta": f"head-{index}",
                            "stable": 0,  # the path's head: it moves
                            "visible": visible,
                            "marker": {"color": style["color"], "size": 8},
                            "xaxis": "x",
                            "yaxis": "y",
                        }
                    )
                legend_done = True
            if options.smoothing > 0 and len(losses):
                rx, ry, *decimated = decimate(s.steps, x_all, losses)
                data.append(
                    _line(
                        rx,
                        ry,
                        name + " (raw)",
                        group,
                        f"loss-raw-{index}",
                        style,
                        loss_axis,
                        x_hover + "<br>loss %{y:.4g} (raw)",
                        width=1,
                        opacity=0.25,
                        visible=visible,
                        decimated=decimated,
                    )
                )
                losses = smooth(s.losses, options.smoothing)
            lx, ly, *decimated = decimate(s.steps, x_all, losses)
            data.append(
                _line(
                    lx,
                    ly,
                    name,
                    group,
                    f"loss-{index}",
                    style,
                    loss_axis,
                    x_hover + "<br>loss %{y:.4g}",
                    legend=not legend_done,
                    visible=visible,
                    decimated=decimated,
                )
            )
            if not facts.is_2d:
                vx = _x_of(s, s.epoch_steps, by_time)
                data.append(
                    _line(
                        _clean(np.asarray(vx, float)),
                        _clean(np.asarray(s.val_losses, float)),
                        name,
                        group,
                        f"val-loss-{index}",
                        style,
                        2,
                        x_hover + "<br>validation loss %{y:.4g}",
                        markers=True,
                        visible=visible,
                    )
                )
                data.append(
                    _line(
                        _clean(np.asarray(vx, float)),
                        _clean(np.asarray(s.val_accs, float)),
                        name,
                        group,
                        f"val-acc-{index}",
                        style,
                        3,
                        x_hover + "<br>validation accuracy %{y:.4f}",
                        markers=True,
                        visible=visible,
                    )
                )
            first_stat = loss_axis + 1 if facts.is_2d else 4  # the statistics' panels come after the loss panels
            for j, (stat, meta, _, _) in enumerate(STAT_PANELS):
                steps, values = s.stats[stat]
                keep = [i for i, v in enumerate(values) if v is not None and v > 0]  # a log axis
                kept = [steps[i] for i in keep]
                sx, sy, *decimated = decimate(kept, _x_of(s, kept, by_time), [values[i] for i in keep])
                data.append(
                    _line(
                        sx,
                        sy,
                        name,
                        group,
                        f"{meta}-{index}",
                        style,
                        first_stat + j,
                        x_hover + f"<br>{stat.replace('_', ' ')} %{{y:.4g}}",
                        width=1.3,
                        visible=visible,
                        decimated=decimated,
                    )
                )
    loss_yaxis = layout[f"yaxis{loss_axis if loss_axis > 1 else ''}"]
    if options.log_scale or (facts.is_2d and config.task != "beale"):
        loss_yaxis.update(LOG)
        if not facts.is_2d:
            layout["yaxis2"].update(LOG)
    if blown:
        finite = [v for v in clip_values if math.isfinite(v)] or [1.0]
        low, high = min(finite), max(finite)
        if loss_yaxis.get("type") == "log":
            low = min(v for v in finite if v > 0) if any(v > 0 for v in finite) else 1e-3
            high = max(high, low * 10)
            loss_yaxis["range"] = [math.log10(low) - 0.1, math.log10(high) + 0.3]
            top = high * 1.6
        else:
            pad = 0.05 * (high - low or abs(high) or 1.0)
            loss_yaxis["range"] = [low - pad, high + 4 * pad]
            top = high + 2 * pad
        loss_yaxis["autorange"] = False
        for n, (shown, s, _unused_name, style, _unused_x) in enumerate(blown):
            step = s.blown_up_at
            x_at = _x_of(s, [step], by_time)[0]
            text = f"✖ {shown.prefix}{s.label} blew up at step {step}: loss {_fmt(s.blown_up_value)}"
            annotations.append(
                {
                    "text": text,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.01,
                    "y": (0.97 if facts.is_2d else 0.985) - 0.035 * n,
                    "xanchor": "left",
                    "yanchor": "top",
                    "showarrow": False,
                    "font": {"color": style["color"], "size": 12},
                    "bgcolor": "rgba(255,255,255,0.8)",
                }
            )
            if x_at is not None and math.isfinite(x_at):
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "x": [x_at],
                        "y": [top],
                        "name": text,
                        "legendgroup": f"{shown.prefix}{shown.comparison.series.index(s)}",
                        "showlegend": False,
                        "meta": f"blown-{shown.first_index + shown.comparison.series.index(s)}",
                        "stable": 0,
                        "marker": {
                            "symbol": "x",
                            "size": 12,
                            "color": style["color"],
                            "line": {"color": "black", "width": 1},
                        },
                        "xaxis": _axis(loss_axis, "x"),
                        "yaxis": _axis(loss_axis, "y"),
                        "hovertemplate": f"{text}<extra></extra>",
                    }
                )
    if facts.is_2d:
        data = _contours(config.task) + data
    if any(o.key.startswith("keras.") for o in config.optimizers):  # say why their line is missing
        for note_ in layout["annotations"]:
            if STAT_PANELS[0][3 if facts.is_2d else 2] in note_["text"] or (
                not facts.is_2d and any(p[2] in note_["text"] for p in STAT_PANELS)
            ):
                note_["text"] = note_["text"].replace("</b>", "</b> <i>(none for keras.*)</i>")
    _log_ticks(data, layout)
    layout["annotations"] = layout.get("annotations", []) + annotations
    layout["title"] = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}}
    layout["uirevision"] = runs[0].comparison.run_id
    xlabel = "seconds of this optimizer's own step time" if by_time else "step"
    for key, axis in layout.items():
        if key.startswith("xaxis") and axis.get("title", {}).get("text") == "step":
            axis["title"]["text"] = xlabel
    return {"data": data, "layout": layout}


def _log_ticks(data: list, layout: dict) -> None:
    """Log axes ticked 1-2-5 within three decades, by decades beyond (plotly.js would label
    every digit of a short range, one over the other)."""
    for key, axis in layout.items():
        if not (key.startswith("yaxis") and axis.get("type") == "log"):
            continue
        name = "y" + key[len("yaxis") :]
        values = [v for t in data if t.get("yaxis", "y") == name for v in (t.get("y") or []) if v is not None and v > 0]
        if "range" in axis:
            low, high = axis["range"]
            span = high - low
        elif values:
            span = math.log10(max(values) / min(values))
        else:
            continue
        axis["dtick"] = "D2" if span <= 3 else 1 if span <= 8 else 2
        axis.pop("nticks", None)


def _panel_title(text: str, x: float, y: float) -> dict:
    return {
        "text": f"<b>{text}</b>",
        "xref": "paper",
        "yref": "paper",
        "x": x,
        "y": y,
        "xanchor": "left",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 12},
    }


def _base_layout() -> dict:
    return {
        "height": HEIGHT,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": -0.08, "yanchor": "top"},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
    }


def _grid(axis: dict) -> dict:
    return {
        "showgrid": True,
        "gridcolor": "#e5e5e5",
        "zeroline": False,
        "linecolor": "#888",
        "showline": True,
        "automargin": True,
        **axis,
    }


def _layout_model(facts: tasks.Task) -> dict:
    layout = _base_layout()
    metric = "accuracy" if facts.kind == "classify" else f"accuracy (|error| < {tasks.ADDING_TOLERANCE:g})"
    layout.update(
        {
            "xaxis": _grid({"domain": [0, 0.6], "anchor": "y", "title": {"text": "step"}}),
            "yaxis": _grid({"domain": [0.42, 1], "anchor": "x", "title": {"text": "loss of the batch"}}),
            "xaxis2": _grid({"domain": [0, 0.27], "anchor": "y2", "title": {"text": "step"}}),
            "yaxis2": _grid({"domain": [0, 0.3], "anchor": "x2"}),
            "xaxis3": _grid({"domain": [0.33, 0.6], "anchor": "y3", "title": {"text": "step"}}),
            "yaxis3": _grid({"domain": [0, 0.3], "anchor": "x3"}),
        }
    )
    tops = [(0.74, 1.0), (0.38, 0.64), (0.0, 0.3)]
    for j, (low, high) in enumerate(tops):
        n = 4 + j
        layout[f"xaxis{n}"] = _grid(
            {
                "domain": [0.7, 1],
                "anchor": f"y{n}",
                "matches": "x",
                **({"title": {"text": "step"}} if j == 2 else {"showticklabels": False}),
            }
        )
        layout[f"yaxis{n}"] = _grid({"domain": [low, high], "anchor": f"x{n}", **LOG})
    layout["annotations"] = [
        _panel_title(f"Training loss per step — {facts.description}", 0, 1.0),
        _panel_title("validation loss (per epoch)", 0, 0.3),
        _panel_title(f"validation {metric}", 0.33, 0.3),
        *(_panel_title(STAT_PANELS[j][2], 0.7, high) for j, (_, high) in enumerate(tops)),
    ]
    return layout


def _layout_2d(task: str) -> dict:
    fn = tasks.FUNCTIONS_2D[task]
    layout = _base_layout()
    layout.update(
        {
            "xaxis": _grid({"domain": [0, 0.55], "anchor": "y", "range": list(fn.xlim), "title": {"text": "x"}}),
            "yaxis": _grid({"domain": [0, 1], "anchor": "x", "range": list(fn.ylim), "title": {"text": "y"}}),
        }
    )
    tops = [(0.79, 1.0), (0.53, 0.74), (0.27, 0.48), (0.0, 0.22)]
    titles = ["f(x, y) per step"] + [p[3] for p in STAT_PANELS]
    for j, (low, high) in enumerate(tops):
        n = 2 + j
        layout[f"xaxis{n}"] = _grid(
            {
                "domain": [0.65, 1],
                "anchor": f"y{n}",
                **({"matches": "x2"} if n > 2 else {}),
                **({"title": {"text": "step"}} if j == 3 else {"showticklabels": False}),
            }
        )
        layout[f"yaxis{n}"] = _grid({"domain": [low, high], "anchor": f"x{n}", **(LOG if j else {})})
    layout["annotations"] = [_panel_title(f"{task}: {fn.formula}", 0, 1.0)] + [
        _panel_title(t, 0.65, high) for t, (_, high) in zip(titles, tops)
    ]
    return layout


_CONTOURS: dict = {}


def _contours(task: str) -> list:
    """The function's contours (log-spaced levels: colours by log10 f) with its minimum and start."""
    if task not in _CONTOURS:
        fn = tasks.FUNCTIONS_2D[task]
        xx, yy, zz = tasks.contour_grid(task, CONTOUR_POINTS)
        z = np.log10(np.maximum(zz, 1e-3))
        _CONTOURS[task] = [
            {
                "type": "contour",
                "x": _clean(xx[0]),
                "y": _clean(yy[:, 0]),
                "z": [_clean(row) for row in z],
                "colorscale": [[0, "#9ecae1"], [0.5, "#deebf7"], [1, "#ffffff"]],
                "showscale": False,
                "opacity": 0.8,
                "ncontours": 25,
                "contours": {"coloring": "fill", "showlines": True},
                "line": {"color": "#aaa", "width": 0.5},
                "hoverinfo": "skip",
                "name": "log10 f",
                "showlegend": False,
                "meta": "contours",
                "xaxis": "x",
                "yaxis": "y",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "x": [fn.minimum[0]],
                "y": [fn.minimum[1]],
                "name": "minimum",
                "meta": "minimum",
                "marker": {"symbol": "star", "size": 16, "color": "gold", "line": {"color": "black", "width": 1}},
                "xaxis": "x",
                "yaxis": "y",
                "hovertemplate": "minimum (%{x}, %{y})<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "x": [fn.start[0]],
                "y": [fn.start[1]],
                "name": "start",
                "meta": "start",
                "marker": {"size": 9, "color": "black"},
                "xaxis": "x",
                "yaxis": "y",
                "hovertemplate": "start (%{x}, %{y})<extra></extra>",
            },
        ]
    return json.loads(json.dumps(_CONTOURS[task]))


def empty(text: str) -> dict:
    """A figure with only a sentence in it (no axes, no ticks)."""
    return {
        "data": [],
        "layout": {
            "height": 160,
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "annotations": [
                {
                    "text": text,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "showarrow": False,
                    "font": {"size": 16, "color": "#666"},
                }
            ],
        },
    }


def split_stable(fig: dict) -> dict:
    """Take the traces' `stable` counts (see `decimate`) out of `fig`: {trace meta: count}."""
    out = {}
    for trace in fig.get("data", []):
        trace.pop("bucket", None)  # (seen by live.frame_id before: a new size is a new frame)
        stable = trace.pop("stable", None)
        if stable is not None and "meta" in trace:
            out[trace["meta"]] = stable
    return out


def plot_data(fig: dict) -> Any:
    """What `gr.Plot` takes: its PlotData with the figure's JSON (no plotly objects to validate)."""
    from gradio.components.plot import PlotData

    split_stable(fig)
    return PlotData(type="plotly", plot=json.dumps(fig, allow_nan=False))


# --- sweeps ---------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _band(x: list, low: list, high: list, color: str, group: str, meta: str, xaxis: str, yaxis: str) -> dict:
    """A min-max band as one closed polygon (hover-less), in the series' legend group."""
    xs = list(x) + list(x)[::-1]
    ys = [_finite(v) for v in low] + [_finite(v) for v in high][::-1]
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "fill": "toself",
        "fillcolor": _rgba(color, 0.16),
        "line": {"width": 0},
        "hoverinfo": "skip",
        "showlegend": False,
        "legendgroup": group,
        "meta": meta,
        "xaxis": xaxis,
        "yaxis": yaxis,
        "mode": "lines",
    }


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _ordered(present: list, order: list | None) -> list:
    """The (name, backend) keys to draw, each with its colour index: its place in `order`
    (the sweep's, so colours do not move as optimizers appear), else after them."""
    order = list(order or [])
    extra = [k for k in present if k not in order]
    return [(k, (order + extra).index(k)) for k in order + extra if k in present]


def _titled(title: str, explained: str) -> dict:
    """A figure's title, left, with a line of smaller text under it saying how to read it."""
    return {
        "text": f"{title}<br><span style='font-size:11px'>{explained}</span>",
        "x": 0.01,
        "xanchor": "left",
        "font": {"size": 14},
    }


def sensitivity(points: list, kind: str, title: str = "", revision: str = "", order: list | None = None) -> dict:
    """The sensitivity plot: final training loss and the validation metric (`sweep.metric_of`)
    against the learning rate (log axes), per optimizer the median over seeds and its min-max
    band; learning rates where seeds blew up get a ✖ at the top of the panel, with how many
    (hover says so). Trace metas: `sens-loss-<n>`, `sens-metric-<n>`, `band-...`, `blown-<n>`."""
    from keras_adaptive_gui.sweep import metric_of

    column, metric_title, _ = metric_of(kind)
    panels = [("loss", "final training loss", True)]
    if column != "final_loss":
        panels.append(("metric", metric_title, column == "best_val_loss"))
    keys = _ordered(list(dict.fromkeys((p["name"], p["backend"]) for p in points)), order)
    several = len({b for (_, b), _ in keys}) > 1
    width = 1.0 / len(panels)
    layout = _base_layout()
    layout.update(height=460, margin={"l": 60, "r": 20, "t": 105, "b": 50})
    layout["legend"] = {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"}
    annotations, data = [], []
    for k, (prefix, panel_title, log) in enumerate(panels):
        suffix = "" if k == 0 else str(k + 1)
        x0, x1 = k * width + (0.06 if k else 0), (k + 1) * width - (0.02 if k + 1 < len(panels) else 0)
        layout[f"xaxis{suffix}"] = _grid(
            {"type": "log", "title": {"text": "learning rate"}, "domain": [x0, x1], "tickformat": ".0e"}
        )
        yaxis = {"title": {"text": panel_title}, "anchor": f"x{suffix}"}
        if log:
            yaxis.update(LOG)
        layout[f"yaxis{suffix}"] = _grid(yaxis)
        annotations.append(_panel_title(panel_title, x0, 1.02))
        finite = [v for p in points for v in (p[f"{prefix}_low"], p[f"{prefix}_high"]) if _finite(v) is not None]
        top = max(finite) if finite else 1.0
        for key, n in keys:
            color = COLORS[n % len(COLORS)]
            name = f"{key[0]} · {key[1]}" if several else key[0]
            mine = [p for p in points if (p["name"], p["backend"]) == key]
            shown = [p for p in mine if _finite(p[f"{prefix}_median"]) is not None]
            x = [p["learning_rate"] for p in shown]
            axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
            if shown:
                data.append(
                    _band(
                        x,
                        [p[f"{prefix}_low"] for p in shown],
                        [p[f"{prefix}_high"] for p in shown],
                        color,
                        name,
                        f"band-{prefix}-{n}",
                        **axes,
                    )
                )
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": name,
                    "x": x,
                    "y": [_finite(p[f"{prefix}_median"]) for p in shown],
                    "customdata": [[p["runs"] - p["blown_up"], p["runs"]] for p in shown],
                    "hovertemplate": f"{name}<br>lr %{{x:.3g}}: %{{y:.4g}} (median of %{{customdata[0]}} seeds)"
                    "<extra></extra>",
                    "line": {"color": color, "width": 2},
                    "marker": {"size": 7},
                    "legendgroup": name,
                    "showlegend": k == 0,
                    "meta": f"sens-{prefix}-{n}",
                    **axes,
                }
            )
            blown = [p for p in mine if p["blown_up"]]
            if blown:
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers+text",
                        "name": f"{name}: blown up",
                        "x": [p["learning_rate"] for p in blown],
                        "y": [top] * len(blown),
                        "text": [f"{p['blown_up']}/{p['runs']}" for p in blown],
                        "textposition": "top center",
                        "textfont": {"color": color, "size": 10},
                        "hovertemplate": f"{name}<br>lr %{{x:.3g}}: %{{text}} seeds blown up<extra></extra>",
                        "marker": {"symbol": "x-thin", "size": 13, "line": {"width": 3, "color": color}},
                        "cliponaxis": False,
                        "legendgroup": name,
                        "showlegend": False,
                        "meta": f"blown-{prefix}-{n}",
                        **axes,
                    }
                )
    layout["annotations"] = annotations
    explained = "median over seeds, band min–max; ✖ at the top: seeds blown up (n/k)"
    layout["title"] = _titled(title, explained)
    layout["uirevision"] = revision or title
    _log_ticks(data, layout)
    return {"data": data, "layout": layout}


def best_curves(
    curves: list,
    title: str = "",
    revision: str = "",
    log_scale: bool = True,
    order: list | None = None,
    heading: str = "training loss at each optimizer's best learning rate: median over seeds, band min–max",
) -> dict:
    """The training loss at each optimizer's best learning rate (`Sweep.curves`): the median
    over seeds and its min-max band; a log axis when the curves span more than a decade.
    Trace metas: `best-<n>`, `band-best-<n>`."""
    several = len({c["backend"] for c in curves}) > 1
    values = [v for c in curves for v in (*c["low"], *c["high"]) if _finite(v) is not None and v > 0]
    log_scale = log_scale and bool(values) and max(values) > 10 * min(values)
    layout = _base_layout()
    layout.update(height=420, margin={"l": 60, "r": 20, "t": 60, "b": 50})
    layout["legend"] = {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"}
    layout["xaxis"] = _grid({"title": {"text": "step"}})
    layout["yaxis"] = _grid({"title": {"text": "training loss"}, **(LOG if log_scale else {})})
    data = []
    by_key = {(c["name"], c["backend"]): c for c in curves}
    for key, n in _ordered(list(by_key), order):
        c = by_key[key]
        color = COLORS[n % len(COLORS)]
        base = f"{c['name']} · {c['backend']}" if several else c["name"]
        name = f"{base}, lr {c['learning_rate']:.3g} ({c['seeds']} seeds)"
        keep = np.unique(np.linspace(0, len(c["steps"]) - 1, min(len(c["steps"]), MAX_POINTS)).astype(int))
        x = [c["steps"][i] for i in keep]  # the same steps for the median and the band
        median, low, high = ([c[k][i] for i in keep] for k in ("median", "low", "high"))
        data.append(_band(x, low, high, color, name, f"band-best-{n}", "x", "y"))
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": x,
                "y": [_finite(v) for v in median],
                "hovertemplate": f"{name}<br>step %{{x}}: %{{y:.4g}} (median)<extra></extra>",
                "line": {"color": color, "width": 2},
                "legendgroup": name,
                "meta": f"best-{n}",
            }
        )
    layout["annotations"] = [_panel_title(heading, 0, 1.0)]
    layout["title"] = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}}
    layout["uirevision"] = revision or title
    _log_ticks(data, layout)
    return {"data": data, "layout": layout}


# --- the learning-rate range test -------------------------------------------------------------

RULE_MARKERS = {"valley": "circle", "steepest": "triangle-down", "minimum/10": "square"}


def range_test(result: dict, title: str = "", revision: str = "") -> dict:
    """The range test's curve (`lr_find_job`'s message): the smoothed loss against the
    learning rate (log axis), the raw batch losses faint, each rule's suggestion marked on
    the smoothed curve (the one filled in drawn larger). Trace metas: `lrf-raw`,
    `lrf-smoothed`, `lrf-<rule>`."""
    lrs = [float(v) for v in result["learning_rates"]]
    smoothed = [_finite(v) for v in result["smoothed_losses"]]
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "batch loss",
            "x": lrs,
            "y": [_finite(v) for v in result["losses"]],
            "line": {"color": _rgba(COLORS[0], 0.3), "width": 1},
            "hovertemplate": "lr %{x:.3g}: batch loss %{y:.4g}<extra></extra>",
            "meta": "lrf-raw",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "smoothed loss",
            "x": lrs,
            "y": smoothed,
            "line": {"color": COLORS[0], "width": 2},
            "hovertemplate": "lr %{x:.3g}: smoothed loss %{y:.4g}<extra></extra>",
            "meta": "lrf-smoothed",
        },
    ]
    log_lrs = np.log(lrs) if lrs else np.zeros(0)
    for n, (rule, lr) in enumerate(result["suggestions"].items()):
        if lr is None or not lrs:
            continue
        chosen = rule == result["rule"]
        y = float(np.interp(math.log(lr), log_lrs, [v if v is not None else np.nan for v in smoothed]))
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{rule}: {lr:.3g}" + (" (filled in)" if chosen else ""),
                "x": [lr],
                "y": [_finite(y)],
                "marker": {
                    "symbol": RULE_MARKERS.get(rule, "x"),
                    "size": 15 if chosen else 10,
                    "color": COLORS[(n + 1) % len(COLORS)],
                    "line": {"width": 2, "color": "black" if chosen else "white"},
                },
                "hovertemplate": f"{rule}: lr %{{x:.3g}}<extra></extra>",
                "meta": f"lrf-{rule}",
            }
        )
    layout = _base_layout()
    layout.update(height=400, margin={"l": 60, "r": 20, "t": 70, "b": 50})
    layout["legend"] = {"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"}
    layout["xaxis"] = _grid({"type": "log", "title": {"text": "learning rate"}, "tickformat": ".0e"})
    layout["yaxis"] = _grid({"title": {"text": "training loss"}})
    body = [v for v in smoothed[: max(len(smoothed) - 5, 1)] if v is not None]
    if body:  # the smoothed curve before it diverges fills the panel; the raw spikes may leave it
        low, high = min(body), max(body)
        pad = 0.08 * (high - low or abs(high) or 1.0)
        layout["yaxis"]["range"] = [low - pad, high + 3 * pad]
    explained = "each batch trains at a larger learning rate; markers: each rule's suggestion"
    layout["title"] = _titled(title, explained)
    layout["uirevision"] = revision or title
    return {"data": data, "layout": layout}
