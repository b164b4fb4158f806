"""Adam's whole step in one native pass over memory, on JAX's CPU backend.

XLA:CPU compiles each output of an element-wise update to a loop of its own: Adam's new
m, v and weight are three loops, and the third reads the first two's results back from
memory. That moves 40 bytes per float32 parameter where the update needs 28, so Keras'
Adam, optax's and our portable one all run at about 1.4x the memory-bandwidth bound on
large weights. `jax_adam.cc` does the step in one loop over chunks of every weight, in
place, on XLA's own intra-op threads, through `jax.ffi`.

It is C++, so it is compiled on first use with the machine's C++ compiler (`$CXX`, else
`c++`/`g++`/`clang++`; `-O3 -march=native`, IEEE float arithmetic: no fast-math, no FMA
contraction) and the XLA FFI headers that ship with jaxlib, and cached under
`$KERAS_ADAPTIVE_CACHE` (default `~/.cache/keras_adaptive`), keyed by the source, jaxlib's
version, the compiler, its flags and the CPU's features. Without a compiler, or if the build fails, it warns once and the
portable path runs: the same numbers, slower.

Taken by `Adam` and `AdamW` as shipped (any configuration: AMSGrad, bias correction on or
off, epsilon inside or outside, decoupled weight decay, which is folded into the same pass)
for float32 weights of `MIN_SIZE` elements or more, when the optimizer's `multi_tensor` is
on, JAX runs on the CPU and no `keras.distribution` is set (an FFI call has no sharding
rule). Other weights and optimizers run `update_step` as usual, in the same step.
`tests/test_jax_native.py` checks it against the portable path and the float64 references on
every Adam case of the registry.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import keras
import numpy as np
from keras import backend, ops

from keras_adaptive.backend import dispatch

TARGET = "keras_adaptive_adam"
# Weights smaller than this (in elements) stay on XLA's fused loops. The kernel pays a little per
# weight (about 1-2 µs more than XLA's loops here); it wins from ~20K elements on, where a weight's
# three loops no longer run from cache: 200 weights of 5,000 took 1.18 ms against XLA's 0.98, 12 of
# 80,000 0.24 against 0.36 (`jax.jit` of the update alone, interleaved).
MIN_SIZE = 32768
SOURCE = Path(__file__).with_name("jax_adam.cc")
FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-ffp-contract=off",
    "-fopenmp-simd",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-w",
)

_lock = threading.Lock()
_state: dict = {}  # "ready": bool, once the build has been tried in this process


def _cpu_features() -> str:
    """What `-march=native` compiles for: a cache shared by machines must not mix them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def _cache_dir() -> Path:
    root = os.environ.get("KERAS_ADAPTIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "keras_adaptive"
    )
    return Path(root)


def library_path() -> Path:
    """Where this machine's build of the kernel is (or will be) cached."""
    import jaxlib

    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        jaxlib.__version__.encode(),
        str(_compiler()).encode(),
        " ".join(FLAGS).encode(),
        _cpu_features().encode(),
        platform.platform().encode(),
    ):
        key.update(part)
    return _cache_dir() / f"jax_adam-{key.hexdigest()[:16]}.so"


