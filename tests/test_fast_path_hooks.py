"""A subclass that overrides a hook of the math gets the same numbers on the fast paths as on
the portable one (PyTorch's kernels and multi-tensor path; JAX's native Adam), for every
class of the registry: each kernel takes only the math as shipped (`backend/dispatch.py`)."""

import keras
import pytest

from tests.cases import BY_ID, CASES
from tests.problem import assert_same_run, make_problem, run_keras

pytestmark = pytest.mark.backends("torch", "jax")

ONE_PER_CLASS = list({case.cls: case for case in CASES}.values())
# Cases that take PyTorch's fused or multi-tensor kernels, or JAX's native Adam, and whose rule
# depends on the hook (step_count: the bias corrections and Nadam's schedule).
STEP_COUNT_CASES = ["adam", "adam-amsgrad", "adamw", "nadam", "adadelta-momentum"]
SLOT_CASES = ["sgd-momentum", "adagrad-outside", "rmsprop-outside", "adadelta", "adam", "nadam"]
HOOKED = [
    (BY_ID[i], _h)
    for _h, ids in (
        ("step_count", STEP_COUNT_CASES),
        ("slot_initializer", SLOT_CASES),
        ("step_scalars", ["adam", "adamw"]),
    )
    for i in ids
]


def _resumed(cls):
    """Counts its steps from 100: a warmed-up schedule or bias correction resumed."""

    class Resumed(cls):
        same_math_as = cls  # opted in: the kernels must still refuse the changed math

        def step_count(self):
            return super().step_count() + 100.0

    return Resumed


def _warm_started(cls):
    """Every slot starts at 0.5 instead of its initializer (`slot_initializer`)."""

    class WarmStarted(cls):
        same_math_as = cls  # opted in: the kernels must still refuse the changed math

        def slot_initializer(self, name):
            return keras.initializers.Constant(0.5)

    return WarmStarted


def _doubled(cls):
    """Adam's scalars (`step_scalars`) with the step's scale doubled."""

    class Doubled(cls):
        same_math_as = cls  # opted in: the kernels must still refuse the changed math

        def step_scalars(self, learning_rate, dtype):
            step_scale, second_moment_scale = super().step_scalars(learning_rate, dtype)
            return 2.0 * step_scale, second_moment_scale

    return Doubled


@pytest.fixture(autouse=True)
def native_kernel_for_every_size(monkeypatch, backend):
    if backend == "jax":  # the registry's problems are small: let the JAX kernel take them
        from keras_adaptive.backend import jax_native

        monkeypatch.setattr(jax_native, "MIN_SIZE", 1)


@pytest.mark.parametrize("case, hook", HOOKED, ids=[f"{case.id}-{hook}" for case, hook in HOOKED])
def test_an_overridden_hook_gives_the_portable_numbers_on_the_fast_path(case, hook):
    cls = {"step_count": _resumed, "slot_initializer": _warm_started, "step_scalars": _doubled}[hook](case.cls)
    problem = make_problem(steps=8)
    fast = run_keras(cls(**case.kwargs, multi_tensor=True), problem)
    portable = run_keras(cls(**case.kwargs, multi_tensor=False), problem)
    assert_same_run(fast, portable, rtol=2e-6, atol=1e-6)
    # The override matters: the plain class ends elsewhere (else this test could not fail).
    plain = run_keras(case.cls(**case.kwargs, multi_tensor=False), problem)
    with pytest.raises(AssertionError):
        assert_same_run(plain, portable, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=[case.id for case in ONE_PER_CLASS])
def test_a_subclass_takes_the_fast_paths_only_if_it_opts_in(case):
    from keras_adaptive.backend.dispatch import declared_class, keeps_shipped_math

    class Renamed(case.cls):
        pass

    class OptedIn(case.cls):
        same_math_as = case.cls

    class OptedInButResumed(_resumed(case.cls)):
        same_math_as = case.cls

    class Inherited(OptedIn):  # the opt-in is the class's own, not inherited
        pass

    assert declared_class(case.make()) is case.cls
    assert declared_class(Renamed(**case.kwargs)) is None and declared_class(Inherited(**case.kwargs)) is None
    assert declared_class(OptedIn(**case.kwargs)) is case.cls and keeps_shipped_math(OptedIn(**case.kwargs), case.cls)
    assert declared_class(OptedInButResumed(**case.kwargs)) is case.cls
    assert not keeps_shipped_math(OptedInButResumed(**case.kwargs), case.cls)


@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=[case.id for case in ONE_PER_CLASS])
def test_the_dispatch_decision_for_subclasses(case, backend):
    """What each backend does with a subclass: none without the opt-in; with it, the class's
    path, PyTorch's kernel and JAX's native pass only while the math is the parent's."""
    from keras_adaptive.backend import dispatch

    class Renamed(case.cls):
        pass

    class OptedIn(case.cls):
        same_math_as = case.cls

    class OptedInButResumed(_resumed(case.cls)):
        same_math_as = case.cls

    plain, renamed, opted, resumed = (c(**case.kwargs) for c in (case.cls, Renamed, OptedIn, OptedInButResumed))
    if backend == "torch":
        assert [o._takes_torch_path() for o in (plain, renamed, opted, resumed)] == [True, False, True, True]
        kernel = dispatch.torch_kernel_name(plain)
        assert [dispatch.torch_kernel_name(o) for o in (renamed, opted, resumed)] == [None, kernel, None]
    else:
        native = case.cls in dispatch.JAX
        assert [bool(dispatch.jax_kernel_name(o)) for o in (plain, renamed, opted, resumed)] == [
            native,
            False,
            native,
            False,
        ]
