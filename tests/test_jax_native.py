"""JAX's native Adam kernel (`keras_adaptive/backend/jax_native.py`) gives the portable path's numbers.

On the JAX backend Adam and AdamW take the kernel by default (`multi_tensor=True`), so every
other test of the suite that runs them on JAX (the float64 references, the peers, training,
checkpoints) runs the kernel too; here it is held against the portable per-variable path
(`multi_tensor=False`) on every Adam case of the registry, with and without Keras' base
arguments, on weights large enough to be split across threads, inside `model.fit`'s compiled
step, beside half-precision weights, and when it cannot be built.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_adaptive
from tests.cases import BY_ID, CASES
from tests.problem import assert_same_run, make_problem, run_keras, to_numpy

pytestmark = pytest.mark.backends("jax")

NATIVE_CASES = [case for case in CASES if issubclass(case.cls, keras_adaptive.Adam)]

# Float32 rounding: XLA may reassociate the portable path's products (it folds constants and
# turns divisions by scalars into products), the kernel follows `update_step` to the letter.
RTOL, ATOL = 2e-6, 1e-6

# Two weights over the kernel's 32,768-element chunk (one not a multiple of it, so chunks of
# several sizes), split across XLA's threads, and two small ones.
LARGE_SHAPES = [(300, 257), (5,), (70001,), (3, 4)]


@pytest.fixture(autouse=True)
def kernel_for_every_size(request, monkeypatch):
    """The registry's problems have small weights, which the kernel leaves to XLA (`MIN_SIZE`):
    here it takes every float32 weight, except in the tests marked `default_min_size`."""
    from keras_adaptive.backend import jax_native

    if "default_min_size" not in request.keywords:
        monkeypatch.setattr(jax_native, "MIN_SIZE", 1)


def _assert_same(fast, portable):
    assert_same_run(fast, portable, RTOL, ATOL)


def _extras(case):
    schedule = keras.optimizers.schedules.ExponentialDecay(case.kwargs["learning_rate"], 4, 0.7)
    return dict(learning_rate=schedule, clipnorm=2.0, gradient_accumulation_steps=2, weight_decay=0.01)


def _record_portable_updates(monkeypatch) -> list:
    """Record each variable Keras' base optimizer hands to `update_step` (patching `update_step`
    itself would turn the kernel off: a changed `update_step` is not the kernel's algorithm)."""
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    calls = []
    original = BaseOptimizer._backend_update_step

    def recording(self, grads, variables, learning_rate):
        calls.extend(1 for _ in variables)
        return original(self, grads, variables, learning_rate)

    monkeypatch.setattr(BaseOptimizer, "_backend_update_step", recording)
    return calls


def test_the_kernel_is_built_and_taken():
    for case in NATIVE_CASES:
        assert case.make()._takes_jax_native_path(), case.id
        assert not case.make(multi_tensor=False)._takes_jax_native_path(), case.id
    assert not BY_ID["nadam"].make()._takes_jax_native_path()


@pytest.mark.parametrize("case", NATIVE_CASES, ids=[c.id for c in NATIVE_CASES])
def test_native_equals_portable(case):
    problem = make_problem(steps=25)
    _assert_same(run_keras(case.make(), problem), run_keras(case.make(multi_tensor=False), problem))


@pytest.mark.parametrize("case", NATIVE_CASES, ids=[c.id for c in NATIVE_CASES])
def test_native_matches_numpy_reference(case):
    """The kernel against the case's NumPy float64 reference, as `tests/test_reference.py` holds the
    portable path (same tolerance)."""
    from tests.problem import run_reference
    from tests.test_reference import ATOL as REF_ATOL
    from tests.test_reference import RTOL as REF_RTOL

    problem = make_problem(steps=25)
    want_w, want_s = run_reference(case, problem)
    got_w, got_s = run_keras(case.make(), problem)
    for i, (got, want) in enumerate(zip(got_w, want_w)):
        np.testing.assert_allclose(got, want, rtol=REF_RTOL, atol=REF_ATOL, err_msg=f"weight {i}")
        for name in want_s[i]:
            np.testing.assert_allclose(got_s[i][name], want_s[i][name], rtol=REF_RTOL, atol=REF_ATOL, err_msg=name)


@pytest.mark.parametrize("case", NATIVE_CASES, ids=[c.id for c in NATIVE_CASES])
def test_native_equals_portable_with_schedule_clipping_accumulation_and_decay(case):
    problem = make_problem(steps=12)
    _assert_same(
        run_keras(case.make(**_extras(case)), problem),
        run_keras(case.make(multi_tensor=False, **_extras(case)), problem),
    )


@pytest.mark.default_min_size
@pytest.mark.parametrize("case_id", ["adam", "adamw-amsgrad", "adam-inside"])
def test_large_weights_split_across_threads_small_ones_on_xla(case_id, monkeypatch):
    """At the default `MIN_SIZE` the two large weights take the kernel (in chunks, on XLA's
    threads), the two small ones `update_step`, in the same step; all as on the portable path."""
    case = BY_ID[case_id]
    problem = make_problem(steps=6, shapes=LARGE_SHAPES)
    calls = _record_portable_updates(monkeypatch)
    fast = run_keras(case.make(weight_decay=0.02), problem)
    assert len(calls) == 2 * 6
    _assert_same(fast, run_keras(case.make(multi_tensor=False, weight_decay=0.02), problem))


