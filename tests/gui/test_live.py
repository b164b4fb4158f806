"""The live feed (`live`): what the server sends a browser that holds part of the chart.

The browser's side is modelled here as FOLLOW_JS applies a frame (a full one replaces the
chart; a cut keeps each trace's first k points and appends the rest); the browser tests run
the real script. A run is grown step by step and fed frame by frame: at every frame the
browser's chart must equal the figure drawn from scratch at that moment.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from keras_adaptive_gui import charts, engine, live
from tests.gui.test_plots import _comparison

OPTIMIZERS = [("adam", {}), ("sgd", {"learning_rate": "0.1"}), ("rmsprop", {})]


class Browser:
    """What FOLLOW_JS keeps: the chart's traces by meta, its frame id and the stable counts."""

    def __init__(self) -> None:
        self.traces: dict = {}
        self.frame, self.stable, self.full, self.cuts, self.points_sent = "", {}, 0, 0, 0

    def have(self) -> str:
        return json.dumps({"frame": self.frame, "stable": self.stable, "chart": True})

    def apply(self, msg: dict) -> None:
        msg = json.loads(json.dumps(msg, allow_nan=False))  # what goes over the wire
        if "figure" in msg:
            self.full += 1
            self.traces = {t["meta"]: (list(t["x"]), list(t["y"])) for t in msg["figure"]["data"] if "meta" in t}
            assert msg["figure"]["layout"]["meta"]["frame"] == msg["frame"]
        else:
            assert msg["frame"] == self.frame  # the server answered the chart the browser holds
            self.cuts += 1
            for meta, (k, xs, ys) in msg["cut"].items():
                x, y = self.traces[meta]
                assert k <= len(x)
                self.traces[meta] = (x[:k] + xs, y[:k] + ys)
                self.points_sent += len(xs)
        self.frame, self.stable = msg["frame"], msg["stable"]


