"""Device checks that `python -m benchmarks.gpu` runs with pytest beside the conformance tests of tests/.

Run in the same pytest process as tests/test_reference.py and the others, so what it records
(the device the weights live on, the backend's precision settings, which fast path each
optimizer takes there) is where those tests ran. Not collected by `python -m tests` (the
name does not start with `test_`); it is named on pytest's command line:

    KERAS_BACKEND=torch KA_GPU_EXPECT_DEVICE=cuda python -m pytest benchmarks/gpu_conformance.py

Environment: `KA_GPU_EXPECT_DEVICE` (torch: "cuda" or "cpu"; JAX: "gpu" or "cpu"; unset: not
asserted), `KA_GPU_RECORD` (a JSON file the records are written to), `KA_GPU_QUICK=1` (a few
registry cases instead of all, for the CPU dry run).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

import keras_adaptive as ka
from benchmarks import specs
from tests.cases import BY_ID, CASES
from tests.problem import Problem, assert_same_run, make_problem, run_keras, run_reference

BACKEND = keras.backend.backend()
EXPECT = os.environ.get("KA_GPU_EXPECT_DEVICE") or None
QUICK = os.environ.get("KA_GPU_QUICK") == "1"
QUICK_IDS = ("sgd-momentum", "adagrad-outside", "rmsprop", "adamw", "nadam")
BF16_CASES = [c for c in CASES if not QUICK or c.id in QUICK_IDS]

_records: dict = {"backend": BACKEND}


def _record(key: str, value) -> None:
    _records[key] = value
    path = os.environ.get("KA_GPU_RECORD")
    if path:
        with open(path, "w") as f:
            json.dump(_records, f, indent=1, default=str)


def _device_of(value) -> str:
    """'cuda', 'gpu' or 'cpu': where a Keras variable's value lives."""
    if BACKEND == "torch":
        return value.device.type
    if BACKEND == "jax":
        return ",".join(sorted({d.platform for d in value.devices()}))
    return "cpu"


def test_weights_live_on_the_expected_device():
    """Keras puts new variables on the device this check asked for (KERAS_TORCH_DEVICE on torch,
    JAX_PLATFORMS on JAX), so the conformance tests of this process ran there."""
    v = keras.Variable(np.ones((3, 2), "float32"))
    info = {"variable_device": _device_of(v.value), "keras": keras.__version__}
    if BACKEND == "torch":
        import torch
        from keras.src.backend.torch import core

        info.update(
            torch=torch.__version__,
            keras_default_device=str(core.DEFAULT_DEVICE),
            cuda_available=torch.cuda.is_available(),
            # TF32 in matmuls/convolutions: optimizer steps have none, model.fit tests do.
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            float32_matmul_precision=torch.get_float32_matmul_precision(),
        )
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["cuda_capability"] = list(torch.cuda.get_device_capability(0))
    if BACKEND == "jax":
        import jax

        info.update(
            jax=jax.__version__,
            default_backend=jax.default_backend(),
            devices=[str(d) for d in jax.devices()],
            default_matmul_precision=str(jax.config.jax_default_matmul_precision),
        )
        kinds = {getattr(d, "device_kind", "") for d in jax.devices()}
        info["device_kind"] = sorted(kinds)
    info["NVIDIA_TF32_OVERRIDE"] = os.environ.get("NVIDIA_TF32_OVERRIDE")
    _record("environment", info)
    if EXPECT:
        assert info["variable_device"] == EXPECT, info


# --- torch: which kernel each optimizer takes on this device, and with what arguments ------------

EXPECTED_TORCH_PATH = {
    "sgd": "fused_sgd",
    "adagrad": "fused_adagrad",
    "rmsprop": "foreach_rmsprop",
    "adadelta": "foreach_adadelta",
    "adam": "fused_adamw",
    "adamw": "fused_adamw",
    "nadam": "foreach_nadam",
    "adam_amsgrad": "fused_adamw",
    "adagrad_inside": "multi_tensor",
    "rmsprop_inside": "multi_tensor",
}
FUSED = ("_fused_adamw_", "_fused_adagrad_", "_fused_sgd_")


