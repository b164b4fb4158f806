"""Figures of a comparison: matplotlib, drawn as SVG for the page (so its legend and
lines are real DOM elements) and saved as PNG for download.

Each curve's SVG group has an id a test can find: `loss-<n>` (training loss; `loss-raw-<n>`
is the faint raw curve under a smoothed one), `val-loss-<n>`, `val-acc-<n>`, `lr-<n>`,
`path-<n>` (2-D paths), with n the series' index.
"""

from __future__ import annotations

import io
import threading
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_adaptive_gui import tasks

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
BACKEND_STYLES = {"tensorflow": "-", "jax": "--", "torch": ":"}
# Text stays <text> in the SVG, and every point of a curve is kept (no path simplification).
SVG_STYLE = {"svg.fonttype": "none", "path.simplify": False}
# rc_context sets matplotlib's global rcParams: two sessions drawing at once could each see the
# other's exit restore the defaults mid-draw (text drawn as paths, simplified lines).
_SVG_LOCK = threading.Lock()


@dataclass
class DisplayOptions:
    log_scale: bool = False
    smoothing: float = 0.0  # exponential smoothing of the training loss, in [0, 0.99]
    x_axis: str = "step"  # "step" or "time"


def smooth(values: list, weight: float) -> np.ndarray:
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


def _style(series: Any, several_backends: bool = True) -> dict:
    linestyle = BACKEND_STYLES.get(series.backend, "-") if several_backends else "-"
    return {"color": COLORS[series.optimizer % len(COLORS)], "linestyle": linestyle}


def figure(comparison: Any, options: DisplayOptions) -> Figure:
    config = comparison.config
    if config.kind == "2d":
        return _figure_2d(comparison, options)
    fig = Figure(figsize=(11, 7.2), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=(1.5, 1))
    ax_loss = fig.add_subplot(grid[0, :])
    ax_val = fig.add_subplot(grid[1, 0])
    ax_acc = fig.add_subplot(grid[1, 1])
    ax_lr = fig.add_subplot(grid[1, 2])
    by_time = options.x_axis == "time"
    _training_loss(ax_loss, comparison, options, by_time)
    metric = "accuracy" if config.kind == "classify" else f"accuracy (|error| < {tasks.ADDING_TOLERANCE:g})"
    for s_index, s in enumerate(comparison.series):
        style = _style(s, len(comparison.config.backends) > 1)
        if s.epochs:
            x = s.epoch_steps if not by_time else [s.times[s.steps.index(k)] for k in s.epoch_steps]
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
    _effective_lr(ax_lr, comparison, by_time)
    return fig


def _training_loss(ax: Any, comparison: Any, options: DisplayOptions, by_time: bool) -> None:
    config = comparison.config
    task = tasks.TASKS[config.task]
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
        if s.diverged_at is not None:
            finite = [(xx, yy) for xx, yy in zip(x, s.losses) if math.isfinite(yy)]
            if finite:
                ax.plot(*finite[-1], marker="X", ms=11, color=style["color"], markeredgecolor="black")
                ax.annotate(
                    f"diverged at step {s.diverged_at}", finite[-1], textcoords="offset points", xytext=(6, 6),
                    color=style["color"], fontsize=9,
                )
    if options.log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("seconds of this optimizer's own step time" if by_time else "step")
    ax.set_ylabel("loss of the batch")
    ax.set_title(f"Training loss per step — {task.description} — {_backend_note(comparison)}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    if not by_time:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _backend_note(comparison: Any) -> str:
    backends = comparison.config.backends
    if len(backends) == 1:
        return f"backend {backends[0]}"
    return "backends " + ", ".join(f"{b} ({BACKEND_STYLES[b]})" for b in backends)


def _effective_lr(ax: Any, comparison: Any, by_time: bool) -> None:
    for s_index, s in enumerate(comparison.series):
        if s.lrs:
            x = s.lr_steps if not by_time else [s.times[s.steps.index(k)] for k in s.lr_steps]
            (line,) = ax.plot(x, s.lrs, label=s.label, **_style(s, len(comparison.config.backends) > 1))
            line.set_gid(f"lr-{s_index}")
    ax.set_title("median effective learning rate", fontsize=10)
    ax.set_xlabel("seconds of step time" if by_time else "step")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "keras_adaptive optimizers only", ha="center", va="center", transform=ax.transAxes, color="0.5")


def _figure_2d(comparison: Any, options: DisplayOptions) -> Figure:
    config = comparison.config
    fn = tasks.FUNCTIONS_2D[config.task]
    fig = Figure(figsize=(11, 7.2), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(1.5, 1))
    ax_path = fig.add_subplot(grid[:, 0])
    ax_loss = fig.add_subplot(grid[0, 1])
    ax_lr = fig.add_subplot(grid[1, 1])
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
            if s.diverged_at is not None:
                ax_path.annotate(f"diverged at step {s.diverged_at}", (s.xs[-1], s.ys[-1]), color=style["color"], fontsize=9)
    ax_path.set_xlim(*fn.xlim)
    ax_path.set_ylim(*fn.ylim)
    ax_path.set_title(f"{config.task}: {fn.formula}\n{_backend_note(comparison)}", fontsize=11)
    ax_path.legend(loc="upper left", fontsize=9)
    ax_loss.set_title("f(x, y) per step", fontsize=10)
    ax_loss.set_xlabel("seconds of step time" if by_time else "step")
    ax_loss.grid(alpha=0.3)
    if ax_loss.lines and (options.log_scale or config.task != "beale"):
        ax_loss.set_yscale("log")
    _effective_lr(ax_lr, comparison, by_time)
    return fig


def placeholder(text: str) -> str:
    """A small SVG saying what is going on, where the plot will be."""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 120" class="placeholder">'
        f'<text x="400" y="65" text-anchor="middle" font-size="18" fill="#666">{safe}</text></svg>'
    )


def to_svg(fig: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with _SVG_LOCK, matplotlib.rc_context(SVG_STYLE):
        fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Let the page size it: drop the fixed width/height, keep the viewBox.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)


def save_png(fig: Figure, path: str) -> str:
    fig.savefig(path, format="png", dpi=110)
    return path
