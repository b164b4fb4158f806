"""The page's charts (Plotly figure dicts) and the command line's PNG, from made-up records:
every panel's content, decimation that keeps spikes, log axes, smoothing with the raw curve
faint, and a blown-up curve kept from flattening the others."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_adaptive_gui import charts, engine, plots


def _comparison(task: str, optimizers: list, steps: int = 10, loss=lambda i, step: 1.0 / step) -> engine.Comparison:
    """A comparison (never started) holding made-up losses and statistics for each series."""
    comparison = engine.Comparison(engine.check_config(task, optimizers, ["tensorflow"], mnist_path="unused.npz"))
    two_d = comparison.config.task_facts.is_2d
    for i, s in enumerate(comparison.series):
        s.status = "training"
        for step in range(1, steps + 1):
            xy = {"x": 0.1 * step, "y": 0.5} if two_d else {}
            s.add_step({"step": step, "time": 0.01 * step, "loss": loss(i, step), **xy})
            s.add_stats(
                {
                    "step": step,
                    "effective_lr": 1e-3 * step,
                    "update_ratio": None if step == 3 else 0.01,
                    "grad_norm": 0.0 if step == 5 else 2.0 / step,
                }
            )
        if not two_d:
            s.epochs, s.epoch_steps, s.val_losses, s.val_accs = [1], [steps], [0.5], [0.9]
    return comparison


def _trace(fig: dict, meta: str) -> dict:
    found = [t for t in fig["data"] if t.get("meta") == meta]
    assert len(found) == 1, (meta, [t.get("meta") for t in fig["data"]])
    return found[0]


@pytest.mark.parametrize("task", ["adding", "quadratic"])
@pytest.mark.parametrize("x_axis", ["step", "time"])
def test_every_panel_has_its_series_and_the_figure_is_json(task, x_axis):
    comparison = _comparison(task, [("adam", {}), ("keras.Adam", {})])
    fig = charts.figure([charts.Shown(comparison)], charts.DisplayOptions(x_axis=x_axis))
    json.dumps(fig, allow_nan=False)  # what gr.Plot is sent
    two_d = task == "quadratic"
    panels = ["loss", "lr", "ratio", "gnorm"] + (["path"] if two_d else ["val-loss", "val-acc"])
    for meta in panels:
        assert _trace(fig, f"{meta}-0")["y"], meta
    # A log axis: None and 0 are left out; Keras' built-in has no effective learning rate here.
    assert [len(_trace(fig, f"{m}-0")["y"]) for m in ("lr", "ratio", "gnorm")] == [10, 9, 9]
    noted = [a["text"] for a in fig["layout"]["annotations"] if "none for keras.*" in a["text"]]
    assert len(noted) == (1 if two_d else 3), noted  # the panels say why Keras' built-in may have no line
    loss = _trace(fig, "loss-0")
    assert loss["x"] == ([0.01 * k for k in range(1, 11)] if x_axis == "time" else list(range(1, 11)))
    assert "adam (learning_rate=0.001)" in loss["hovertemplate"] and "loss %{y:.4g}" in loss["hovertemplate"]
    # One legend entry per series; its other traces are in its legend group (a click hides them all).
    shown = [t["name"] for t in fig["data"] if t.get("showlegend")]
    assert shown[-2:] == ["adam (learning_rate=0.001)", "keras.Adam (learning_rate=0.001)"]
    assert {t["legendgroup"] for t in fig["data"] if t.get("meta", "").endswith("-0") and "legendgroup" in t} == {"0"}
    if two_d:
        assert fig["data"][0]["type"] == "contour"


def test_log_scale_and_smoothing_draw_the_raw_curve_faint():
    comparison = _comparison("mnist-mlp", [("adam", {})], steps=50, loss=lambda i, step: 2.0 + (-1) ** step)
    fig = charts.figure([charts.Shown(comparison)], charts.DisplayOptions(log_scale=True, smoothing=0.9))
    raw, smooth = _trace(fig, "loss-raw-0"), _trace(fig, "loss-0")
    assert raw["opacity"] < 0.5 and smooth["opacity"] == 1
    assert raw["y"][:2] == [1.0, 3.0] and np.ptp(smooth["y"][10:]) < 0.5 * np.ptp(raw["y"][10:])
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["yaxis2"]["type"] == "log"
    plain = charts.figure([charts.Shown(comparison)], charts.DisplayOptions())
    assert "type" not in plain["layout"]["yaxis"] and not [t for t in plain["data"] if t["meta"] == "loss-raw-0"]


def test_a_blown_up_curve_is_marked_and_the_axis_keeps_to_the_others():
    """SGD at a huge rate: the loss jumps to 1e11 at step 30 and stays high (the issue's MLP run)."""

    def loss(i, step):
        return 2.3 / step**0.2 if i == 0 else (1e11 if step >= 30 else 2.3)

    comparison = _comparison("mnist-mlp", [("adam", {}), ("sgd", {"learning_rate": "100"})], steps=80, loss=loss)
    sgd = comparison.series[1]
    assert sgd.status == "blown up" and sgd.blown_up_at == 30 and comparison.series[0].blown_up_at is None
    assert sgd.blow_up_message() == (
        "sgd (learning_rate=100) blew up at step 30: loss 1e+11 (loss above 10× its first "
        "loss 2.3 for 20 steps in a row)."
    )
    fig = charts.figure([charts.Shown(comparison)], charts.DisplayOptions())
    top = fig["layout"]["yaxis"]["range"][1]
    assert 2.3 < top < 5  # the other curve fills the panel
    assert any("blew up at step 30: loss 1e+11" in a["text"] for a in fig["layout"]["annotations"])
    assert _trace(fig, "blown-1")["x"] == [30]


def test_chance_accuracy_at_the_end_counts_as_blown_up():
    comparison = _comparison("mnist-mlp", [("sgd", {"learning_rate": "100"})], steps=5, loss=lambda i, step: 2.3)
    comparison.series[0].val_accs = [0.126]
    comparison.series[0].status = "finished"
    comparison._finish()
    assert comparison.series[0].status == "blown up"
    assert "ended at chance, validation accuracy 12.6%" in comparison.messages[-1]


def test_command_line_png_carries_the_configuration(tmp_path):
    comparison = _comparison("quadratic", [("adam", {})])
    footer = engine.config_text(comparison) + "\n" + charts.DisplayOptions(True, 0.5, "time").describe()
    assert "adam (learning_rate=0.001): adam(learning_rate=0.001, beta_1=0.9" in footer
    assert "display: log loss axis, smoothing 0.5, x axis wall-clock time" in footer
    path = plots.save_png(
        plots.figure(comparison, charts.DisplayOptions(True, 0.5, "time")), str(tmp_path / "a.png"), footer=footer
    )
    from PIL import Image

    image = Image.open(path)
    assert "beta_1=0.9" in image.info["Description"] and image.size[1] > 800
