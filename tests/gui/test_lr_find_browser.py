"""The page's Find LR button in a real headless Chromium: the range test runs in a warm
worker, its curve is drawn and the slot's learning rate is set to the suggestion."""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np
import pytest

from tests.gui import ui
from tests.gui.conftest import training_backend

BACKEND = training_backend()
pytestmark = pytest.mark.backends("torch")  # one browser run per CI run, as test_browser.py
LR_PLOT = "#lr-find-plot .js-plotly-plot"


def _status(page) -> str:
    return page.locator("#lr-find-status").inner_text()


def _wait_status(page, pattern: str, timeout: float = 150.0) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text := _status(page)):
        if time.monotonic() > deadline:
            pytest.fail(f"the range test's status never matched {pattern!r}; it says {text!r}")
        time.sleep(0.2)
    return text


def _traces(page) -> dict:
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel); const out = {};
             for (const t of (gd && gd.data) || []) out[t.meta] = {x: Array.from(t.x), y: Array.from(t.y), name: t.name};
             return out; }""",
        LR_PLOT,
    )


def test_find_lr_fills_in_the_suggestion_of_the_range_test(gui_server, browser, screenshot_dir):
    page = ui.open_page(browser, gui_server.url)
    ui.choose_radio(page, "backend", BACKEND)
    # Bad input: a message on the page, nothing started.
    ui.set_number(page, "batch-size", 0)
    page.click("#opt1-find-lr")
    assert "Batch size must be between 1 and 512" in _wait_status(page, "Cannot start the range test", 20)
    ui.set_number(page, "batch-size", 64)
    ui.set_text(page, "opt1-learning_rate", "0.5")  # what the test replaces
    ui.set_number(page, "epochs", 1)
    ui.set_number(page, "steps-per-epoch", 5)
    page.click("#train")  # a run on the chart, to see it marked as made with the learning rate replaced
    ui.wait_status(page, r"Finished")
    assert page.inner_text("#stale").strip() == ""

    page.click("#opt1-find-lr")
    text = _wait_status(page, r"filled in")
    match = re.search(r"learning rate ([0-9.e+-]+) filled in, from the (\w+) rule", text)
    assert match, text
    suggested, rule = match.group(1), match.group(2)
    assert rule == "valley"
    assert page.locator("#opt1-learning_rate input").input_value() == suggested  # the field holds it
    page.wait_for_function(
        "sel => { const gd = document.querySelector(sel); return gd && gd.data && gd.data.length >= 3; }",
        arg=LR_PLOT,
    )
    traces = _traces(page)
    lrs = np.array(traces["lrf-smoothed"]["x"], dtype=float)
    raw = np.array(traces["lrf-raw"]["y"], dtype=float)
    smoothed = np.array(traces["lrf-smoothed"]["y"], dtype=float)
    # The drawn curve is the range test's: the exponential ramp from 1e-7 to 10 over 100 batches,
    # and the bias-corrected moving average (beta 0.98) of the drawn batch losses (NumPy here).
    n = len(lrs)
    assert 10 <= n <= 100, n
    np.testing.assert_allclose(lrs, 1e-7 * (10 / 1e-7) ** (np.arange(n) / 99), rtol=1e-9)
    average, expected = 0.0, []
    for i, loss in enumerate(raw):
        average = 0.98 * average + 0.02 * loss
        expected.append(average / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(smoothed, expected, rtol=1e-6)
    assert raw[0] == pytest.approx(math.log(10), abs=0.4)  # an untrained 10-class model: ln 10
    # The marked suggestion is the filled-in one, inside the tested range, where the loss falls.
    (marked,) = traces["lrf-valley"]["x"]
    assert f"{marked:.6g}" == suggested and "(filled in)" in traces["lrf-valley"]["name"]
    assert lrs.min() <= float(suggested) <= lrs.max()
    # The chart's run had learning rate 0.5: the page says the settings on the left are no longer its.
    deadline = time.monotonic() + 10
    while "(not the same: optimizers)" not in (stale := page.inner_text("#stale")):
        assert time.monotonic() < deadline, f"the chart is not marked as from other settings: {stale!r}"
        time.sleep(0.1)
    assert "adam (learning_rate=0.5)" in stale
    at = int(np.searchsorted(lrs, float(suggested)))
    assert smoothed[at] < smoothed[0], "the suggestion should be where the smoothed loss has come down"
    shot = os.path.join(screenshot_dir, "lr-find.png")
    page.locator("#lr-find-plot").scroll_into_view_if_needed()
    page.screenshot(path=shot, full_page=True)
    page.locator("#lr-find-plot").screenshot(path=os.path.join(screenshot_dir, "lr-find-plot.png"))
    assert ui.colour_pixels(os.path.join(screenshot_dir, "lr-find-plot.png"), "#1f77b4") > 200

    # A 2-D function: the page says why there is no range test; the server keeps running.
    field = page.locator("#task input")
    field.click()
    field.fill("quadratic")
    field.press("Enter")
    ui.wait_value(page, "#task input", "quadratic")
    page.click("#opt2-find-lr")
    assert "needs a model task" in _wait_status(page, "Cannot start", 20)
    assert gui_server.process.poll() is None