def _grow(comparison: engine.Comparison, step: int, two_d: bool) -> None:
    for i, s in enumerate(comparison.series):
        loss = (1.0 + i) / step + (0.3 if step % 97 == 0 else 0.0)  # a spike now and then
        xy = {"x": 0.1 * step, "y": 1.0 / step} if two_d else {}
        s.add_step({"step": step, "time": 0.01 * step, "loss": loss, **xy})
        if step % 7 == 0 or two_d:
            s.add_stats({"step": step, "effective_lr": 1e-3, "update_ratio": 0.01 / step, "grad_norm": 1.0 / step})
        if not two_d and step % 250 == 0:
            s.epochs.append(step // 250)
            s.epoch_steps.append(step)
            s.val_losses.append(1.0 / step)
            s.val_accs.append(1 - 1.0 / step)


def _empty(task: str) -> engine.Comparison:
    comparison = _comparison(task, OPTIMIZERS, steps=0)
    for s in comparison.series:
        s.epochs, s.epoch_steps, s.val_losses, s.val_accs = [], [], [], []
    return comparison


def _expected(comparison, options) -> dict:
    fig = charts.figure([charts.Shown(comparison)], options)
    charts.split_stable(fig)
    return {t["meta"]: (t["x"], t["y"]) for t in json.loads(json.dumps(fig))["data"] if "meta" in t}


@pytest.mark.parametrize("task", ["mnist-mlp", "quadratic"])
@pytest.mark.parametrize("options", [charts.DisplayOptions(), charts.DisplayOptions(True, 0.8, "time")])
def test_a_browser_fed_frame_by_frame_holds_the_figure_drawn_from_scratch(task, options):
    comparison = _empty(task)
    two_d = comparison.config.task_facts.is_2d
    total = 1_300  # past 300, 600 and 1,200 steps, where the bucket size doubles
    browser = Browser()
    frames = 0
    for step in range(1, total + 1):
        _grow(comparison, step, two_d)
        if step % 23 and step != total:  # a frame every 23 steps, and at the end
            continue
        browser.apply(live.frame(charts.figure([charts.Shown(comparison)], options), browser.have()))
        frames += 1
        assert browser.traces == _expected(comparison, options), f"step {step}"
    # Full frames: the first, each doubling of the bucket size, a stats curve's first point.
    assert 4 <= browser.full <= 10 and browser.cuts >= frames - 10, (browser.full, browser.cuts)
    # Only what changed: far fewer points sent than frames x points held.
    held = sum(len(x) for x, _ in browser.traces.values())
    assert browser.points_sent < frames * held / 5, (browser.points_sent, frames, held)


def test_anything_but_new_points_sends_a_full_frame():
    comparison = _empty("mnist-mlp")
    browser = Browser()
    for step in range(1, 400):
        _grow(comparison, step, False)
    browser.apply(live.frame(charts.figure([charts.Shown(comparison)], charts.DisplayOptions()), browser.have()))
    assert browser.full == 1
    for options in (charts.DisplayOptions(log_scale=True), charts.DisplayOptions(True, 0.5)):
        browser.apply(live.frame(charts.figure([charts.Shown(comparison)], options), browser.have()))
    assert browser.full == 3 and browser.cuts == 0
    comparison.series[1].blow_up(399, 1e9, "test")  # a series blown up: its name, marker and the axis change
    browser.apply(
        live.frame(charts.figure([charts.Shown(comparison)], charts.DisplayOptions(True, 0.5)), browser.have())
    )
    assert browser.full == 4
    # A browser that lost its chart (a reload, a figure from elsewhere) or says nothing gets a full one.
    for have in ("", "not json", json.dumps({"frame": "", "stable": {}}), json.dumps({"frame": browser.frame})):
        msg = live.frame(charts.figure([charts.Shown(comparison)], charts.DisplayOptions(True, 0.5)), have)
        assert ("figure" in msg) == (have != json.dumps({"frame": browser.frame})), have
    assert live.wants_chart(json.dumps({"chart": False})) is False and live.wants_chart("") is True


def test_decimation_keeps_the_ends_and_the_spikes_and_its_stable_points_never_change():
    steps = np.arange(1, 20_001)
    y = np.sin(steps / 300.0)
    y[12_345] = 50.0
    y[777] = math.nan
    dx, dy, stable, size = charts.decimate(steps, steps, y, max_points=400)
    assert size == 128 and 150 <= len(dx) <= 402 and dx[0] == 1 and dx[-1] == 20_000
    assert 50.0 in dy and dx[dy.index(50.0)] == 12_346
    assert dx == sorted(dx) and 0 < stable < len(dx)
    # As a run goes on: while the bucket size stays, the first `stable` points drawn stay those
    # drawn later; the size doubles with the steps, so there are always 100-400 points.
    drawn = {}
    for n in (1, 2, 37, 200, 201, 399, 400, 401, 999, 12_346, 12_801, 15_000, 19_999, 20_000):
        px, py, k, s = charts.decimate(steps[:n], steps[:n], y[:n], max_points=400)
        assert px[-1] == n and len(px) <= 402 and (n < 200 or len(px) >= 100), (n, len(px))  # the head is drawn
        assert s == (1 if n <= 200 else 1 << (math.ceil(n / 200) - 1).bit_length()), (n, s)
        for m, (qx, qy, j, t) in drawn.items():
            if t == s:
                assert (px[:j], py[:j]) == (qx[:j], qy[:j]), (m, n)
        drawn[n] = (px, py, k, s)
    short_x, short_y, short_stable, short_size = charts.decimate(steps[:10], steps[:10], y[:10])
    assert short_x == list(range(1, 11)) and short_stable == 9 and short_size == 1


def test_the_status_is_escaped_html_with_its_bold_and_paragraphs():
    text = "**Training** on jax: step 3 of 10.\n\n⚠ <script>alert(1)</script> & more"
    html = live.status_html(text)
    assert html.startswith("<p><strong>Training</strong> on jax: step 3 of 10.</p><p>⚠ ")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html
    assert live.status_block(text).startswith('<div id="live-status"><p>')
