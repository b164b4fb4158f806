"""The page's figures: SVG that the page (and its tests) can read, from any number of sessions at once."""

from __future__ import annotations

import re
import threading

import numpy as np
from matplotlib.figure import Figure

from keras_adaptive_gui import plots

POINTS = 2000


def _figure() -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    (line,) = ax.plot(np.arange(POINTS), np.sin(np.arange(POINTS) / 7.0), label="adam")
    line.set_gid("loss-0")
    ax.legend()
    return fig


def _readable(svg: str) -> bool:
    """Legend text kept as text, and the line with every point (no path simplification)."""
    line = re.search(r'<g id="loss-0">.*?\bd="([^"]*)"', svg, re.S)
    return ">adam</text>" in svg and line is not None and len(re.findall(r"[ML]", line.group(1))) == POINTS


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
