"""The same app through its API, with gradio_client (the app started by its console script)."""

from __future__ import annotations

import time

import pytest

from tests.gui.conftest import training_backend

BACKEND = training_backend()

# Once per CI run, in the jax process (the browser suite runs in the torch one): see test_browser.py.
pytestmark = pytest.mark.backends("jax")


@pytest.fixture(scope="module")
def client(gui_server):
    from gradio_client import Client

    return Client(gui_server.url, verbose=False)


def test_api_lists_the_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/compare", "/train", "/stop"} <= set(api["named_endpoints"])


def test_api_bad_input_returns_a_message(client):
    result = client.predict(task="quadratic", optimizers="adam:learning_rate=abc", backend=BACKEND, api_name="/compare")
    assert result["running"] is False and "`learning_rate` must be a number, got 'abc'" in result["status"]
    result = client.predict(task="quadratic", optimizers="", backend=BACKEND, api_name="/compare")
    assert "Choose at least one optimizer." in result["status"]
    result = client.predict(task="quadratic", optimizers="adam", backend="all", steps_2d=10**6, api_name="/compare")
    assert "Steps must be between 1 and 3000" in result["status"]


def test_api_streams_progress_and_cancel_ends_the_worker(client, gui_server):
    # 5,000 MNIST steps: far from done when cancelled (a 2-D run can finish between two frames).
    job = client.submit(
        task="mnist-mlp",
        optimizers="sgd:learning_rate=0.035,adam:learning_rate=0.1",
        backend=BACKEND,
        epochs=20,
        steps_per_epoch=250,
        api_name="/compare",
    )
    deadline = time.monotonic() + 120
    seen = []
    while True:
        outputs = job.outputs()
        if outputs:
            seen = outputs[-1]["summary"]
            if seen and min(row["steps"] for row in seen) >= 20:
                break
        assert not job.done(), job.outputs()[-1:] if job.outputs() else "the job ended without output"
        assert time.monotonic() < deadline, "no progress streamed"
        time.sleep(0.2)
    assert [row["optimizer"] for row in seen] == ["sgd (learning_rate=0.035)", "adam (learning_rate=0.1)"]
    assert all(row["status"] == "training" for row in seen)
    job.cancel()
    deadline = time.monotonic() + 20
    while gui_server.worker_pids():
        assert time.monotonic() < deadline, "cancel left the worker running"
        time.sleep(0.2)


def test_api_runs_a_comparison_to_the_end(client):
    result = client.predict(
        task="rosenbrock",
        optimizers="adam:learning_rate=0.05,keras.Adam:learning_rate=0.05",
        backend=BACKEND,
        steps_2d=40,
        api_name="/compare",
    )
    assert result["running"] is False and "Finished" in result["status"]
    summary = {row["optimizer"]: row for row in result["summary"]}
    assert set(summary) == {"adam (learning_rate=0.05)", "keras.Adam (learning_rate=0.05)"}
    assert all(row["status"] == "finished" and row["steps"] == 40 for row in summary.values())
    # keras_adaptive's Adam and Keras' own agree (same start, same gradients).
    a, b = (row["final loss"] for row in summary.values())
    assert a == pytest.approx(b, rel=1e-3)
