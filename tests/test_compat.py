"""`keras_adaptive/_compat.py`: a Keras without the base-optimizer internals we build on is
refused at import with its version named; a Keras or PyTorch without what a fast path needs
turns that path off, with one warning, and the portable numbers."""

import keras
import pytest
from keras.src.optimizers.base_optimizer import BaseOptimizer

from keras_adaptive import _compat
from tests.cases import BY_ID
from tests.problem import assert_same_run, make_problem, run_keras


@pytest.mark.parametrize("method", _compat.KERAS_METHODS)
def test_a_keras_without_a_required_method_is_named_unsupported(method, monkeypatch):
    monkeypatch.delattr(BaseOptimizer, method)
    with pytest.raises(ImportError, match=f"keras {keras.__version__}.*`{method}`"):
        _compat._check_keras()


def test_the_installed_keras_has_everything():
    _compat._check_keras()


@pytest.fixture
def torch_parts(monkeypatch):
    """`_compat.torch_parts()` as a dict the test may empty; the caches are reset around it."""
    parts = dict(_compat.torch_parts())
    for cached in (_compat.torch_fast_path_available, _compat.torch_kernel):
        cached.cache_clear()
    monkeypatch.setattr(_compat, "torch_parts", lambda: parts)
    yield parts
    for cached in (_compat.torch_fast_path_available, _compat.torch_kernel):
        cached.cache_clear()


@pytest.mark.backends("torch")
@pytest.mark.parametrize("case_id", ["adam", "adagrad-outside", "sgd-momentum", "rmsprop-outside", "nadam"])
def test_a_missing_torch_kernel_falls_back_with_one_warning(case_id, torch_parts):
    from keras_adaptive.backend import torch_fused

    case = BY_ID[case_id]
    kernel = torch_fused.select(case.make())
    assert kernel is not None
    torch_parts[kernel.name] = None
    _compat.torch_kernel.cache_clear()  # looked up once per process, as it would be at start-up
    problem = make_problem(steps=6)
    with pytest.warns(RuntimeWarning, match="no `torch") as caught:
        assert torch_fused.select(case.make()) is None
        fast = run_keras(case.make(multi_tensor=True), problem)
    assert len([w for w in caught if w.category is RuntimeWarning]) == 1
    assert_same_run(fast, run_keras(case.make(multi_tensor=False), problem), rtol=2e-6, atol=1e-6)


@pytest.mark.backends("torch")
def test_a_keras_without_the_torch_internals_runs_the_portable_path(torch_parts):
    torch_parts["variable_value"] = None
    optimizer = BY_ID["adam"].make()
    with pytest.warns(RuntimeWarning, match="fast path is off.*variable_value"):
        assert not optimizer._takes_torch_path()
    run_keras(optimizer, make_problem(steps=2))  # trains, on the portable path
