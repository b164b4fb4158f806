"""The one registry (`tests/cases.py`) covers every optimizer of the package, and an optimizer
added as CONTRIBUTING.md says is picked up by every generic test."""

import os
import re
import subprocess
import sys

import keras
import pytest

import keras_adaptive
from tests import reference
from tests.cases import BY_CLASS, BY_ID, CASES, REPRESENTATIVES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cls", list(keras_adaptive.OPTIMIZERS.values()), ids=list(keras_adaptive.OPTIMIZERS))
def test_every_optimizer_has_its_cases_and_references(cls):
    own = [c for c in CASES if c.cls is cls]
    assert own, f"{cls.__name__} has no case in tests/cases.py"
    assert cls in BY_CLASS, f"{cls.__name__} has no ClassCases entry in tests/cases.BY_CLASS"
    assert BY_ID[BY_CLASS[cls].representative].cls is cls
    for case in own:
        assert getattr(reference, case.reference.__name__, None) is case.reference, (
            f"{case.id}: its reference must be a function of tests/reference.py"
        )
        assert case.reference in reference.EFFECTIVE_LR, (
            f"{case.id}: tests/reference.py's EFFECTIVE_LR has no effective learning rate for {case.reference.__name__}"
        )


def _collected(*args):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


GENERIC = [
    "tests/test_reference.py",
    "tests/test_effective_learning_rate.py",
    "tests/test_keras.py",
    "tests/test_base_arguments.py",
    "tests/test_properties.py",
    "tests/test_training.py",
    "tests/test_precision.py",
    "tests/test_state_layout.py",
    "tests/test_fast_path.py",
    "tests/test_checkpoints.py",
]


def test_an_added_optimizer_is_picked_up_by_every_generic_test():
    """Every test function that runs over the registry's cases or classes (it has a test of
    SGD's) gets one of the added optimizer (tests/toy_optimizer.py), and a few of them (its
    reference, serialization, `fit`) pass. (It declares no fast path: the tests of the torch
    path's weight decay, which run over the classes declared in backend/fast_paths.py, leave it
    out, and that is what they should do.)"""
    items = _collected("-p", "tests.toy_optimizer", *GENERIC)

    def function(item):
        return re.sub(r"\[.*\]$", "", item)

    generic = {function(i) for i in items if re.search(r"\[(sgd[^\]]*|SGD[^\]]*)\]$", i)}
    assert len(generic) >= 10
    with_toy = {function(i) for i in items if re.search(r"sign[-_]descent|SignDescent", i)}
    fast_path_only = {"tests/test_fast_path.py::test_weight_decay_on_the_torch_path_spares_excluded_weights"}
    assert sorted(generic - with_toy - fast_path_only) == []
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.toy_optimizer",
            "tests/test_reference.py",
            "tests/test_keras.py",
            "-k",
            "(sign-descent or SignDescent) and (reference or serialization or fit_with)",
            "tests/test_effective_learning_rate.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"(\d+) passed", result.stdout)


def test_without_the_plugin_the_toy_is_absent():
    assert "sign-descent" not in BY_ID and "sign-descent" not in REPRESENTATIVES
