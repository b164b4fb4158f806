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
        "markers", "default_min_size: tests/test_jax_native.py leaves the kernel's MIN_SIZE at its default",
    )


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    kept, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        (kept if marker is None or backend in marker.args else deselected).append(item)
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