@pytest.fixture
def fused_argument_devices(monkeypatch):
    """Wrap PyTorch's fused kernels: record the device of every tensor they are handed. The CUDA
    kernels read `state_steps` on the device (fused_adam_utils.cuh dereferences
    `tl.state_steps_addresses` inside the kernel; no TORCH_CHECK covers that list), so a CPU step
    tensor there is an illegal read, not a slow path."""
    import torch

    seen: list = []

    def wrap(name, kernel):
        def wrapper(*args, **kwargs):
            lists = [a for a in args if isinstance(a, (list, tuple))]
            devices = [sorted({t.device.type for t in a if isinstance(t, torch.Tensor)}) for a in lists]
            seen.append((name, devices))
            # Checked before the call: a CUDA kernel reading a host pointer is an illegal address, and
            # that error poisons the CUDA context of every later test in this process.
            for d in devices:
                assert d in ([], devices[0]), f"{name}: argument lists on {devices} (the first is the weights')"
            return kernel(*args, **kwargs)

        return wrapper

    try:  # the kernels are looked up (and cached) through keras_adaptive._compat.torch_kernel
        from keras_adaptive import _compat

        lookup = _compat.torch_kernel
        monkeypatch.setattr(
            _compat,
            "torch_kernel",
            lambda name: wrap(name, lookup(name)) if name.startswith("fused_") and lookup(name) else lookup(name),
        )
    except (ImportError, AttributeError):  # or called as torch._fused_*_ directly
        for name in FUSED:
            monkeypatch.setattr(torch, name, wrap(name, getattr(torch, name)))
    return seen


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend's fast paths")
@pytest.mark.parametrize("row", [r.id for r in specs.ROWS])
def test_torch_path_on_this_device(row, fused_argument_devices):
    """Every benchmark row takes the kernel README's table names for it on this device, every
    tensor argument of a fused kernel is on the weights' device, and three steps there give the
    portable path's numbers (tests/test_fast_path.py's tolerance)."""
    from keras_adaptive.backend import torch_fused

    spec = specs.row(row)
    problem = make_problem(steps=3)
    optimizer = eval(spec.keras_adaptive, {"ka": ka, "keras": keras})
    variables = [keras.Variable(w) for w in problem.weights]
    optimizer.build(variables)
    path = torch_fused.describe(optimizer, variables)
    paths = dict(_records.get("torch_paths", {}), **{row: path})
    _record("torch_paths", paths)
    assert path == EXPECTED_TORCH_PATH[row]
    fast = run_keras(eval(spec.keras_adaptive, {"ka": ka, "keras": keras}), problem)
    portable = run_keras(eval(spec.keras_adaptive[:-1] + ", multi_tensor=False)", {"ka": ka, "keras": keras}), problem)
    assert_same_run(fast, portable, 2e-6, 1e-6)
    weights_device = _device_of(variables[0].value)
    calls = dict(_records.get("fused_argument_devices", {}))
    calls[row] = fused_argument_devices[:1]
    _record("fused_argument_devices", calls)
    if path.startswith("fused_"):
        assert fused_argument_devices, "the fused kernel was not called"
        for name, lists in fused_argument_devices:
            for devices in lists:
                assert devices in ([], [weights_device]), (name, lists)


# --- JAX: the native Adam kernel is for JAX's CPU backend only -------------------------------------


@pytest.mark.skipif(BACKEND != "jax", reason="the JAX backend's native kernel")
def test_jax_native_kernel_only_on_the_cpu_backend():
    """On JAX's CPU backend Adam takes the native kernel; on any other default backend it steps
    aside (its FFI target is registered for the CPU platform only), and the compiled step
    then holds no call of it."""
    import jax

    from keras_adaptive.backend import jax_native

    optimizer = ka.AdamW(learning_rate=0.01)
    taken = optimizer._takes_jax_native_path()
    variables = [keras.Variable(np.ones((256, 256), "float32"))]
    optimizer.build(variables)
    grads = [keras.ops.ones((256, 256))]
    text = (
        jax.jit(optimizer.stateless_apply)
        .lower([v.value for v in optimizer.variables], grads, [v.value for v in variables])
        .as_text()
    )
    _record(
        "jax_native",
        {
            "default_backend": jax.default_backend(),
            "taken": taken,
            "kernel_in_compiled_step": jax_native.TARGET in text,
        },
    )
    if jax.default_backend() == "cpu":
        assert taken == jax_native.available()
    else:
        assert not taken
        assert jax_native.TARGET not in text


