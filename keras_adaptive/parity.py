"""Backend-switch testing: the same model trained on TensorFlow, JAX and PyTorch, compared.

`run_parity(model, data, "adam", steps=50)` makes the initial weights and the batches once,
saves them to a temporary .npz, and trains one process per backend (`python -m
keras_adaptive.parity_worker`, `KERAS_BACKEND` set before Keras is imported) from those
weights on those batches with `train_on_batch`, then compares every pair of backends: the
largest per-step loss difference, the first step beyond the tolerance, the largest
final-weight difference. `keras_adaptive.testing.assert_backends_agree` and the command
`keras-adaptive parity` are built on it.

This module imports no Keras, and nothing of keras_adaptive at import (the package's
`__init__` imports Keras): the command line loads it by path and only orchestrates. Two
values a and b agree when ``|a - b| <= tolerance * max(1, |a|, |b|)``: relative above 1,
absolute below.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_TOLERANCE = 1e-3
DEFAULT_STEPS = 50

# Set in each worker's environment, so that they are read when its engine is first imported
# (`python -m keras_adaptive.parity_worker` imports Keras with the package, before its own code runs).
ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",  # oneDNN's CPU kernels reorder sums (TensorFlow says so at import)
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # what torch's deterministic mode needs from cuBLAS
}
XLA_DETERMINISM = "--xla_gpu_deterministic_ops=true"

# What the workers cannot make equal, said in every report.
NOT_CONTROLLED = (
    "float32 rounding of each backend's own kernels (the summation order of matmuls and convolutions, "
    "transcendental functions): about 1e-7 relative per operation, which training can grow",
    "XLA's fusion and reordering (JAX always; TensorFlow with jit_compile)",
    "random numbers (Dropout, noise layers, random augmentation, unseeded initializers): each backend draws "
    "its own, different even from the same seed",
    "ties in max pooling: where a window holds equal values (a constant background, where a convolution gives "
    "its bias everywhere), PyTorch sends the gradient to another position than TensorFlow and JAX",
    "on a GPU, kernels without a deterministic variant (the worker asks for determinism; an op without one "
    "raises an error on torch and TensorFlow)",
)


def _agree_scale(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / max(1, |a|, |b|), with two NaNs (or equal infinities) counted as equal and
    one non-finite value against a finite one as infinitely far."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.abs(a - b) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    same = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    return np.where(same, 0.0, np.where(np.isfinite(scaled), scaled, np.inf))


@dataclass
class BackendRun:
    """One backend's run: per-step losses, final weights, and what it ran on."""

    backend: str
    losses: np.ndarray
    weights: list[np.ndarray]
    info: dict = field(default_factory=dict)


@dataclass
class PairResult:
    a: str
    b: str
    max_loss_difference: float  # the largest |loss_a - loss_b| over the steps
    max_loss_step: int  # the step (from 1) where it is
    first_step_beyond: int | None  # the first step (from 1) whose losses disagree, None if none
    max_weight_difference: float  # the largest |w_a - w_b| over every final weight
    weights_beyond: bool

    @property
    def agree(self) -> bool:
        return self.first_step_beyond is None and not self.weights_beyond


def compare_runs(runs: dict[str, BackendRun], tolerance: float) -> list[PairResult]:
    """Every pair of backends, in the order given."""
    pairs = []
    for (a, run_a), (b, run_b) in itertools.combinations(runs.items(), 2):
        la, lb = run_a.losses.astype(np.float64), run_b.losses.astype(np.float64)
        with np.errstate(invalid="ignore"):
            raw = np.where(np.isnan(la) & np.isnan(lb), 0.0, np.abs(la - lb))
        raw = np.where(np.isnan(raw), np.inf, raw)
        beyond = np.nonzero(_agree_scale(la, lb) > tolerance)[0]
        weight_max, weight_beyond = 0.0, False
        for wa, wb in zip(run_a.weights, run_b.weights):
            if wa.size:
                with np.errstate(invalid="ignore"):
                    difference = np.abs(wa.astype(np.float64) - wb.astype(np.float64))
                weight_max = max(weight_max, float(np.nanmax(np.where(np.isnan(difference), np.inf, difference))))
                weight_beyond |= bool(np.any(_agree_scale(wa, wb) > tolerance))
        worst = int(np.argmax(raw))
        pairs.append(
            PairResult(
                a,
                b,
                float(raw[worst]),
                worst + 1,
                int(beyond[0]) + 1 if beyond.size else None,
                weight_max,
                weight_beyond,
            )
        )
    return pairs


