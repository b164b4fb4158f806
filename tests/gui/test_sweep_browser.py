"""The sweep panel in real Chromium: a small sweep draws its sensitivity plot, the best-lr
curves and the table; a bad grid gets a message. On one backend's pytest process only (the
sweep's engine is tested on every backend in test_sweep.py)."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.gui import ui

pytestmark = pytest.mark.backends("torch")  # with test_browser.py: one server

SENS = "#sensitivity .js-plotly-plot"
CURVES = "#best-curves .js-plotly-plot"


def _sweep_status(page) -> str:
    return page.locator("#sweep-status").inner_text()


def _wait_sweep_status(page, pattern: str, timeout: float = ui.DEFAULT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _sweep_status(page)
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"the sweep status never matched {pattern!r}; it says {text!r}")
        time.sleep(0.2)


def _traces(page, selector: str) -> list[dict]:
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel);
             return gd && gd.data ? gd.data.map(t => ({meta: t.meta, name: t.name, x: Array.from(t.x || []),
                 y: Array.from(t.y || []), text: Array.from(t.text || [])})) : []; }""",
        selector,
    )


def _hover(page, selector: str, meta: str, index: int) -> list[str]:
    """Move the mouse onto point `index` of trace `meta` as a person does; the hover texts."""
    x, y = page.evaluate(
        """([sel, meta, index]) => { const gd = document.querySelector(sel);
             const t = gd.data.find(t => t.meta === meta);
             const xa = gd._fullLayout[(t.xaxis || 'x').replace('x', 'xaxis')];
             const ya = gd._fullLayout[(t.yaxis || 'y').replace('y', 'yaxis')];
             const box = gd.getBoundingClientRect();
             return [box.left + xa._offset + xa.c2p(t.x[index]), box.top + ya._offset + ya.c2p(t.y[index])]; }""",
        [selector, meta, index],
    )
    for k in range(5, 0, -1):
        page.mouse.move(x - 3 * k, y - 2 * k)
        page.wait_for_timeout(40)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    return page.eval_on_selector_all(f"{selector} .hoverlayer text", "els => els.map(e => e.textContent)")


def _table(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#sweep-table [role=row].virtual-row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))",
    )


def test_a_small_sweep_shows_its_sensitivity_plot_curves_and_table(gui_server, browser, screenshot_dir):
    page = ui.open_page(browser, gui_server.url)
    ui.set_number(page, "epochs", 2)
    ui.set_number(page, "steps-per-epoch", 5)
    ui.set_number(page, "batch-size", 32)
    ui.set_text(page, "sweep-grid", "0.001, 0")
    page.click("#sweep-start")
    text = _wait_sweep_status(page, r"Cannot start the sweep")
    assert "must be positive and finite, got 0" in text
    assert gui_server.process.poll() is None
    # adam and sgd at 0.05 and 1000 (where SGD's loss is not finite), 2 seeds: 8 runs
    ui.choose(page, "opt2-name", "sgd")
    ui.set_text(page, "sweep-grid", "0.05, 1000")
    ui.set_number(page, "sweep-seeds", 2)
    page.click("#sweep-start")
    text = _wait_sweep_status(page, r"Finished: 8 runs", timeout=180)
    deadline = time.monotonic() + 20
    while len(_table(page)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    page.wait_for_timeout(1500)  # the last frame drawn
    page.locator("#sweep-status").scroll_into_view_if_needed()
    page.screenshot(path=os.path.join(screenshot_dir, "sweep.png"), full_page=True)
    # A table wider than its box scrolls: its last column can be brought into the box.
    last = page.locator("#sweep-table th").last
    last.scroll_into_view_if_needed()
    box, frame = last.bounding_box(), page.locator("#sweep-table").bounding_box()
    assert frame["x"] - 1 <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1, (box, frame)
    page.locator("#sweep-table").screenshot(path=os.path.join(screenshot_dir, "sweep-table-scrolled.png"))
    page.locator("#sensitivity").screenshot(path=os.path.join(screenshot_dir, "sweep-sensitivity.png"))
    page.locator("#best-curves").screenshot(path=os.path.join(screenshot_dir, "sweep-best-curves.png"))
    traces = {t["meta"]: t for t in _traces(page, SENS)}
    for meta in ("sens-loss-0", "sens-loss-1", "sens-metric-0", "sens-metric-1"):
        assert meta in traces, sorted(traces)
    assert traces["sens-metric-1"]["x"] == [0.05]  # SGD at 1000 has no median: every seed blew up ...
    blown = traces["blown-metric-1"]
    assert blown["x"] == [1000] and blown["text"] == ["2/2"]  # ... and it is marked, not dropped
    assert "blown up" in text
    curves = {t["meta"]: t for t in _traces(page, CURVES)}
    assert {"best-0", "best-1"} <= set(curves) and len(curves["best-0"]["x"]) == 10
    table = _table(page)
    assert len(table) == 2 and [row[0] for row in table] == ["adam", "sgd"]
    assert table[1][2] == "0.05" and table[1][3] == "yes: widen it" and table[1][6] == "1/2 learning rates", table
    # Interactive: hover reads a point, a legend click hides the optimizer's curve, band and ✖.
    assert any("sgd" in t and "lr 0.05" in t for t in _hover(page, SENS, "sens-metric-1", 0)), "no hover label"
    page.locator(f"{SENS} .legend .traces").nth(1).locator(".legendtoggle").click()
    page.wait_for_timeout(400)
    hidden = page.evaluate(
        "sel => document.querySelector(sel).data.filter(t => t.legendgroup === 'sgd').map(t => t.visible)", SENS
    )
    assert len(hidden) >= 4 and set(hidden) == {"legendonly"}, hidden
    # The sweep is kept in Earlier runs: one bundle per seed.
    runs = page.eval_on_selector_all("#runs label", "els => els.map(e => e.innerText)")
    assert len(runs) >= 2
    # Seeds only: each optimizer at its own learning rate (its box), the comparison as median and band.
    page.locator("#sweep-mode label").filter(has_text="seeds only").click()
    page.click("#sweep-start")
    _wait_sweep_status(page, r"Finished: 4 runs", timeout=120)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        curves = {t["meta"]: t for t in _traces(page, CURVES)}
        if {"best-0", "best-1"} <= set(curves) and "0.001" in curves["best-0"]["name"]:
            break
        time.sleep(0.2)
    assert (
        "adam, lr 0.001 (2 seeds)" == curves["best-0"]["name"] and "sgd, lr 0.01 (2 seeds)" == curves["best-1"]["name"]
    )
    page.locator("#best-curves").screenshot(path=os.path.join(screenshot_dir, "seeds-only-curves.png"))
    page.locator("#sweep-mode label").filter(has_text="learning-rate sweep").click()
    # Stop ends a longer sweep at once and keeps what finished.
    ui.set_number(page, "steps-per-epoch", 300)
    ui.set_text(page, "sweep-grid", "1e-4:1e-2:5")
    page.click("#sweep-start")
    _wait_sweep_status(page, r"Sweeping: [1-9]\d* of 20 runs done", timeout=120)
    page.click("#sweep-stop")
    text = _wait_sweep_status(page, r"Stopped: \d+ of 20 runs ended", timeout=10)
    assert "the finished ones are kept" in text
    deadline = time.monotonic() + 10
    while gui_server.worker_pids() and time.monotonic() < deadline:  # the sweep's workers are ended
        time.sleep(0.2)
    assert gui_server.worker_pids() == [] and gui_server.process.poll() is None
    page.context.close()
