"""The page in a real headless Chromium, against the app started by its console script.

Every run trains on this pytest process's backend (KERAS_BACKEND), so the suite run once
per backend drives each backend through the page once.
"""

from __future__ import annotations

import csv
import os
import time

import pytest

from keras_adaptive_gui.engine import STATS
from keras_adaptive_gui.plots import COLORS
from tests.gui import ui
from tests.gui.conftest import training_backend

BACKEND = training_backend()

# Once per CI run, not once per backend: a browser run costs minutes on two cores. In the
# torch process the page trains on torch, and its compare-backends test trains on all three
# backends; test_engine.py drives each backend's worker in that backend's own process.
pytestmark = pytest.mark.backends("torch")


def _wait_no_workers(server, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while server.worker_pids():
        if time.monotonic() > deadline:
            pytest.fail(f"worker processes still alive: {server.worker_pids()}")
        time.sleep(0.2)


def test_two_optimizers_train_and_both_curves_are_drawn(gui_server, browser, screenshot_dir):
    page = ui.open_page(browser, gui_server.url)
    assert "MNIST sample shipped with keras_adaptive" in page.inner_text("body")  # the page says which data
    assert "Limits:" in page.inner_text("body")
    ui.choose(page, "opt2-name", "sgd")
    assert ui.curve_points(page, "loss-0") == 0
    ui.set_text(page, "opt2-learning_rate", "0.1")
    ui.set_number(page, "epochs", 2)
    ui.set_number(page, "steps-per-epoch", 25)
    ui.choose_radio(page, "backend", BACKEND)
    page.click("#train")
    ui.wait_curves(page, ["loss-0", "loss-1"], min_points=2)
    ui.wait_status(page, r"Finished")
    ui.wait_curves(page, ["loss-0", "loss-1"], min_points=50, timeout=10)
    assert ui.legend(page) == ["adam", "sgd (learning_rate=0.1)"]
    assert ui.curve_points(page, "val-loss-0") == 2 and ui.curve_points(page, "val-acc-1") == 2
    # The optimizer statistics beside the loss: effective LR, update ratio and gradient norm.
    for gid in ("lr", "ratio", "gnorm"):
        assert ui.curve_points(page, f"{gid}-0") > 0 and ui.curve_points(page, f"{gid}-1") > 0, gid
    strokes = {ui.curve_stroke(page, "loss-0"), ui.curve_stroke(page, "loss-1")}
    assert len(strokes) == 2 and "" not in strokes and "none" not in strokes
    rows = ui.summary(page)
    assert [r[:4] for r in rows] == [["adam", BACKEND, "finished", "50"], ["sgd (learning_rate=0.1)", BACKEND, "finished", "50"]]
    assert page.locator("#download-csv").is_enabled() and page.locator("#download-png").is_enabled()
    with page.expect_download() as download:
        page.click("#download-csv")
    with open(download.value.path()) as f:
        records = list(csv.DictReader(f))
    assert len([r for r in records if r["record"] == "step"]) == 100
    assert all(float(r[name]) > 0 for r in records if r["record"] == "step" for name in STATS)  # 50 steps: each one
    assert len([r for r in records if r["record"] == "epoch"]) == 4
    plot_png = os.path.join(screenshot_dir, "mnist-mlp-plot.png")
    page.locator("#plot").screenshot(path=plot_png)
    page.screenshot(path=os.path.join(screenshot_dir, "mnist-mlp-page.png"), full_page=True)
    for colour in COLORS[:2]:
        assert ui.colour_pixels(plot_png, colour) > 300, f"no {colour} curve in the screenshot"
    page.context.close()


def test_two_sessions_stay_apart_and_stop_ends_only_its_own_run(gui_server, browser, screenshot_dir):
    a = ui.open_page(browser, gui_server.url)
    b = ui.open_page(browser, gui_server.url)
    for page in (a, b):
        ui.choose_radio(page, "backend", BACKEND)
    ui.set_number(a, "epochs", 2)
    ui.set_number(a, "steps-per-epoch", 40)
    ui.choose(b, "opt1-name", "nadam")
    ui.choose(b, "opt2-name", "(none)")
    ui.set_number(b, "epochs", 20)
    ui.set_number(b, "steps-per-epoch", 250)  # 5,000 steps: far from done when stopped
    a.click("#train")
    b.click("#train")
    try:
        _check_two_sessions(a, b, gui_server, screenshot_dir)
    finally:  # never leave B's long run behind for the next tests
        b.click("#stop")
        a.context.close()
        b.context.close()


def _check_two_sessions(a, b, gui_server, screenshot_dir):
    ui.wait_curves(b, ["loss-0"], min_points=20)
    assert ui.legend(b) == ["nadam"]
    assert "Training" in ui.status(b)  # live: curves drawn while the run goes on
    b.click("#stop")
    ui.wait_status(b, r"Stopped at step \d+ of 5000")
    stopped_at = ui.curve_points(b, "loss-0")
    assert stopped_at >= 20  # the curve so far stays
    ui.wait_status(a, r"Finished", timeout=150)
    assert ui.legend(a) == ["adam", "rmsprop"]
    assert [r[2:4] for r in ui.summary(a)] == [["finished", "80"]] * 2
    assert ui.legend(b) == ["nadam (stopped)"] and ui.curve_points(b, "loss-0") == stopped_at
    assert [r[2] for r in ui.summary(b)] == ["stopped"]
    assert b.locator("#download-csv").is_enabled()
    _wait_no_workers(gui_server)
    b.screenshot(path=os.path.join(screenshot_dir, "stopped-session.png"), full_page=True)


def test_bad_inputs_show_a_message_and_start_nothing(gui_server, browser, screenshot_dir):
    workers_before = set(gui_server.worker_pids())
    page = ui.open_page(browser, gui_server.url)
    ui.set_text(page, "opt1-learning_rate", "abc")
    page.click("#train")
    text = ui.wait_status(page, r"Cannot start")
    assert "Optimizer 1 (adam): learning_rate must be a number, got 'abc'" in text  # Markdown shows `x` as code
    page.screenshot(path=os.path.join(screenshot_dir, "bad-input.png"))
    ui.set_text(page, "opt1-learning_rate", "-1")
    ui.set_number(page, "epochs", 1000)
    page.click("#train")
    text = ui.wait_status(page, r"Epochs must be between")
    assert "learning_rate" in text and "positive" in text
    assert "Epochs must be between 1 and 20, got 1000" in text
    ui.set_text(page, "opt1-learning_rate", "0.001")
    ui.set_number(page, "epochs", 20)
    ui.set_number(page, "steps-per-epoch", 500)
    page.click("#train")
    ui.wait_status(page, r"Run too long: epochs × steps per epoch = 10000 > 5000")
    ui.choose(page, "opt1-name", "(none)")
    ui.choose(page, "opt2-name", "(none)")
    page.click("#train")
    ui.wait_status(page, r"Choose at least one optimizer")
    assert set(gui_server.worker_pids()) <= workers_before  # no run was started
    assert gui_server.process.poll() is None  # the server is still serving
    page.context.close()


def test_2d_function_run_draws_the_paths_over_the_contours(gui_server, browser, screenshot_dir):
    page = ui.open_page(browser, gui_server.url)
    ui.choose(page, "preset", "Rosenbrock: SGD, Momentum, RMSProp, Adam")
    ui.wait_value(page, "#task input", "rosenbrock")
    ui.wait_value(page, "#opt4-learning_rate input", "0.05")
    ui.set_number(page, "steps-2d", 100)
    ui.choose_radio(page, "backend", BACKEND)
    page.click("#train")
    ui.wait_status(page, r"Finished")
    # Points outside the axes are clipped from the SVG, so count steps in the table.
    ui.wait_curves(page, [f"path-{i}" for i in range(4)], min_points=5, timeout=10)
    assert [r[2:4] for r in ui.summary(page)] == [["finished", "100"]] * 4
    for gid in ("lr", "ratio", "gnorm"):
        assert ui.curve_points(page, f"{gid}-3") > 0, gid
    labels = ui.legend(page)
    assert labels[:2] == ["minimum", "start"]
    assert labels[2:] == ["sgd (learning_rate=0.001)", "sgd (learning_rate=0.0005, momentum=0.9)",
                          "rmsprop (learning_rate=0.01)", "adam (learning_rate=0.05)"]
    plot_png = os.path.join(screenshot_dir, "rosenbrock-plot.png")
    page.locator("#plot").screenshot(path=plot_png)
    for colour in COLORS[:4]:
        assert ui.colour_pixels(plot_png, colour) > 100, f"no {colour} path in the screenshot"
    page.context.close()


def test_compare_backends_overlays_the_three_backends(gui_server, browser, screenshot_dir):
    """One run of three worker processes, one per backend, each training the first optimizer."""
    page = ui.open_page(browser, gui_server.url)
    page.click("#compare-backends label")
    ui.choose(page, "preset", "Ill-conditioned quadratic: SGD, Momentum, AdaGrad, Adam")
    ui.wait_value(page, "#task input", "quadratic")
    ui.wait_value(page, "#opt4-name input", "adam")
    ui.choose(page, "opt1-name", "adam")
    ui.set_text(page, "opt1-learning_rate", "0.1")
    ui.set_number(page, "steps-2d", 60)
    page.click("#train")
    ui.wait_status(page, r"Finished", timeout=180)
    assert "Compare backends runs the first optimizer only" in ui.status(page)
    labels = ui.legend(page)[2:]
    assert labels == [f"adam (learning_rate=0.1) · {b}" for b in ("tensorflow", "jax", "torch")]
    rows = ui.summary(page)
    losses = [float(r[4]) for r in rows]
    assert max(losses) - min(losses) <= 1e-3 * max(losses) + 1e-9, rows  # the backends agree
    page.locator("#plot").screenshot(path=os.path.join(screenshot_dir, "compare-backends-plot.png"))
    page.context.close()