@dataclass
class ParityReport:
    """The runs, their pairwise comparison and what was and was not controlled."""

    runs: dict[str, BackendRun]
    pairs: list[PairResult]
    tolerance: float
    steps: int
    optimizer: str
    controlled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(p.agree for p in self.pairs)

    def text(self) -> str:
        lines = [
            f"{self.steps} steps of {self.optimizer} from the same weights on the same batches; "
            f"tolerance {self.tolerance:g} (|a - b| <= tolerance * max(1, |a|, |b|))",
            "",
        ]
        rows = [
            [
                r.backend,
                r.info.get("engine", ""),
                r.info.get("device", ""),
                f"{r.losses[0]:.6g}",
                f"{r.losses[-1]:.6g}",
                f"{r.info.get('seconds', float('nan')):.1f}",
            ]
            for r in self.runs.values()
        ]
        lines += _table(["backend", "engine", "device", "first loss", "last loss", "seconds"], rows)
        lines.append("")
        rows = [
            [
                f"{p.a} vs {p.b}",
                f"{p.max_loss_difference:.3g} (step {p.max_loss_step})",
                "-" if p.first_step_beyond is None else str(p.first_step_beyond),
                f"{p.max_weight_difference:.3g}" + (" (beyond)" if p.weights_beyond else ""),
                "agree" if p.agree else "DIFFER",
            ]
            for p in self.pairs
        ]
        lines += _table(
            ["pair", "largest loss difference", "first step beyond", "largest final-weight difference", "verdict"],
            rows,
        )
        lines += ["", "set for this test:"] + [f"  - {c}" for c in self.controlled]
        lines += ["not controlled:"] + [f"  - {c}" for c in NOT_CONTROLLED]
        if self.warnings:
            lines += ["warnings:"] + [f"  - {w}" for w in self.warnings]
        lines.append("")
        lines.append("within tolerance" if self.agree else "BEYOND TOLERANCE")
        return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    return out + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]


# --- arguments -------------------------------------------------------------------------


def check_spec(spec: Any, argument: str) -> str:
    """A 'module:function' string checked without importing the module (importing the
    user's module could import Keras, which this process must not); a function given is
    checked by `user_code.spec_of` (it must be importable by the workers)."""
    if not isinstance(spec, str):
        from keras_adaptive.user_code import spec_of

        return spec_of(spec, argument)
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(
            f"Argument `{argument}` must name a function as 'module:function' (for example 'mypkg.models:build'), "
            f"got {spec!r}."
        )
    module = spec.split(":")[0]
    if module.endswith(".py"):
        if not os.path.isfile(module):
            raise ValueError(f"Argument `{argument}`={spec!r}: no such file {module!r}.")
        return spec
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as the workers, started in this folder, will see it
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:
        found, reason = None, f"{type(error).__name__}: {error}"
    else:
        reason = "no such module"
    if found is None:
        raise ValueError(f"Argument `{argument}`={spec!r}: cannot import {module!r} ({reason}).")
    return spec


