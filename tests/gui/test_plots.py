"""The page's figures: SVG that the page (and its tests) can read, from any number of sessions at once."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_adaptive_gui import engine, plots

POINTS = 2000


def _figure() -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    (line,) = ax.plot(np.arange(POINTS), np.sin(np.arange(POINTS) / 7.0), label="adam")
    line.set_gid("loss-0")
    ax.legend()
    return fig


def _points(svg: str, gid: str) -> int:
    """Points of the line with SVG id `gid` (0 if it is not drawn)."""
    line = re.search(rf'<g id="{gid}">.*?\bd="([^"]*)"', svg, re.S)
    return len(re.findall(r"[ML]", line.group(1))) if line else 0


def _readable(svg: str) -> bool:
    """Legend text kept as text, and the line with every point (no path simplification)."""
    return ">adam</text>" in svg and _points(svg, "loss-0") == POINTS


def test_svg_keeps_text_and_every_point():
    assert _readable(plots.to_svg(_figure()))


def test_sessions_drawing_at_once_all_get_readable_svg():
    """Each session's frames are drawn in its own thread; matplotlib's rc settings are global."""
    results, figures = [], [_figure() for _ in range(4)]

    def draw(fig):
        for _ in range(15):
            results.append(_readable(plots.to_svg(fig)))

    threads = [threading.Thread(target=draw, args=(fig,)) for fig in figures]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 60 and all(results), f"{results.count(False)} of 60 frames unreadable"


def _comparison(task: str, optimizers: list) -> engine.Comparison:
    """A comparison (never started) holding ten steps of made-up losses for each series."""
    comparison = engine.Comparison(engine.check_config(task, optimizers, ["tensorflow"]))
    for s in comparison.series:
        for step in range(1, 11):
            xy = {"x": 0.1 * step, "y": 0.5} if comparison.config.kind == "2d" else {}
            s.add_step({"step": step, "time": 0.01 * step, "loss": 1.0 / step, **xy})
    return comparison


@pytest.mark.parametrize("task", ["adding", "quadratic"])
@pytest.mark.parametrize("x_axis", ["step", "time"])
def test_statistics_panels_draw_the_positive_values_of_each_series(task, x_axis):
    comparison = _comparison(task, [("adam", {}), ("keras.Adam", {})])
    for step in range(1, 11):  # a log axis: None and 0 are left out
        comparison.series[0].add_stats({"step": step, "effective_lr": 1e-3 * step,
                                        "update_ratio": None if step == 3 else 0.01 * step,
                                        "grad_norm": 0.0 if step == 5 else 2.0 / step})
    svg = plots.to_svg(plots.figure(comparison, plots.DisplayOptions(x_axis=x_axis)))
    assert [_points(svg, f"{gid}-0") for gid in ("lr", "ratio", "gnorm")] == [10, 9, 9]
    assert [_points(svg, f"{gid}-1") for gid in ("lr", "ratio", "gnorm")] == [0, 0, 0]
    assert "none for keras.*" in svg  # the panels say why Keras' built-in has no line
