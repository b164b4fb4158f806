"""`keras-adaptive parity`: train a model on TensorFlow, JAX and PyTorch and compare.

    keras-adaptive parity --model mypkg.models:build --data mypkg.data:load --optimizer adam --steps 50

Prints, per backend pair, the largest per-step loss difference, the first step beyond the
tolerance and the largest final-weight difference; exits 0 when every pair is within the
tolerance, 1 when one is not, 2 for bad arguments, 3 when a backend's worker fails. This process never imports Keras: it loads
`keras_adaptive/parity.py` by its path (the package's `__init__` imports Keras) and starts
one worker process per backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="MODULE:FUNCTION", help="a function returning the Keras model")
    p.add_argument(
        "--data",
        required=True,
        metavar="MODULE:FUNCTION",
        help="a function returning the data: arrays (x, y), a tf.data.Dataset, a PyDataset or batches",
    )
    p.add_argument(
        "--optimizer", default="adam", help="a name, hyperparameters after colons: 'sgd:learning_rate=0.1:momentum=0.9'"
    )
    p.add_argument("--steps", type=int, default=50, help="training steps on each backend (default 50)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="values a, b agree when |a-b| <= tolerance*max(1,|a|,|b|) (default 1e-3)",
    )
    p.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated, two or more")
    p.add_argument(
        "--loss", default=None, help="a keras loss name or MODULE:FUNCTION (default: the model's compiled loss)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="batch size for array data (default 32)")
    p.add_argument("--seed", type=int, default=0, help="batch order, random generators, initial weights (default 0)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run (default 900)")


def parity_module() -> Any:
    """keras_adaptive/parity.py loaded by its path, without running keras_adaptive/__init__.py."""
    if "keras_adaptive.parity" in sys.modules:
        return sys.modules["keras_adaptive.parity"]
    package = importlib.util.find_spec("keras_adaptive")  # a top-level name: found, not imported
    if package is None or not package.submodule_search_locations:
        raise ImportError("keras_adaptive is not installed")
    path = os.path.join(list(package.submodule_search_locations)[0], "parity.py")
    spec = importlib.util.spec_from_file_location("_keras_adaptive_parity", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    parity = parity_module()
    tolerance = parity.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"training on {', '.join(backends)}: one process each ...", file=sys.stderr, flush=True)
    try:
        report = parity.run_parity(
            args.model,
            args.data,
            args.optimizer,
            steps=args.steps,
            tolerance=tolerance,
            backends=backends,
            loss=args.loss,
            batch_size=args.batch_size,
            seed=args.seed,
            timeout=args.timeout,
        )
    except ValueError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except parity.WorkerError as error:  # not the user's arguments: a backend failed
        print(f"error: {error}", file=sys.stderr)
        return 3
    print(report.text())
    return 0 if report.agree else 1