def optimizer_spec(optimizer: Any) -> dict:
    """What the workers build the optimizer from: {"name", "kwargs"} from a name such as
    "adam" or "adam:learning_rate=0.01:amsgrad=true", or {"config"} (keras.optimizers.serialize)
    from an optimizer instance."""
    if isinstance(optimizer, str):
        parts = [p.strip() for p in optimizer.split(":")]
        if not parts[0]:
            raise ValueError(f"Argument `optimizer` must name an optimizer, got {optimizer!r}.")
        kwargs = {}
        for part in parts[1:]:
            if "=" not in part:
                raise ValueError(f"Argument `optimizer`={optimizer!r}: {part!r} is not name=value.")
            name, value = (s.strip() for s in part.split("=", 1))
            kwargs[name] = _literal(value)
        return {"name": parts[0], "kwargs": kwargs}
    if hasattr(optimizer, "get_config") and hasattr(optimizer, "apply"):
        import keras  # an optimizer instance given: Keras is imported already

        return {"config": keras.optimizers.serialize(optimizer)}
    raise ValueError(
        f"Argument `optimizer` must be a name ('adam', 'adam:learning_rate=0.01') or an optimizer instance, "
        f"got {type(optimizer).__name__}."
    )


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# --- the batches and weights file ------------------------------------------------------


def save_batches(arrays: dict, batches: list, prefix: str = "batch") -> None:
    """Put `batches` ((x, y) NumPy pairs; x an array, list or dict of arrays) into `arrays`."""
    for i, (x, y) in enumerate(batches):
        if isinstance(x, dict):
            for key, value in x.items():
                arrays[f"{prefix}{i}_x__{key}"] = value
        elif isinstance(x, list):
            for j, value in enumerate(x):
                arrays[f"{prefix}{i}_x_{j}"] = value
        else:
            arrays[f"{prefix}{i}_x"] = x
        arrays[f"{prefix}{i}_y"] = y
    arrays["batch_count"] = np.array(len(batches))


def load_batches(f: Any, prefix: str = "batch") -> list:
    batches = []
    for i in range(int(f["batch_count"])):
        head = f"{prefix}{i}_x"
        if head in f.files:
            x: Any = f[head]
        else:
            keyed = sorted(k for k in f.files if k.startswith(head + "__"))
            if keyed:
                x = {k[len(head) + 2 :]: f[k] for k in keyed}
            else:
                count = sum(1 for k in f.files if k.startswith(head + "_"))
                x = [f[f"{head}_{j}"] for j in range(count)]
        batches.append((x, f[f"{prefix}{i}_y"]))
    return batches


# --- running ---------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A backend's worker failed for another reason than the user's arguments."""


def _start(job: dict, folder: str, python: str) -> tuple[subprocess.Popen, str, str]:
    path = os.path.join(folder, f"job_{job['backend']}.json")
    with open(path, "w") as f:
        json.dump(job, f)
    log = os.path.join(folder, f"log_{job['backend']}.txt")
    env = {**os.environ, **ENVIRONMENT, "KERAS_BACKEND": job["backend"]}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if XLA_DETERMINISM not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_DETERMINISM).strip()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [python, "-m", "keras_adaptive.parity_worker", path], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return process, log, job["result"]


def _finish(process: subprocess.Popen, log: str, result: str, backend: str, deadline: float) -> BackendRun:
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise WorkerError(f"the {backend} worker ran past the timeout") from None
    info_path = result + ".json"
    info = {}
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
    if "error" in info:
        if info.get("kind") == "argument":
            raise ValueError(info["error"])
        raise WorkerError(f"the {backend} worker failed: {info['error']}\n{info.get('traceback', '')}")
    if process.returncode != 0 or not os.path.isfile(result):
        with open(log) as f:
            tail = f.read()[-3000:]
        raise WorkerError(f"the {backend} worker exited with status {process.returncode}:\n{tail}")
    with np.load(result, allow_pickle=False) as f:
        losses = f["losses"]
        weights = [f[f"weight_{i}"] for i in range(int(f["weight_count"]))]
    return BackendRun(backend, losses, weights, info)


