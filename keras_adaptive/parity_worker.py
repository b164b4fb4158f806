"""One backend's part of a parity run: `python -m keras_adaptive.parity_worker JOB.json`.

Started by `keras_adaptive.parity.run_parity` with `KERAS_BACKEND` set. It sets what makes a
run reproducible on its backend before and after importing Keras, builds the model, (the
first backend only) draws the initial weights and reads the batches into the inputs file,
sets those weights, trains `steps` steps with `train_on_batch`, and writes the per-step
losses and final weights to `JOB["result"]` (.npz) and what it ran on to `JOB["result"].json`
(or {"error", "kind"}: "argument" for the user's mistakes, "internal" otherwise).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import numpy as np


def environment_set() -> list[str]:
    """What `run_parity` put in this process's environment for its engine's import, checked."""
    from keras_adaptive.parity import ENVIRONMENT, XLA_DETERMINISM

    done = [f"{k}={v}" for k, v in ENVIRONMENT.items() if os.environ.get(k) == v]
    if XLA_DETERMINISM in os.environ.get("XLA_FLAGS", ""):
        done.append(f"XLA_FLAGS {XLA_DETERMINISM}")
    return done


def set_determinism(backend: str, seed: int) -> list[str]:
    """What this backend offers for a reproducible float32 run, set; the list says what."""
    import keras

    keras.utils.set_random_seed(seed)
    done = [f"keras.utils.set_random_seed({seed}) (Python, NumPy and the backend's generator)"]
    keras.config.disable_flash_attention()
    done.append("keras.config.disable_flash_attention()")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        done += ["tf.config.experimental.enable_op_determinism()", "TF32 off (enable_tensor_float_32_execution(False))"]
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
        done.append('jax_default_matmul_precision="highest" (float32 matmuls, no TF32/bfloat16 passes)')
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        done += [
            "torch.use_deterministic_algorithms(True), cudnn.benchmark off",
            'TF32 off (allow_tf32=False, set_float32_matmul_precision("highest"))',
        ]
    return done


RANDOM_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
)


def random_layers(model: Any) -> list[str]:
    """Layers that draw random numbers in training (each backend draws different ones)."""
    found = []

    def visit(layer: Any) -> None:
        rate = max(float(getattr(layer, "dropout", 0) or 0), float(getattr(layer, "recurrent_dropout", 0) or 0))
        if type(layer).__name__ in RANDOM_LAYERS or rate > 0 or type(layer).__name__.startswith("Random"):
            found.append(f"{layer.name} ({type(layer).__name__})")
        for child in getattr(layer, "layers", []) or []:
            visit(child)
        cell = getattr(layer, "cell", None)
        if cell is not None and cell is not layer:
            rate = max(float(getattr(cell, "dropout", 0) or 0), float(getattr(cell, "recurrent_dropout", 0) or 0))
            if rate > 0 and f"{layer.name} ({type(layer).__name__})" not in found:
                found.append(f"{layer.name} ({type(layer).__name__})")

    for layer in getattr(model, "layers", []):
        visit(layer)
    return found


def max_pooling_layers(model: Any) -> list[str]:
    """Max-pooling layers: at ties, the engines send the gradient to different positions."""
    found = []

    def visit(layer: Any) -> None:
        if "MaxPool" in type(layer).__name__:
            found.append(f"{layer.name} ({type(layer).__name__})")
        for child in getattr(layer, "layers", []) or []:
            visit(child)

    for layer in getattr(model, "layers", []):
        visit(layer)
    return found


class ArgumentError(ValueError):
    """The user's arguments (a model, data, optimizer or loss that does not work)."""


def _optimizer(spec: dict) -> Any:
    import keras

    import keras_adaptive

    if "config" in spec:
        return keras.optimizers.deserialize(spec["config"])
    name, kwargs = spec["name"], spec["kwargs"]
    if name.lower().removeprefix("keras_adaptive>") in keras_adaptive.OPTIMIZERS:
        try:
            return keras_adaptive.get(name, **kwargs)
        except (TypeError, ValueError) as error:
            raise ArgumentError(f"Argument `optimizer`={name!r} with {kwargs}: {error}") from None
    builtin = {n.lower(): n for n in dir(keras.optimizers) if not n.startswith("_")}
    key = name.lower().removeprefix("keras.")
    if key not in builtin or not isinstance(getattr(keras.optimizers, builtin[key]), type):
        raise ArgumentError(
            f"Argument `optimizer`={name!r} is not an optimizer name: use one of {sorted(keras_adaptive.OPTIMIZERS)} "
            "or a keras.optimizers class name (keras.Adam)."
        )
    try:
        return getattr(keras.optimizers, builtin[key])(**kwargs)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"Argument `optimizer`={name!r} with {kwargs}: {error}") from None


def _loss(job: dict, model: Any) -> Any:
    from keras_adaptive.user_code import load

    if job["loss"] is None:
        if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
            raise ArgumentError(
                f"Argument `model`={job['model']!r} returns a model not compiled with a loss: compile it in that "
                "function, or pass a loss (--loss NAME)."
            )
        return model.loss
    if ":" in job["loss"]:
        return load(job["loss"], "loss")
    import keras

    try:
        return keras.losses.get(job["loss"])
    except ValueError:
        raise ArgumentError(f"Argument `loss`={job['loss']!r} is not a keras loss name.") from None


