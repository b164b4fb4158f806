"""Figures of a comparison in matplotlib: the PNG that `keras-adaptive compare` writes (the
page draws its interactive charts with `charts.py`, and its PNG in the browser). The
figure carries the run's full configuration at its foot. A blown-up curve is marked and
the loss axis keeps to the other curves.

Each curve's SVG group has an id a test can find: `loss-<n>` (training loss; `loss-raw-<n>`
is the faint raw curve under a smoothed one), `val-loss-<n>`, `val-acc-<n>`, `path-<n>`
(2-D paths), and the optimizer's statistics `lr-<n>` (median effective learning rate),
`ratio-<n>` (update size / weight size) and `gnorm-<n>` (gradient norm), with n the
series' index.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, MaxNLocator, NullLocator

from keras_adaptive_gui import tasks
from keras_adaptive_gui.charts import DisplayOptions, smooth  # noqa: F401 (the same options as the page)

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
BACKEND_STYLES = {"tensorflow": "-", "jax": "--", "torch": ":"}


def _style(series: Any, several_backends: bool = True) -> dict:
    linestyle = BACKEND_STYLES.get(series.backend, "-") if several_backends else "-"
    return {"color": COLORS[series.optimizer % len(COLORS)], "linestyle": linestyle}


# The optimizer statistics' panels: (name in Series.stats, SVG gid prefix, title for models, title for 2-D).
STAT_PANELS = (
    ("effective_lr", "lr", "median effective learning rate", "effective learning rate"),
    ("update_ratio", "ratio", "update / weight size  ‖Δw‖/‖w‖", "step size / distance from 0  ‖Δp‖/‖p‖"),
    ("grad_norm", "gnorm", "gradient norm of the batch  ‖g‖", "gradient norm of the step  ‖∇f‖"),
)


def figure(comparison: Any, options: DisplayOptions) -> Figure:
    config = comparison.config
    if config.task_facts.is_2d:
        return _figure_2d(comparison, options)
    # The training loss with the optimizer statistics in a column beside it; validation below.
    fig = Figure(figsize=(11, 7.6), layout="constrained")
    left, right = fig.add_gridspec(1, 2, width_ratios=(2, 1.05))
    left = left.subgridspec(3, 2)
    ax_loss = fig.add_subplot(left[:2, :])
    ax_val = fig.add_subplot(left[2, 0])
    ax_acc = fig.add_subplot(left[2, 1])
    stat_axes = _stacked(fig, right.subgridspec(3, 1), sharex=ax_loss)
    by_time = options.x_axis == "time"
    _training_loss(ax_loss, comparison, options, by_time)
    metric = "accuracy" if config.kind == "classify" else f"accuracy (|error| < {tasks.ADDING_TOLERANCE:g})"
    for s_index, s in enumerate(comparison.series):
        style = _style(s, len(comparison.config.backends) > 1)
        if s.epochs:
            x = _x(s, s.epoch_steps, by_time)
            (line,) = ax_val.plot(x, s.val_losses, marker="o", ms=4, label=s.label, **style)
            line.set_gid(f"val-loss-{s_index}")
            (line,) = ax_acc.plot(x, s.val_accs, marker="o", ms=4, label=s.label, **style)
            line.set_gid(f"val-acc-{s_index}")
    ax_val.set_title("validation loss (per epoch)", fontsize=10)
    ax_acc.set_title(f"validation {metric}", fontsize=10)
    if options.log_scale:
        ax_val.set_yscale("log")
    for ax in (ax_val, ax_acc):
        ax.set_xlabel("seconds of step time" if by_time else "step")
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "after the first epoch", ha="center", va="center", transform=ax.transAxes, color="0.5")
    _statistics(stat_axes, comparison, by_time)
    return fig


def _x(series: Any, steps: list, by_time: bool) -> list:
    """The x coordinates of `steps`: the steps, or the series' own step time at each."""
    if not by_time:
        return steps
    time_of = dict(zip(series.steps, series.times))
    return [time_of.get(k, math.nan) for k in steps]