def run_parity(
    model: Any,
    data: Any,
    optimizer: Any = "adam",
    *,
    steps: int = DEFAULT_STEPS,
    tolerance: float = DEFAULT_TOLERANCE,
    backends: Sequence[str] = BACKENDS,
    loss: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    timeout: float = 900.0,
    python: str = sys.executable,
) -> ParityReport:
    """Train `model` on each of `backends` from the same weights on the same batches; compare.

    Args:
        model: a function that builds the Keras model (compiled or not), or its
            'module:function' name; every backend's worker imports it and calls it.
        data: a function returning what `keras_adaptive.batches.Batches` reads (arrays
            `(x, y)`, a tf.data.Dataset, a PyDataset, an iterable of batches), or its
            'module:function' name, read once in the first backend's worker; or such data
            itself, read here.
        optimizer: a name with optional hyperparameters ("adam", "sgd:learning_rate=0.1:momentum=0.9";
            `keras_adaptive.OPTIMIZERS` or a keras.optimizers name), or an optimizer instance.
        steps: training steps on each backend (the batches cycle if there are fewer).
        tolerance: two values agree when |a - b| <= tolerance * max(1, |a|, |b|); each step's
            loss and every final weight are compared.
        backends: two or more of "tensorflow", "jax", "torch".
        loss: a keras loss name or a 'module:function'; None: the model's compiled loss.
        batch_size, seed: how arrays are cut into batches (shuffled from `seed`); `seed` also
            seeds each backend's random generators and draws the initial weights (on the first
            backend, then set on every backend).

    Returns:
        A `ParityReport` (`.agree`, `.pairs`, `.text()`). Raises ValueError for bad arguments
        (in this process, or as the first worker found them).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Argument `steps` must be a positive integer, got {steps!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"Argument `tolerance` must be a non-negative number, got {tolerance!r}.")
    backends = list(backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or len(backends) < 2 or len(set(backends)) != len(backends):
        raise ValueError(f"Argument `backends` must be two or more distinct of {list(BACKENDS)}, got {backends!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Argument `batch_size` must be a positive integer, got {batch_size!r}.")
    model_spec = check_spec(model, "model")
    data_spec = check_spec(data, "data") if callable(data) or isinstance(data, str) else None
    if loss is not None and not isinstance(loss, str):
        loss = check_spec(loss, "loss")
    elif isinstance(loss, str) and ":" in loss:
        loss = check_spec(loss, "loss")
    optimizer_job = optimizer_spec(optimizer)

    with tempfile.TemporaryDirectory(prefix="keras_adaptive_parity_") as folder:
        inputs = os.path.join(folder, "inputs.npz")
        if data_spec is None:  # data itself: read here, once
            from keras_adaptive.batches import Batches

            batches = (
                data
                if isinstance(data, Batches)
                else Batches(data, steps_per_epoch=steps, batch_size=batch_size, seed=seed)
            )
            arrays: dict = {}
            save_batches(arrays, list(batches))
            np.savez(os.path.join(folder, "batches.npz"), **arrays)
        common = {
            "model": model_spec,
            "data": data_spec,
            "batches": None if data_spec else os.path.join(folder, "batches.npz"),
            "inputs": inputs,
            "optimizer": optimizer_job,
            "loss": loss,
            "steps": steps,
            "batch_size": batch_size,
            "seed": seed,
            "cwd": os.getcwd(),
        }
        deadline = time.monotonic() + timeout
        jobs = [
            {**common, "backend": b, "prepare": i == 0, "result": os.path.join(folder, f"result_{b}.npz")}
            for i, b in enumerate(backends)
        ]
        started = [_start(jobs[0], folder, python)]
        # The other backends start once the first has written the weights and batches.
        while not os.path.isfile(inputs) and started[0][0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not os.path.isfile(inputs):
            _finish(*started[0], backends[0], deadline)  # raises what went wrong
            raise WorkerError(f"the {backends[0]} worker wrote no weights and batches")
        started += [_start(job, folder, python) for job in jobs[1:]]
        runs, failure = {}, None
        for (process, log, result), backend in zip(started, backends):
            try:
                runs[backend] = _finish(process, log, result, backend, deadline)
            except (ValueError, WorkerError) as error:
                failure = failure or error
        if failure is not None:
            raise failure
    first = runs[backends[0]].info
    controlled = sorted({c for r in runs.values() for c in r.info.get("controlled", [])})
    return ParityReport(
        runs=runs,
        pairs=compare_runs(runs, float(tolerance)),
        tolerance=float(tolerance),
        steps=steps,
        optimizer=first.get("optimizer", str(optimizer)),
        controlled=controlled,
        warnings=first.get("warnings", []),
    )
