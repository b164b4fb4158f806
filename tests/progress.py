"""A pytest plugin for `python -m tests`: writes "<done> <collected> <failed>" to the file named by
`KERAS_ADAPTIVE_PROGRESS` after each test, so that the parent can show live progress of the
backends it runs at once (their own output is printed when each ends)."""

from __future__ import annotations

import os

import pytest

_state = {"collected": 0, "done": 0, "failed": 0}


def _write() -> None:
    path = os.environ.get("KERAS_ADAPTIVE_PROGRESS")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(f"{_state['done']} {_state['collected']} {_state['failed']}")
        os.replace(path + ".tmp", path)  # the parent never reads half a line


def pytest_collection_finish(session: pytest.Session) -> None:
    _state["collected"] = len(session.items)
    _write()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _state["failed"] += 1
    if report.when == "teardown":
        _state["done"] += 1
        _write()