@pytest.mark.skipif(BACKEND != "jax", reason="the JAX backend's native kernel")
def test_jax_native_kernel_steps_aside_when_the_default_backend_is_not_cpu(monkeypatch):
    """What a GPU machine looks like to `jax_native.accepts`, simulated on any machine: the
    default backend is 'gpu', and the kernel is neither taken nor built."""
    import jax

    from keras_adaptive.backend import jax_native

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax_native, "available", lambda: pytest.fail("built on a GPU backend"))
    assert not jax_native.accepts(ka.Adam())
    assert not ka.AdamW()._takes_jax_native_path()


# --- bfloat16 weights: every case, on this device ---------------------------------------------------

BF16_ULP = 2.0**-7  # spacing of bfloat16 numbers in [1, 2)


def _bf16_problem(steps: int) -> Problem:
    """The shared problem with weights and gradients rounded to bfloat16 (held as exact float32)."""
    import ml_dtypes

    p = make_problem(steps=steps)
    r = lambda a: a.astype(ml_dtypes.bfloat16).astype("float32")  # noqa: E731
    return Problem([r(w) for w in p.weights], [[r(g) for g in gs] for gs in p.grads])


@pytest.mark.parametrize("case", BF16_CASES, ids=[c.id for c in BF16_CASES])
def test_bfloat16_weights(case):
    """bfloat16 weights with float32 slots. Each weight is within its rounding budget of the float64
    reference, half a bfloat16 unit of its size per step (an update below that is rounded away, as it
    should be), and the fast path within that budget of the portable path (the two round some steps'
    results the other way: up to 50 units apart on the CPU, relative to a weight near 0, 0.3 budgets);
    the slots, which see only the gradients, match the reference at float32's tolerance (25-step
    tests' 2e-5 / 2e-6)."""
    steps = 12
    problem = _bf16_problem(steps)
    optimizer = case.make()
    fast_w, fast_s = run_keras(optimizer, problem, dtype="bfloat16")
    assert {keras.backend.standardize_dtype(v.dtype) for v in optimizer.variables if len(v.shape)} <= {"float32"}
    port_w, _ = run_keras(case.make(multi_tensor=False), problem, dtype="bfloat16")
    want_w, want_s = run_reference(case, problem)
    for i, (got, port, want) in enumerate(zip(fast_w, port_w, want_w)):
        assert np.all(np.isfinite(got))
        budget = steps * (BF16_ULP / 2) * (np.max(np.abs(want)) + 1e-3)
        assert np.max(np.abs(got - want)) <= budget, ("reference", i, np.max(np.abs(got - want)), budget)
        assert np.max(np.abs(got - port)) <= budget, ("portable", i, np.max(np.abs(got - port)), budget)
        for name in want_s[i]:
            np.testing.assert_allclose(fast_s[i][name], want_s[i][name], rtol=2e-5, atol=2e-6, err_msg=f"{name} {i}")
    _record("bf16_cases", sorted(set(_records.get("bf16_cases", [])) | {case.id}))


def test_bfloat16_check_is_sensitive():
    """The budget above is tight enough to see a wrong step: plain SGD at twice the learning rate
    ends outside it."""
    steps = 12
    problem = _bf16_problem(steps)
    case = BY_ID["sgd"]
    got_w, _ = run_keras(case.make(learning_rate=2 * case.kwargs["learning_rate"]), problem, dtype="bfloat16")
    want_w, _ = run_reference(case, problem)
    over = [np.max(np.abs(g - w)) / (steps * BF16_ULP / 2 * (np.max(np.abs(w)) + 1e-3)) for g, w in zip(got_w, want_w)]
    assert max(over) > 1.0, over
