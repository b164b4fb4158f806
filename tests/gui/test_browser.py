"""The page in a real headless Chromium, against the app started by its console script.

Every run trains on this pytest process's backend (KERAS_BACKEND), so the suite run once
per backend drives each backend through the page once.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time

import pytest

from keras_adaptive_gui import engine
from keras_adaptive_gui.charts import COLORS
from keras_adaptive_gui.engine import STATS
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


def _records(path: str) -> tuple[dict, list[dict]]:
    """A downloaded CSV: its configuration line (JSON after '# keras-adaptive run ') and its rows."""
    with open(path) as f:
        first = f.readline()
        assert first.startswith("# keras-adaptive run "), first[:80]
        return json.loads(first[len("# keras-adaptive run ") :]), list(csv.DictReader(f))


def test_two_optimizers_train_and_the_chart_is_interactive(gui_server, browser, screenshot_dir):
    page = ui.open_page(browser, gui_server.url)
    body = page.inner_text("body")
    assert "MNIST sample shipped with keras_adaptive" in body and "Limits:" in body  # which data, which limits
    assert "Adam as in the paper's Algorithm 1" in body  # the optimizer's docstring, on the page
    ui.choose(page, "opt2-name", "sgd")
    assert "SGD with optional momentum" in page.inner_text("body")  # the info follows the choice
    assert ui.curve_points(page, "loss-0") == 0
    ui.set_text(page, "opt2-learning_rate", "0.1")
    ui.set_number(page, "epochs", 2)
    ui.set_number(page, "steps-per-epoch", 25)
    ui.choose_radio(page, "backend", BACKEND)
    page.click("#train")
    ui.wait_curves(page, ["loss-0", "loss-1"], min_points=2)
    ui.wait_status(page, r"Finished")
    ui.wait_curves(page, ["loss-0", "loss-1"], min_points=50, timeout=10)
    assert ui.legend(page) == ["adam (learning_rate=0.001)", "sgd (learning_rate=0.1)"]
    assert ui.curve_points(page, "val-loss-0") == 2 and ui.curve_points(page, "val-acc-1") == 2
    for meta in ("lr", "ratio", "gnorm"):  # the optimizer statistics beside the loss
        assert ui.curve_points(page, f"{meta}-0") > 0 and ui.curve_points(page, f"{meta}-1") > 0, meta
    rows = ui.summary(page)
    assert [r[:4] for r in rows] == [
        ["adam (learning_rate=0.001)", BACKEND, "finished", "50"],
        ["sgd (learning_rate=0.1)", BACKEND, "finished", "50"],
    ]
    # Hover on sgd's 30th step: the series, the step and the value.
    sgd = ui.trace(page, "loss-1")
    texts = " ".join(ui.hover_texts(page, "loss-1", 29))
    assert f"sgd (learning_rate=0.1)step {sgd['x'][29]}loss {sgd['y'][29]:.4g}" in texts, texts
    plot_png = os.path.join(screenshot_dir, "mnist-mlp-plot.png")
    page.locator("#plot").screenshot(path=plot_png)
    for colour in COLORS[:2]:
        assert ui.colour_pixels(plot_png, colour) > 300, f"no {colour} curve in the screenshot"
    # The CSV: every step of both series, and the full configuration.
    with page.expect_download() as download:
        page.click("#download-csv")
    meta, records = _records(download.value.path())
    assert meta["config"]["epochs"] == 2 and meta["config"]["batch_size"] == 64 and meta["config"]["seed"] == 0
    assert meta["config"]["optimizers"][1]["hyperparameters"]["momentum"] == 0  # defaults written out too
    assert meta["versions"]["keras"]
    assert len([r for r in records if r["record"] == "step"]) == 100
    assert all(float(r[name]) > 0 for r in records if r["record"] == "step" for name in STATS)  # 50 steps: each one
    assert len([r for r in records if r["record"] == "epoch"]) == 4
    # Display options and a series hidden from the legend: the screen and the PNG agree.
    page.click("#log-scale label")
    page.locator("#smoothing input[type=number]").fill("0.6")
    page.locator("#smoothing input[type=number]").press("Enter")
    deadline = time.monotonic() + 20
    while not (ui.layout(page).get("yaxis", {}).get("type") == "log" and ui.curve_points(page, "loss-raw-1")):
        assert time.monotonic() < deadline, "log scale and smoothing never reached the chart"
        time.sleep(0.2)
    ui.click_legend(page, "sgd (learning_rate=0.1)")
    assert ui.trace(page, "loss-1")["visible"] == "legendonly" and ui.trace(page, "gnorm-1")["visible"] == "legendonly"
    assert ui.trace(page, "loss-0")["visible"] is True
    shown_png = os.path.join(screenshot_dir, "mnist-mlp-sgd-hidden.png")
    page.locator("#plot").screenshot(path=shown_png)
    with page.expect_download() as download:
        page.click("#download-png")
    png = os.path.join(screenshot_dir, "mnist-mlp-download.png")
    download.value.save_as(png)
    from PIL import Image

    assert Image.open(png).size[1] > page.locator("#plot .js-plotly-plot").bounding_box()["height"]
    assert ui.colour_pixels(png, COLORS[0]) > 300  # adam drawn
    assert ui.colour_pixels(png, COLORS[1]) < 60  # sgd hidden, as on the screen (its legend swatch is faint)
    page.screenshot(path=os.path.join(screenshot_dir, "mnist-mlp-page.png"), full_page=True)
    # No stale figure: other settings mark it, another task clears it.
    ui.set_number(page, "epochs", 3)
    deadline = time.monotonic() + 10
    while "made with other settings" not in page.inner_text("#stale"):
        assert time.monotonic() < deadline, "the chart is not marked as from other settings"
        time.sleep(0.1)
    field = page.locator("#task input")
    field.click()
    field.fill("quadratic")
    field.press("Enter")
    ui.wait_value(page, "#task input", "quadratic")
    # Learning rates that move on this task (adam's 0.001 barely moves on a 2-D function in 300 steps).
    ui.wait_value(page, "#opt1-learning_rate input", "0.1")
    assert page.locator("#opt2-learning_rate input").input_value() == "0.035"
    deadline = time.monotonic() + 10
    while ui.legend(page, timeout=0) or ui.summary(page):
        assert time.monotonic() < deadline, "the old task's chart stays under the new task"
        time.sleep(0.1)
    assert page.inner_text("#stale").strip() == ""
    page.context.close()


def test_two_sessions_stay_apart_and_stop_reports_the_step_reached(gui_server, browser, screenshot_dir):
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
    assert ui.legend(b) == ["nadam (learning_rate=0.001)"]
    assert "Training" in ui.status(b)  # live: curves drawn while the run goes on
    # Fed only what changed: after the first frame, the chart grows by cut frames (live.py).
    deadline = time.monotonic() + 30
    while (b.evaluate("() => window.__kaLive ? window.__kaLive.cuts : 0") or 0) < 3:
        assert time.monotonic() < deadline, "the live chart never got a cut frame"
        time.sleep(0.2)
    live_curve = ui.trace(b, "loss-0")  # as the live feed left it, compared with the CSV below
    b.locator("#plot").screenshot(path=os.path.join(screenshot_dir, "live-mid-run.png"))
    assert len(live_curve["x"]) >= 20
    # The feed answers only its own run's secret token.
    gone = a.evaluate("() => fetch('/keras-adaptive/live/not-a-token?have=').then(r => r.json())")
    assert gone == {"gone": True}
    b.click("#stop")
    text = ui.wait_status(b, r"Stopped at step \d+ of 5000")
    stopped_at = int(re.search(r"Stopped at step (\d+)", text).group(1))
    assert stopped_at >= 20
    # The step the status gives is the one the worker reached: the table and the curve's end say the same.
    ui.wait_status(a, r"Finished", timeout=150)
    assert ui.legend(a) == ["adam (learning_rate=0.001)", "rmsprop (learning_rate=0.001)"]
    assert [r[2:4] for r in ui.summary(a)] == [["finished", "80"]] * 2
    deadline = time.monotonic() + 30  # the run's last frame, with the downloads, once it is kept
    while not b.locator("#download-csv").is_enabled():
        assert time.monotonic() < deadline, f"no downloads after Stop; status {ui.status(b)!r}"
        time.sleep(0.2)
    # The last frame (the table and chart are throttled before it; seen 39 against a status of 51
    # when read earlier) says what the status says.
    assert [r[3] for r in ui.summary(b)] == [str(stopped_at)] and [r[2] for r in ui.summary(b)] == ["stopped"]
    assert ui.trace(b, "loss-0")["x"][-1] == stopped_at
    assert ui.legend(b) == ["nadam (learning_rate=0.001) (stopped)"]
    # What the live chart drew was what happened: each point is a step's loss in the CSV.
    with b.expect_download() as download:
        b.click("#download-csv")
    _, records = _records(download.value.path())
    loss_at = {int(r["step"]): float(r["loss"]) for r in records if r["record"] == "step"}
    for step, loss in zip(live_curve["x"], live_curve["y"]):
        assert loss == pytest.approx(loss_at[step], rel=1e-5), step
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


def test_2d_paths_over_the_contours_a_blown_up_run_and_the_run_history(gui_server, browser, screenshot_dir, tmp_path):
    page = ui.open_page(browser, gui_server.url)
    ui.choose(page, "preset", "Ill-conditioned quadratic: SGD, Momentum, AdaGrad, Adam")
    ui.wait_value(page, "#task input", "quadratic")
    ui.wait_value(page, "#opt4-learning_rate input", "0.1")
    ui.set_text(page, "opt1-learning_rate", "0.045")  # above 2/50: SGD blows up on the steep axis
    ui.set_number(page, "steps-2d", 100)
    ui.choose_radio(page, "backend", BACKEND)
    page.click("#train")
    text = ui.wait_status(page, r"Finished")
    match = re.search(r"sgd \(learning_rate=0\.045\) blew up at step (\d+): loss ([\d.e+]+)", text)
    assert match, text
    assert [r[2] for r in ui.summary(page)] == ["blown up", "finished", "finished", "finished"]
    assert ui.summary(page)[0][-1] == match.group(1)
    assert [r[3] for r in ui.summary(page)][1:] == ["100"] * 3  # SGD's worker ends it once |p| passes 1e6
    for meta in ("lr", "ratio", "gnorm"):
        assert ui.curve_points(page, f"{meta}-3") > 0, meta
    for i in range(4):
        assert ui.curve_points(page, f"path-{i}") >= 5
    assert ui.legend(page) == [
        "minimum",
        "start",
        "sgd (learning_rate=0.045) (blown up)",
        "sgd (learning_rate=0.01, momentum=0.9)",
        "adagrad (learning_rate=0.5)",
        "adam (learning_rate=0.1)",
    ]
    # The f panel keeps to the curves that did not blow up, and says where SGD did.
    layout = ui.layout(page)
    assert layout["yaxis2"]["type"] == "log" and 10 ** layout["yaxis2"]["range"][1] < 1e3
    assert any("blew up at step " + match.group(1) in a.get("text", "") for a in layout["annotations"])
    plot_png = os.path.join(screenshot_dir, "quadratic-plot.png")
    page.locator("#plot").screenshot(path=plot_png)
    for colour in COLORS[1:4]:
        assert ui.colour_pixels(plot_png, colour) > 100, f"no {colour} path in the screenshot"
    # Run history: the run is kept; after a reload this browser sees it and can lay it over a new run.
    runs = page.locator("#runs label")
    assert runs.count() == 1 and "quadratic" in runs.first.inner_text()
    page.reload()
    page.wait_for_selector("#plot .js-plotly-plot")
    deadline = time.monotonic() + 20
    while page.locator("#runs label").count() != 1:
        assert time.monotonic() < deadline, "the earlier run is not listed after a reload"
        time.sleep(0.2)
    runs.first.click()
    deadline = time.monotonic() + 20
    while not any(n.startswith("[") for n in ui.legend(page)):
        assert time.monotonic() < deadline, f"the earlier run was not laid over the chart: {ui.legend(page)}"
        time.sleep(0.2)
    assert len([n for n in ui.legend(page) if n.startswith("[")]) == 4
    # A bundle written elsewhere (as keras-adaptive compare writes them) opens in the page.
    bundle = _made_up_bundle(tmp_path)
    page.locator("#open-bundle input[type=file]").set_input_files(
        [os.path.join(bundle, engine.CONFIG_FILE), os.path.join(bundle, engine.RECORDS_FILE)]
    )
    deadline = time.monotonic() + 20
    while page.locator("#runs label").count() != 2:
        assert time.monotonic() < deadline, "the opened bundle is not listed"
        time.sleep(0.2)
    deadline = time.monotonic() + 20
    while "rosenbrock" not in ui.layout(page).get("title", {}).get("text", ""):
        assert time.monotonic() < deadline, "the opened bundle is not drawn"
        time.sleep(0.2)
    assert ui.curve_points(page, "path-0") == 11
    # The settings on the left are of another task: the page says plainly which run and settings the chart shows.
    stale = page.inner_text("#stale")
    assert re.search(r"The chart shows run \d{8}-\d{6}-[0-9a-f]{6} \(task rosenbrock", stale), stale
    assert "adam (learning_rate=0.05)" in stale and "10 steps" in stale, stale
    differ = re.search(r"\(not the same: ([a-z ,]+)\)", stale).group(1).split(", ")
    assert {"task", "steps", "optimizers"} <= set(differ) and "seed" not in differ, stale
    page.screenshot(path=os.path.join(screenshot_dir, "history.png"), full_page=True)
    # Another browser sees none of these runs.
    other = ui.open_page(browser, gui_server.url)
    other.wait_for_timeout(1500)
    assert other.locator("#runs label").count() == 0
    other.context.close()
    # Delete both: the list is empty.
    for i in range(page.locator("#runs label").count()):
        label = page.locator("#runs label").nth(i)
        if not label.locator("input").is_checked():
            label.click()
            page.wait_for_timeout(300)
    page.click("#delete-runs")
    deadline = time.monotonic() + 20
    while page.locator("#runs label").count():
        assert time.monotonic() < deadline, "the runs were not deleted"
        time.sleep(0.2)
    page.context.close()


def _made_up_bundle(tmp_path) -> str:
    """A bundle of a Rosenbrock run of 10 steps (never trained: made-up records)."""
    comparison = engine.Comparison(
        engine.check_config("rosenbrock", [("adam", {"learning_rate": "0.05"})], ["jax"], steps_2d=10)
    )
    s = comparison.series[0]
    for step in range(11):
        s.add_step({"step": step, "time": 0.001 * step, "loss": 10.0 / (step + 1), "x": -1 + 0.1 * step, "y": 1.5})
    s.status = "finished"
    return comparison.save_bundle(str(tmp_path))


def test_compare_backends_overlays_the_three_backends(gui_server, browser, screenshot_dir):
    """One run of three worker processes, one per backend, each training the first optimizer."""
    page = ui.open_page(browser, gui_server.url)
    page.click("#compare-backends label")
    # The controls that compare-backends ignores are disabled.
    deadline = time.monotonic() + 10
    while not page.locator("#opt2-name input").is_disabled():
        assert time.monotonic() < deadline, "slot 2 stays active under compare backends"
        time.sleep(0.1)
    assert page.locator("#backend input").first.is_disabled()
    ui.choose(page, "preset", "Ill-conditioned quadratic: SGD, Momentum, AdaGrad, Adam")
    ui.wait_value(page, "#task input", "quadratic")
    ui.wait_value(page, "#opt4-name input", "adam")
    ui.choose(page, "opt1-name", "adam")
    ui.set_text(page, "opt1-learning_rate", "0.1")
    ui.set_number(page, "steps-2d", 60)
    page.click("#train")
    text = ui.wait_status(page, r"Finished", timeout=180)
    assert "Compare backends runs the first optimizer only" in text
    difference = float(re.search(r"Largest loss difference between the backends: ([\d.e+-]+)", text).group(1))
    expected = [f"adam (learning_rate=0.1) · {b}" for b in ("tensorflow", "jax", "torch")]
    # The last frame may reach the chart a moment after the status (seen once on a loaded machine).
    deadline = time.monotonic() + 15
    while (labels := ui.legend(page)[2:]) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert labels == expected
    losses = [float(r[4]) for r in ui.summary(page)]
    assert max(losses) - min(losses) <= difference + 1e-12  # the number covers the final losses
    assert difference <= 1e-3 * max(losses) + 1e-6  # the backends agree
    assert math.isfinite(difference)
    page.locator("#plot").screenshot(path=os.path.join(screenshot_dir, "compare-backends-plot.png"))
    page.context.close()
