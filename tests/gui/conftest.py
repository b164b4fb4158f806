"""Fixtures for the GUI tests: the app started as a user starts it (its console script, on
a free port of 127.0.0.1), and Debian's Chromium driven by Playwright.

These tests never skip: a missing browser, console script or Playwright is a failure.
Each pytest process trains on its own backend (`KERAS_BACKEND`), so running the suite
once per backend exercises each backend once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from tests.gui.ui import CHROMIUM, CHROMIUM_ARGS

SERVER_START_TIMEOUT = 150


def training_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def console_script(name: str) -> str:
    """The installed console script: beside this Python first (a venv), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    path = beside if os.path.exists(beside) else shutil.which(name)
    if not path:
        pytest.fail(f"console script {name!r} is not installed (pip install -e '.[test]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_spare(pid: int) -> bool:
    """An idle warm worker (`worker.run_when_given` names itself so until given a run)."""
    from keras_adaptive_gui.worker import SPARE_NAME

    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip() == SPARE_NAME
    except OSError:
        return False


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log_path: str) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-6000:]

    def worker_pids(self) -> list[int]:
        """The server's live training worker processes (multiprocessing spawn children), idle
        warm spares left out."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
            except OSError:
                continue
            state, ppid = fields[0], int(fields[1])
            if ppid == self.pid and "spawn_main" in cmdline and state != "Z" and not is_spare(int(entry)):
                pids.append(int(entry))
        return pids


@pytest.fixture(autouse=True)
def no_warm_spares_in_this_process():
    """Comparisons run in a test process start their own worker: no warm spare is left behind
    (a test of the spares makes its own `engine.Spares`)."""
    from keras_adaptive_gui import engine

    engine.SPARES.enabled = False
    yield
    engine.SPARES.close()


@pytest.fixture(scope="session")
def gui_server():
    script = console_script("keras-adaptive-gui")
    port = free_port()
    log_dir = tempfile.mkdtemp(prefix="keras-adaptive-gui-test-")
    log_path = os.path.join(log_dir, "server.log")
    env = dict(os.environ, KERAS_BACKEND=training_backend(), GRADIO_ANALYTICS_ENABLED="False")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                script,
                "--port",
                str(port),
                "--no-download",
                "--max-workers",
                "4",
                "--results",
                os.path.join(log_dir, "results"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}/", log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"keras-adaptive-gui exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"keras-adaptive-gui did not answer within {SERVER_START_TIMEOUT} s:\n{server.log()}")
        time.sleep(0.5)
    yield server
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed (pip install -e '.[test]'); never run `playwright install`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshot_dir():
    """Screenshots go to results/gui-screenshots (gitignored) to be looked at."""
    root = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "results", "gui-screenshots")
    path = os.path.abspath(os.path.join(root, training_backend()))
    os.makedirs(path, exist_ok=True)
    return path