def _training_loss(ax: Any, comparison: Any, options: DisplayOptions, by_time: bool) -> None:
    config = comparison.config
    task = config.task_facts
    for s_index, s in enumerate(comparison.series):
        style = _style(s, len(comparison.config.backends) > 1)
        x = s.times if by_time else s.steps
        if not x:
            ax.plot([], [], label=f"{s.label} ({s.status})", **style)
            continue
        y = np.asarray(s.losses, dtype=float)
        label = s.label if s.status in ("training", "finished") else f"{s.label} ({s.status})"
        if options.smoothing > 0:
            (raw,) = ax.plot(x, y, alpha=0.22, linewidth=0.8, color=style["color"], linestyle=style["linestyle"])
            raw.set_gid(f"loss-raw-{s_index}")
            y = smooth(s.losses, options.smoothing)
        (line,) = ax.plot(x, y, linewidth=1.5, label=label, **style)
        line.set_gid(f"loss-{s_index}")
        if s.blown_up_at is not None:
            ax.annotate(
                f"✖ {s.blow_up_message()}",
                (0.01, 0.97 - 0.05 * s_index),
                xycoords="axes fraction",
                va="top",
                color=style["color"],
                fontsize=8,
            )
    if options.log_scale:
        ax.set_yscale("log")
    if any(s.blown_up_at is not None for s in comparison.series):  # keep the axis to what did not blow up
        kept = [
            v
            for s in comparison.series
            for st, v in zip(s.steps, s.losses)
            if math.isfinite(v) and (s.blown_up_at is None or st < s.blown_up_at)
        ]
        if kept:
            low, high = min(kept), max(kept)
            if options.log_scale and low > 0:
                ax.set_ylim(low / 1.5, high * 3)
            else:
                ax.set_ylim(low - 0.05 * (high - low or 1), high + 0.25 * (high - low or 1))
    ax.set_xlabel("seconds of this optimizer's own step time" if by_time else "step")
    ax.set_ylabel("loss of the batch")
    # Two lines: the panel is two thirds of the figure wide, and a task's description can be long.
    ax.set_title(f"Training loss per step — {_backend_note(comparison)}\n{task.description}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    if not by_time:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _backend_note(comparison: Any) -> str:
    backends = comparison.config.backends
    if len(backends) == 1:
        return f"backend {backends[0]}"
    return "backends " + ", ".join(f"{b} ({BACKEND_STYLES[b]})" for b in backends)


def _stacked(fig: Figure, grid: Any, sharex: Any = None) -> list:
    """One panel per row of `grid`, all on one x axis (that of `sharex`, or of the first)."""
    axes = [fig.add_subplot(grid[0], sharex=sharex)]
    axes += [fig.add_subplot(grid[row], sharex=sharex or axes[0]) for row in range(1, grid.nrows)]
    return axes


class _PlainLogFormatter(LogFormatterSciNotation):
    """matplotlib's choice of which log ticks to label, written as 0.006 rather than 6×10⁻³."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_y(ax: Any) -> None:
    """A log y axis that stays readable when the values span little: within a decade, a few
    evenly spaced round ticks (a log axis would have one label or none); within two, its
    labels written plainly (matplotlib labels minor ticks there, as 6×10⁻³)."""
    ax.set_yscale("log")
    values = np.concatenate([line.get_ydata() for line in ax.lines])
    span = values.max() / values.min()
    if span < 10:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=7, steps=(1, 2, 5, 10)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))
        ax.yaxis.set_minor_locator(NullLocator())
    elif span < 100:
        ax.yaxis.set_major_formatter(_PlainLogFormatter())
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


def _statistics(axes: list, comparison: Any, by_time: bool) -> None:
    """One panel per optimizer statistic, on a log scale (they span decades); the axes share x."""
    config = comparison.config
    several_backends = len(config.backends) > 1
    builtins = {i for i, o in enumerate(config.optimizers) if o.key.startswith("keras.")}
    for ax, (name, gid, title, title_2d) in zip(axes, STAT_PANELS):
        for s_index, s in enumerate(comparison.series):
            steps, values = s.stats[name]
            keep = [j for j, v in enumerate(values) if v > 0]  # a log axis shows positive values only
            if keep:
                x = _x(s, [steps[j] for j in keep], by_time)
                (line,) = ax.plot(
                    x, [values[j] for j in keep], label=s.label, linewidth=1.3, **_style(s, several_backends)
                )
                line.set_gid(f"{gid}-{s_index}")
        ax.set_title(title_2d if config.task_facts.is_2d else title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        # Keras' built-ins have no effective learning rate; on models, OptimizerMonitor needs one.
        missing = builtins if name == "effective_lr" or not config.task_facts.is_2d else set()
        if missing:
            ax.set_title("none for keras.*", fontsize=8, loc="right", color="0.4")
        if ax.lines:
            _log_y(ax)
        elif missing and len(missing) == len(config.optimizers):
            ax.text(
                0.5,
                0.5,
                "keras_adaptive optimizers only",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.5",
            )
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("seconds of step time" if by_time else "step")


def _figure_2d(comparison: Any, options: DisplayOptions) -> Figure:
    config = comparison.config
    fn = tasks.FUNCTIONS_2D[config.task]
    # The paths on the left; f, then the optimizer statistics, stacked on one x axis on the right.
    fig = Figure(figsize=(11, 7.6), layout="constrained")
    left, right = fig.add_gridspec(1, 2, width_ratios=(1.35, 1))
    ax_path = fig.add_subplot(left)
    ax_loss, *stat_axes = _stacked(fig, right.subgridspec(4, 1))
    xx, yy, zz = tasks.contour_grid(config.task)
    levels = np.geomspace(max(zz.min(), 1e-3), zz.max(), 25)
    ax_path.contourf(xx, yy, zz, levels=levels, cmap="Blues_r", alpha=0.35, norm="log").set_rasterized(True)
    ax_path.contour(xx, yy, zz, levels=levels, colors="0.55", linewidths=0.5)
    ax_path.plot(*fn.minimum, marker="*", ms=16, color="gold", markeredgecolor="black", label="minimum")
    ax_path.plot(*fn.start, marker="o", ms=7, color="black", label="start")
    by_time = options.x_axis == "time"
    for s_index, s in enumerate(comparison.series):
        style = _style(s, len(comparison.config.backends) > 1)
        label = s.label if s.status in ("training", "finished") else f"{s.label} ({s.status})"
        if s.xs:
            (line,) = ax_path.plot(s.xs, s.ys, linewidth=1.8, label=label, **style)
            line.set_gid(f"path-{s_index}")
            ax_path.plot(s.xs[-1], s.ys[-1], marker="o", ms=6, color=style["color"])
        else:
            ax_path.plot([], [], label=f"{s.label} ({s.status})", **style)
        x = s.times if by_time else s.steps
        if x:
            y = smooth(s.losses, options.smoothing) if options.smoothing > 0 else s.losses
            (line,) = ax_loss.plot(x, y, label=s.label, **style)
            line.set_gid(f"loss-{s_index}")
            if s.blown_up_at is not None:
                ax_path.annotate(
                    f"blown up at step {s.blown_up_at}", (s.xs[-1], s.ys[-1]), color=style["color"], fontsize=9
                )
    ax_path.set_xlim(*fn.xlim)
    ax_path.set_ylim(*fn.ylim)
    ax_path.set_title(f"{config.task}: {fn.formula}\n{_backend_note(comparison)}", fontsize=11)
    ax_path.legend(loc="upper left", fontsize=9)
    ax_loss.set_title("f(x, y) per step", fontsize=10)
    ax_loss.tick_params(labelbottom=False)
    ax_loss.grid(alpha=0.3)
    if ax_loss.lines and (options.log_scale or config.task != "beale"):
        ax_loss.set_yscale("log")
    _statistics(stat_axes, comparison, by_time)
    return fig


def save_png(fig: Figure, path: str, footer: str = "") -> str:
    """The figure as PNG, with `footer` (the run's configuration) written under it."""
    if footer:
        lines = footer.count("\n") + 1
        width, height = fig.get_size_inches()
        extra = 0.17 * lines + 0.2
        fig.set_size_inches(width, height + extra)
        fig.get_layout_engine().set(rect=(0, extra / (height + extra), 1, 1 - extra / (height + extra)))
        fig.text(0.01, 0.005, footer, fontsize=7, va="bottom", ha="left", family="monospace")
    fig.savefig(path, format="png", dpi=110, metadata={"Description": footer})
    return path


# --- sweeps ------------------------------------------------------------------------------


def _names(points: list) -> list:
    return list(dict.fromkeys((p["name"], p["backend"]) for p in points))


def sensitivity_figure(points: list, kind: str, title: str = "") -> Figure:
    """Final loss and the validation metric against the learning rate (log axis), per
    optimizer the median over seeds with its min-max band; a learning rate where seeds blew
    up gets a ✖ at the top of the axis with how many (not dropped). `points` as
    `sweep.sensitivity` gives them."""
    from keras_adaptive_gui.sweep import metric_of

    column, metric_title, _ = metric_of(kind)
    panels = [("loss", "final training loss")]
    if column != "final_loss":
        panels.append(("metric", metric_title))
    fig = Figure(figsize=(6.0 * len(panels), 4.4), layout="constrained")
    axes = [fig.add_subplot(1, len(panels), k + 1) for k in range(len(panels))]
    keys = _names(points)
    several = len({b for _, b in keys}) > 1
    for ax, (prefix, panel_title) in zip(axes, panels):
        finite = [
            v for p in points for v in (p[f"{prefix}_low"], p[f"{prefix}_high"]) if v is not None and math.isfinite(v)
        ]
        log = prefix == "loss" or column == "best_val_loss"
        top = max(finite) if finite else 1.0
        for n, key in enumerate(keys):
            mine = [p for p in points if (p["name"], p["backend"]) == key]
            color = COLORS[n % len(COLORS)]
            label = f"{key[0]} · {key[1]}" if several else key[0]
            shown = [p for p in mine if p[f"{prefix}_median"] is not None]
            x = [p["learning_rate"] for p in shown]
            ax.fill_between(
                x, [p[f"{prefix}_low"] for p in shown], [p[f"{prefix}_high"] for p in shown], color=color, alpha=0.18
            )
            ax.plot(x, [p[f"{prefix}_median"] for p in shown], "o-", color=color, label=label, gid=f"sens-{prefix}-{n}")
            blown = [p for p in mine if p["blown_up"]]
            if blown:
                ax.plot(
                    [p["learning_rate"] for p in blown],
                    [top] * len(blown),
                    "x",
                    color=color,
                    markersize=10,
                    mew=2.5,
                    clip_on=False,
                )
                for p in blown:
                    ax.annotate(
                        f"{p['blown_up']}/{p['runs']}",
                        (p["learning_rate"], top),
                        textcoords="offset points",
                        xytext=(0, 7),
                        ha="center",
                        fontsize=7,
                        color=color,
                    )
        ax.set_xscale("log")
        if log and finite and min(finite) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("learning rate")
        ax.set_title(f"{panel_title} (median over seeds, band min–max; ✖ blown up)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def best_curves_figure(curves: list, title: str = "", log_scale: bool = True) -> Figure:
    """The batch loss at each optimizer's best learning rate: median over seeds and min-max
    band (`Sweep.curves`)."""
    fig = Figure(figsize=(9.0, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    several = len({c["backend"] for c in curves}) > 1
    for n, c in enumerate(curves):
        color = COLORS[n % len(COLORS)]
        name = f"{c['name']} · {c['backend']}" if several else c["name"]
        ax.fill_between(c["steps"], c["low"], c["high"], color=color, alpha=0.18)
        ax.plot(
            c["steps"],
            c["median"],
            color=color,
            gid=f"best-{n}",
            label=f"{name}, lr={c['learning_rate']:.3g} (median of {c['seeds']} seeds)",
        )
    finite = [v for c in curves for v in c["median"] if math.isfinite(v)]
    if log_scale and finite and min(finite) > 0:
        _log_y(ax)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("loss at each optimizer's best learning rate (band: min–max over seeds)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


SENSITIVITY_PNG, CURVES_PNG = "sensitivity.png", "best-lr-curves.png"


def save_sweep_pngs(folder: str, points: list, kind: str, curves: list, title: str, footer: str) -> tuple[str, str]:
    """A sweep's two PNGs in `folder` (the task sweeps' and `keras_adaptive.sweep`'s): the
    sensitivity plot of `points` (`sweep.sensitivity`) and the loss curves at the best
    learning rates (`sweep.best_curves`), each with `footer` (the configuration) at its foot."""
    sensitivity = save_png(
        sensitivity_figure(points, kind, title), os.path.join(folder, SENSITIVITY_PNG), footer=footer
    )
    best = save_png(best_curves_figure(curves, title, log_scale=True), os.path.join(folder, CURVES_PNG), footer=footer)
    return sensitivity, best