def test_the_step_is_one_kernel_call_for_float32_weights(monkeypatch):
    """No float32 weight reaches `update_step`; the compiled step has the kernel's call."""
    import jax

    calls = _record_portable_updates(monkeypatch)
    problem = make_problem(steps=2)
    optimizer = BY_ID["adamw"].make()
    variables = [keras.Variable(w) for w in problem.weights]
    optimizer.build(variables)
    grads = [keras.ops.convert_to_tensor(g) for g in problem.grads[0]]
    lowered = jax.jit(optimizer.stateless_apply).lower(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    assert calls == []
    assert lowered.as_text().count("keras_adaptive_adam") == 1


def test_half_precision_weights_take_update_step_beside_the_kernel(monkeypatch):
    """Weights of float16 (whose arithmetic `update_step` does in float32) are left to the
    portable path, the float32 ones to the kernel, in one step."""
    calls = _record_portable_updates(monkeypatch)
    problem = make_problem(steps=8)
    results = []
    for multi in (True, False):
        calls.clear()
        optimizer = BY_ID["adamw"].make(multi_tensor=multi)
        variables = [keras.Variable(w, dtype="float16" if i % 2 else "float32") for i, w in enumerate(problem.weights)]
        for grads in problem.grads:
            optimizer.apply(
                [keras.ops.convert_to_tensor(g, dtype=v.dtype) for g, v in zip(grads, variables)], variables
            )
        results.append([to_numpy(v) for v in variables])
        halves = sum(1 for i in range(len(variables)) if i % 2)
        assert len(calls) == len(problem.grads) * (halves if multi else len(variables))
    for fast, portable in zip(*results):
        np.testing.assert_allclose(fast, portable, rtol=RTOL, atol=ATOL)


def test_weight_decay_in_the_kernel_spares_excluded_weights():
    problem = make_problem(steps=10)
    results = []
    for multi in (True, False):
        optimizer = BY_ID["adamw"].make(multi_tensor=multi, weight_decay=0.05)
        variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(problem.weights)]
        optimizer.exclude_from_weight_decay(var_names=["w0"])
        for grads in problem.grads:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        results.append([to_numpy(v) for v in variables])
    for fast, portable in zip(*results):
        np.testing.assert_allclose(fast, portable, rtol=RTOL, atol=ATOL)
    # The exclusion matters: without it the first weight ends elsewhere.
    optimizer = BY_ID["adamw"].make(weight_decay=0.05)
    variables = [keras.Variable(w) for w in problem.weights]
    for grads in problem.grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    assert np.max(np.abs(to_numpy(variables[0]) - results[0][0])) > 1e-4


def test_native_equals_portable_in_fit():
    """In `model.fit`'s compiled step (state donated, the kernel updating it in place)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 300)).astype("float32")
    y = rng.integers(0, 10, size=256)
    weights = []
    for multi in (True, False):
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [keras.Input((300,)), keras.layers.Dense(200, activation="relu"), keras.layers.Dense(10)]
        )
        model.compile(
            optimizer=keras_adaptive.AdamW(learning_rate=0.01, amsgrad=True, multi_tensor=multi),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        weights.append([to_numpy(w) for w in model.weights])
    for fast, portable in zip(*weights):
        np.testing.assert_allclose(fast, portable, rtol=1e-5, atol=1e-5)


def test_not_taken_under_a_distribution():
    """An FFI call has no sharding rule: with a `keras.distribution` set, the portable path runs."""
    import jax

    optimizer = BY_ID["adam"].make()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    try:
        assert not optimizer._takes_jax_native_path()
    finally:
        keras.distribution.set_distribution(None)
    assert optimizer._takes_jax_native_path()


def _run_in_fresh_process(script: str, **env_vars: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": root, **env_vars}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_first_use_builds_the_kernel_into_an_empty_cache(tmp_path):
    """What a user's first Adam step on JAX does: compile the kernel with the machine's compiler,
    cache it, and take it, without a warning."""
    _run_in_fresh_process(
        """
        import warnings
        warnings.simplefilter("error", RuntimeWarning)
        import keras_adaptive
        from keras_adaptive.backend import jax_native
        assert not jax_native.library_path().exists()
        assert keras_adaptive.Adam()._takes_jax_native_path()
        assert jax_native.library_path().exists()
        print("ok")
    """,
        KERAS_ADAPTIVE_CACHE=str(tmp_path),
    )
    assert len(list(tmp_path.glob("jax_adam-*.so"))) == 1


def test_without_a_compiler_it_warns_once_and_runs_the_portable_path(tmp_path):
    """A machine with no C++ compiler: a RuntimeWarning naming the cause, then the same numbers."""
    script = """
        import warnings
        import keras, numpy as np
        import keras_adaptive
        from tests.problem import make_problem, run_keras
        problem = make_problem(steps=5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer = keras_adaptive.AdamW(learning_rate=0.01)
            fast = run_keras(optimizer, problem)
            assert not optimizer._takes_jax_native_path()
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "no-such-compiler" in messages[0], messages
        portable = run_keras(keras_adaptive.AdamW(learning_rate=0.01, multi_tensor=False), problem)
        for a, b in zip(fast[0], portable[0]):
            np.testing.assert_array_equal(a, b)
        print("ok")
    """
    _run_in_fresh_process(script, CXX="no-such-compiler", KERAS_ADAPTIVE_CACHE=str(tmp_path))
    assert list(tmp_path.glob("*.so")) == []