def _build(target: Path) -> None:
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++ or clang++)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final name and renamed: processes building at once never load half a file.
    fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", partial]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stderr[-2000:]}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def available() -> bool:
    """Whether the kernel is built and registered with XLA in this process (built on the first call)."""
    with _lock:
        if "ready" not in _state:
            _state["ready"] = False
            try:
                path = library_path()
                if not path.exists():
                    _build(path)
                library = ctypes.cdll.LoadLibrary(str(path))
                jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.KerasAdaptiveAdam), platform="cpu")
                _state["library"] = library  # kept alive for XLA
                _state["ready"] = True
            except Exception as error:  # noqa: BLE001 - any failure means the portable path
                warnings.warn(
                    f"keras_adaptive: the native Adam kernel for JAX's CPU backend is not available, so Adam "
                    f"runs its portable path (same numbers, about 1.4x slower on large weights): {error}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return _state["ready"]


def accepts(optimizer: Any) -> bool:
    """Whether this optimizer's step can take the kernel (its weights are checked by `takes`)."""
    return (
        dispatch.jax_kernel_name(optimizer) == "native_adam"  # Adam, AdamW (backend/fast_paths.py)
        and jax.default_backend() == "cpu"
        and keras.distribution.distribution() is None
        and available()
    )


def takes(optimizer: Any, variable: Any) -> bool:
    """Whether this weight is updated (and decayed) by the kernel: float32, of `MIN_SIZE` elements
    or more, with its slots."""
    return (
        backend.standardize_dtype(variable.dtype) == "float32"
        and int(np.prod(variable.shape)) >= MIN_SIZE
        and not optimizer._overwrite_variable_with_gradient(variable)
    )


def _scalars(optimizer: Any, learning_rate: Any) -> dict:
    """The kernel's scalar operands by name, as `Adam.step_scalars` computes them for `update_step`."""
    step_scale, second_moment_scale = optimizer.step_scalars(learning_rate, "float32")
    return {
        "learning_rate": ops.cast(learning_rate, "float32"),
        "step_scale": step_scale,
        "second_moment_scale": ops.ones((), "float32") if second_moment_scale is None else second_moment_scale,
    }


def _attributes(optimizer: Any) -> dict:
    """The kernel's constant attributes by name: the constants of `update_step` as its float32
    arithmetic rounds them (`ema(m, g, beta)` is `beta * m + (1 - beta) * g`, `1 - beta` taken in
    float64 first)."""
    b1, b2 = float(optimizer.beta_1), float(optimizer.beta_2)
    return {
        "beta_1": np.float32(b1),
        "one_minus_beta_1": np.float32(1.0 - b1),
        "beta_2": np.float32(b2),
        "one_minus_beta_2": np.float32(1.0 - b2),
        "epsilon": np.float32(optimizer.epsilon),
        "amsgrad": bool(optimizer.amsgrad),
        "inside": optimizer.epsilon_placement == "inside",
    }


# Per weight, the kernel's operands in order, and which of them it updates in place (its results).
OPERANDS = ("w", "g", "m", "v", "v_max")
IN_PLACE = ("w", "m", "v", "v_max")


def update(optimizer: Any, grads: Sequence[Any], variables: Sequence[Any], learning_rate: Any) -> list:
    """Update the weights the kernel `takes` (their decoupled weight decay included) in one
    FFI call; return the (gradient, variable) pairs left for `update_step`."""
    names = optimizer.slot_names()  # first_moment, second_moment (, max_second_moment): m, v (, v_max)
    native, rest = [], []
    for grad, variable in zip(grads, variables):
        (native if takes(optimizer, variable) else rest).append((grad, variable))
    if not native:
        return rest
    wd = optimizer.weight_decay or 0.0
    decay = np.array([wd if wd and optimizer._use_weight_decay(v) else 0.0 for _, v in native], np.float32)
    scalars = _scalars(optimizer, learning_rate)
    leading = [scalars["learning_rate"], scalars["step_scale"], scalars["second_moment_scale"], decay]
    operands, results, aliases, targets = [], [], {}, []
    for grad, variable in native:
        slots = optimizer.slots(variable, *names)
        state = dict(zip(("w", "m", "v", "v_max"), [variable, *slots]))
        values = {name: target.value for name, target in state.items()}
        values["g"] = ops.cast(grad, "float32")
        for name in OPERANDS:
            if name not in values:
                continue
            if name in IN_PLACE:
                aliases[len(leading) + len(operands)] = len(results)
                results.append(jax.ShapeDtypeStruct(values[name].shape, values[name].dtype))
                targets.append(state[name])
            operands.append(values[name])
    call = jax.ffi.ffi_call(TARGET, results, input_output_aliases=aliases)
    new = call(*leading, *operands, **_attributes(optimizer))
    for target, value in zip(targets, new):
        optimizer.assign(target, value)
    return rest
