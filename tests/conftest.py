import os

import keras
import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backends(*names): the test belongs to these backends' pytest processes only; in the others it is "
        "deselected at collection (not skipped), so a skip in the summary always means something",
    )
    config.addinivalue_line(
        "markers",
        "default_min_size: tests/test_jax_native.py leaves the kernel's MIN_SIZE at its default",
    )
    config.addinivalue_line(
        "markers",
        "requires_trainable_backend: Keras' own marker, in its tests that tests/test_keras_suite.py "
        "runs (every backend here trains)",
    )


def _left_out(item, backend: str) -> bool:
    """A test of Keras' own suite (`tests/test_keras_suite.py`) listed there as left out, or one
    that Keras' own `skipif` skips on this backend."""
    module = getattr(item, "module", None)
    if not hasattr(module, "LEFT_OUT") or item.cls is None:
        return False
    name = f"{item.cls.__name__}::{item.name}"
    if name in module.LEFT_OUT or name in module.BACKEND_LEFT_OUT.get(backend, {}):
        return True
    return any(marker.args and marker.args[0] is True for marker in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    kept, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        wanted = (marker is None or backend in marker.args) and not _left_out(item, backend)
        (kept if wanted else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')})"


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


@pytest.fixture
def float_policy():
    """Restore the global dtype policy after a test that changes it."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Stash each test's call-phase report, for fixtures that check what the test did."""
    from tests.keras_suite import CALL_REPORT

    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report