def _call_user(spec: str, argument: str) -> Any:
    from keras_adaptive.user_code import load

    function = load(spec, argument)
    try:
        return function()
    except Exception as error:
        raise ArgumentError(
            f"Argument `{argument}`={spec!r}: calling it raised {type(error).__name__}: {error}"
        ) from error


def _prepare(job: dict, model: Any) -> None:
    """The first backend's extra part: initial weights and batches into the inputs file."""
    from keras_adaptive.batches import Batches
    from keras_adaptive.parity import load_batches, save_batches

    arrays: dict = {}
    if job["data"] is not None:
        data = _call_user(job["data"], "data")
        try:
            batches = list(Batches(data, steps_per_epoch=job["steps"], batch_size=job["batch_size"], seed=job["seed"]))
        except ValueError as error:
            raise ArgumentError(f"Argument `data`={job['data']!r}: {error}") from None
    else:
        with np.load(job["batches"], allow_pickle=False) as f:
            batches = load_batches(f)
    save_batches(arrays, batches)
    weights = model.get_weights()
    for i, w in enumerate(weights):
        arrays[f"weight_{i}"] = w
    arrays["weight_count"] = np.array(len(weights))
    temporary = job["inputs"] + ".part.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, job["inputs"])  # the others wait for this name: it appears complete


def _engine(backend: str) -> str:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return f"{module} {sys.modules[module].__version__}"


def _device(backend: str, model: Any) -> str:
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform)
    if backend == "torch":
        return str(model.weights[0].value.device) if model.weights else "?"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def train(job: dict) -> dict:
    backend = job["backend"]
    controlled = [f"environment: {c}" for c in environment_set()]
    controlled += set_determinism(backend, job["seed"])
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras runs on {keras.backend.backend()}, not {backend}: KERAS_BACKEND was not set")
    model = _call_user(job["model"], "model")
    if not isinstance(model, keras.Model):
        raise ArgumentError(f"Argument `model`={job['model']!r} must return a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ArgumentError(
            f"Argument `model`={job['model']!r} returns an unbuilt model: give it an Input (keras.Input(shape)) or "
            "build it in that function, so its weights exist before training."
        )
    if job["prepare"]:
        _prepare(job, model)
    from keras_adaptive import _compat
    from keras_adaptive.parity import load_batches

    with np.load(job["inputs"], allow_pickle=False) as f:
        batches = load_batches(f)
        weights = [f[f"weight_{i}"] for i in range(int(f["weight_count"]))]
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise ArgumentError(f"Argument `model`: the model differs between backends: {error}") from None
    loss = _loss(job, model)
    optimizer = _optimizer(job["optimizer"])
    model.compile(optimizer=optimizer, loss=loss)
    losses = []
    started = time.perf_counter()
    for i in range(job["steps"]):
        x, y = batches[i % len(batches)]
        try:
            value = _compat.train_on_batch(model, x, y)["loss"]
        except Exception as error:
            if i == 0:
                raise ArgumentError(
                    f"Argument `data`: the model cannot train on a batch of x {_shapes(x)}, y {tuple(y.shape)}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            raise
        losses.append(float(np.asarray(value).reshape(-1)[0]))
    seconds = time.perf_counter() - started
    final = model.get_weights()
    arrays = {f"weight_{i}": w for i, w in enumerate(final)}
    np.savez(job["result"], losses=np.array(losses, dtype=np.float64), weight_count=np.array(len(final)), **arrays)
    config = optimizer.get_config()
    shown = {k: config[k] for k in ("learning_rate",) if k in config}
    warnings = []
    randoms = random_layers(model)
    if randoms:
        warnings.append(
            "the model draws random numbers in training ("
            + ", ".join(randoms)
            + "): each backend draws different ones, so the losses differ by more than rounding; "
            "for a parity test, build the model without them"
        )
    pooling = max_pooling_layers(model)
    if pooling:
        warnings.append(
            "the model max-pools ("
            + ", ".join(pooling)
            + "): at ties (equal values in a window, as on a constant background) PyTorch sends the gradient to "
            "another position than TensorFlow and JAX, so training can drift apart (measured on the MNIST CNN: "
            "2.5e-4 in the loss after 50 steps; with average pooling 5e-7)"
        )
    return {
        "backend": backend,
        "keras": keras.__version__,
        "engine": _engine(backend),
        "device": _device(backend, model),
        "optimizer": f"{type(optimizer).__name__} ({', '.join(f'{k}={v:g}' for k, v in shown.items())})",
        "controlled": controlled,
        "warnings": warnings,
        "seconds": seconds,
    }


def _shapes(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: tuple(v.shape) for k, v in x.items()}
    if isinstance(x, list):
        return [tuple(v.shape) for v in x]
    return tuple(x.shape)


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        job = json.load(f)
    if job.get("cwd") and job["cwd"] not in sys.path:
        sys.path.insert(0, job["cwd"])  # the user's modules, as in the process that asked
    try:
        info = train(job)
        status = 0
    except ArgumentError as error:
        info, status = {"error": str(error), "kind": "argument"}, 2
    except ValueError as error:  # user_code.load's, Batches' and Keras' own argument errors
        info, status = {"error": str(error), "kind": "argument", "traceback": traceback.format_exc()}, 2
    except BaseException as error:
        info = {"error": f"{type(error).__name__}: {error}", "kind": "internal", "traceback": traceback.format_exc()}
        status = 1
    with open(job["result"] + ".json", "w") as f:
        json.dump(info, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
