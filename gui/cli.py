"""`keras-adaptive compare ...`: the page's comparison from the command line.

    keras-adaptive compare --task mnist-mlp --optimizers adam,rmsprop:learning_rate=0.01 --backends jax,torch
    keras-adaptive compare --model mypkg.models:build --data mypkg.data:load --loss mse --optimizers adam,sgd

Same engine loop as the page (`engine.Comparison.run`): prints a progress bar and the
summary table, writes the run bundle (`<out>/<run id>/config.json` and `records.csv`, the
page's "Open a run bundle" reads it) and a PNG beside them. With `--model` and `--data` (a
person's own code, named 'module:function'), the same outputs come from
`keras_adaptive.compare`, the library's path for notebooks and scripts. Light at import
(spawned workers re-import the main module).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import Sequence

# Commands besides `compare`, each in a module of its own with `add_arguments(parser)` and
# `run(args) -> int` (the exit status); imported only when their command runs.
COMMANDS = {
    "sweep": ("keras_adaptive_gui.sweep_cli", "learning-rate sweeps over several seeds: a fair comparison"),
    "parity": ("keras_adaptive_gui.parity_cli", "train a model on TensorFlow, JAX and PyTorch and compare"),
}


def add_task_options(p: argparse.ArgumentParser) -> None:
    """The options that say what a run trains on and how long (compare's and sweep's)."""
    p.add_argument(
        "--task", default="mnist-mlp", help="mnist-mlp, mnist-cnn, mnist-rnn, adding, rosenbrock, beale or quadratic"
    )
    p.add_argument(
        "--optimizers",
        default="adam,rmsprop",
        help="comma-separated; hyperparameters after colons: 'adam,rmsprop:learning_rate=0.01:centered=true'; "
        "Keras' built-ins as keras.Adam etc.",
    )
    p.add_argument(
        "--backends",
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="comma-separated: tensorflow,jax,torch (default $KERAS_BACKEND or tensorflow)",
    )
    p.add_argument("--epochs", default=2)
    p.add_argument("--steps-per-epoch", default=50)
    p.add_argument("--batch-size", default=64)
    p.add_argument("--steps", default=300, help="steps for the 2-D functions")
    p.add_argument("--seed", default=0)
    p.add_argument("--cell", default="LSTM", help="LSTM or GRU (mnist-rnn, adding)")
    p.add_argument("--seq-len", default=30, help="sequence length of the adding problem")
    p.add_argument("--mnist", metavar="PATH", help="an MNIST .npz in the keras.datasets layout")
    p.add_argument("--no-download", action="store_true", help="do not try to download MNIST")


def add_model_options(p: argparse.ArgumentParser, seeds_and_target: bool = True) -> None:
    """compare (and sweep) on a person's own code, instead of `--task` (`keras_adaptive.compare`).
    `seeds_and_target=False`: the command has its own --seeds and --target."""
    p.add_argument("--model", metavar="MODULE:FUNCTION", help="a function returning an uncompiled keras.Model")
    p.add_argument(
        "--data",
        metavar="MODULE:FUNCTION",
        help="a function returning (x, y), ((x, y), (x_val, y_val)), a tf.data.Dataset, a PyDataset or batches",
    )
    p.add_argument("--validation-data", metavar="MODULE:FUNCTION", help="a function returning (x_val, y_val)")
    p.add_argument("--loss", help="with --model: a Keras loss name (mse, ...) or MODULE:NAME of a loss object")
    p.add_argument("--metrics", default="", help="with --model: comma-separated Keras metric names or MODULE:NAME")
    if not seeds_and_target:
        return
    p.add_argument("--seeds", default=1, help="with --model: how many seeds, from --seed on (default 1)")
    p.add_argument(
        "--target", help="with --model: time to target, a training loss (0.1) or val_loss=0.2 or val_acc=0.9"
    )


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where results go and how the PNGs look (compare's and sweep's)."""
    p.add_argument("--out", default="results", help="folder for the run bundle and the PNG (default results/)")
    p.add_argument("--log-scale", action="store_true", help="log-scale loss axis in the PNG")
    p.add_argument("--smoothing", type=float, default=0.0, help="smoothing of the loss curve in the PNG, 0-0.99")
    p.add_argument("--x-axis", choices=("step", "time"), default="step")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-adaptive", description="keras_adaptive tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "compare",
        help="train several optimizers on one task and compare them",
        description="Train optimizers side by side (same initial weights, same batches) and compare them.",
    )
    add_task_options(p)
    add_model_options(p)
    add_output_options(p)
    # Unset by default, so that --task is told from --model, and each gets its own defaults.
    p.set_defaults(task=None, steps_per_epoch=None, batch_size=None)
    for name, (module, summary) in COMMANDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        command = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        importlib.import_module(module).add_arguments(command)
    return parser


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no results)"
    columns = list(rows[0])

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else str(value)
        return str(value)

    cells = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _progress(fraction: float, text: str, width: int = 30) -> str:
    filled = int(round(width * fraction))
    return f"{chr(13) if sys.stderr.isatty() else ''}[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% {text}"


def compare(args: argparse.Namespace) -> int:
    if args.model is not None or args.data is not None:
        return compare_own_model(args)
    from keras_adaptive_gui import engine, hyperparams, plots, tasks

    args.task = args.task or "mnist-mlp"
    args.steps_per_epoch = 50 if args.steps_per_epoch is None else args.steps_per_epoch
    args.batch_size = 64 if args.batch_size is None else args.batch_size
    try:
        mnist_path = mnist_of(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        chosen = hyperparams.split_spec_list(args.optimizers)
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        config = engine.check_config(
            args.task,
            chosen,
            backends,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            steps_2d=args.steps,
            seed=args.seed,
            cell=args.cell,
            seq_len=args.seq_len,
            mnist_path=mnist_path,
        )
        if not 0 <= args.smoothing <= 0.99:
            raise ValueError(f"--smoothing must be in [0, 0.99], got {args.smoothing}.")
    except ValueError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    print(f"task: {tasks.TASKS[args.task].description}; backends: {', '.join(backends)}", file=sys.stderr)
    engine.SPARES.enabled = False  # one run: no spare to keep warm
    comparison = engine.Comparison(config)
    shown, last_line = 0, 0.0
    frames = comparison.run(interval=0.2)
    try:
        for _ in frames:
            for message in comparison.messages[shown:]:
                print(f"\n{message}", file=sys.stderr)
            shown = len(comparison.messages)
            if (
                comparison.running
                and not args.no_progress
                and (sys.stderr.isatty() or time.monotonic() - last_line >= 5)
            ):
                last_line = time.monotonic()
                waiting = any(not w.ready for w in comparison.workers if not w.done)
                text = "starting workers" if waiting else f"step {comparison.steps_done()}"
                print(
                    _progress(comparison.progress(), f"{text} of {comparison.total_steps()}"),
                    end="" if sys.stderr.isatty() else "\n",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the workers", file=sys.stderr)
        comparison.stop()
    finally:
        frames.close()
    for message in comparison.messages[shown:]:
        print(f"\n{message}", file=sys.stderr)
    if not args.no_progress:
        print(_progress(comparison.progress(), "done"), file=sys.stderr)
    print(format_table(comparison.summary()))
    bundle = comparison.save_bundle(args.out)
    options = plots.DisplayOptions(args.log_scale, args.smoothing, args.x_axis)
    png = os.path.join(args.out, f"{comparison.run_id}.png")
    plots.save_png(plots.figure(comparison, options), png, footer=_footer(comparison, options))
    print(f"wrote the run bundle {bundle} (config.json, records.csv) and {png}")
    ok = any(s.status == "finished" for s in comparison.series)
    return 0 if ok else 1


def mnist_of(args: argparse.Namespace) -> str | None:
    """The MNIST file of an MNIST task (--mnist, Keras' cache, a download or the packaged
    sample; says which on stderr), None for the other tasks. ValueError: --mnist names no file."""
    if not args.task.startswith("mnist"):
        return None
    from keras_adaptive_gui.app import resolve_mnist

    if args.mnist and not os.path.isfile(args.mnist):
        raise ValueError(f"--mnist {args.mnist!r}: no such file.")
    path, source = resolve_mnist(args.mnist, download=not args.no_download)
    print(f"data: {source}", file=sys.stderr)
    return path


def own_model_inputs(args: argparse.Namespace) -> dict:
    """The keyword arguments of `keras_adaptive.compare` (and `sweep`) from --model, --data
    and the run options; ValueError names the option that is wrong. Sets KERAS_BACKEND to the
    first backend unless Keras is imported; "here": whether this process trains itself."""
    if args.task is not None:
        raise ValueError("--task and --model are exclusive: --task trains a built-in task, --model your own.")
    if args.model is None or args.data is None:
        raise ValueError("--model and --data go together: both name a function as 'module:function'.")
    if not args.loss:
        raise ValueError("--model needs --loss (a Keras loss name such as mse, or 'module:name' of a loss).")
    if not 0 <= args.smoothing <= 0.99:
        raise ValueError(f"--smoothing must be in [0, 0.99], got {args.smoothing}.")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends:
        raise ValueError("--backends is empty.")
    epochs = _whole("--epochs", args.epochs)
    steps = _whole("--steps-per-epoch", args.steps_per_epoch, allow_none=True)
    batch_size = _whole("--batch-size", args.batch_size, allow_none=True)
    seed = _whole("--seed", args.seed, low=0)
    seeds = list(range(seed, seed + _whole("--seeds", args.seeds)))
    target = parse_target(args.target)
    # Keras reads its backend at import: this process trains on the first backend itself when it
    # is the only one (and keras, if already imported, has it); else each backend gets a worker.
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backends[0]
    import keras

    from keras_adaptive_gui import hyperparams

    here = len(backends) == 1 and keras.backend.backend() == backends[0]
    optimizers = []
    for n, (name, raw) in enumerate(hyperparams.split_spec_list(args.optimizers), 1):
        key = hyperparams.resolve_key(name)
        optimizers.append((key, hyperparams.build_kwargs(key, raw, where=f"Optimizer {n} ({key}): ")))
    return {
        "build_model": args.model,
        "data": args.data,
        "optimizers": optimizers,
        "epochs": epochs,
        "steps_per_epoch": steps,
        "seeds": seeds,
        "backends": None if here else backends,
        "validation_data": args.validation_data,
        "target": target,
        "loss": _named(args.loss, "--loss"),
        "metrics": [_named(m.strip(), "--metrics") for m in args.metrics.split(",") if m.strip()],
        "batch_size": batch_size,
        "all_backends": backends,
    }


def progress_printer(args: argparse.Namespace):
    """A `progress(fraction, text)` for `keras_adaptive.compare`: the bar on stderr (a line
    every 5 s when stderr is not a terminal), nothing with --no-progress."""
    last = [0.0]

    def progress(fraction: float, text: str) -> None:
        if args.no_progress or not (sys.stderr.isatty() or time.monotonic() - last[0] >= 5):
            return
        last[0] = time.monotonic()
        end = "" if sys.stderr.isatty() else "\n"
        print(_progress(fraction, text), end=end, file=sys.stderr, flush=True)

    return progress


def _whole(name: str, raw, low: int = 1, allow_none: bool = False):
    if raw is None and allow_none:
        return None
    try:
        value = float(str(raw))
        if value != int(value) or value < low:
            raise ValueError
    except ValueError:
        raise ValueError(f"{name} must be a whole number >= {low}, got {raw!r}.") from None
    return int(value)


def parse_target(text: str | None):
    """`--target`: "0.1" (a training loss), "val_loss=0.2" or "val_acc=0.9"."""
    if text is None:
        return None
    name, _, value = str(text).rpartition("=")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--target must be a training loss (0.1), val_loss=V or val_acc=V, got {text!r}.") from None
    return {name.strip(): number} if name else number


def _named(text: str, argument: str):
    """A Keras name as it is, or the object 'module:name' names (a loss or metric object)."""
    from keras_adaptive import user_code

    return user_code.load(text, argument) if ":" in text else text


def compare_own_model(args: argparse.Namespace) -> int:
    """compare with --model and --data: `keras_adaptive.compare` on the person's code, in this
    process on one backend, else in a worker per backend; the same outputs as with --task."""
    try:
        inputs = own_model_inputs(args)
        backends = inputs.pop("all_backends")
        from keras_adaptive import compare as compare_api  # after own_model_inputs chose Keras' backend

        print(f"model: {args.model}; data: {args.data}; backends: {', '.join(backends)}", file=sys.stderr)
        comparison = compare_api(**inputs, progress=progress_printer(args))
    except ValueError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    if not args.no_progress:
        print(_progress(1.0, "done"), file=sys.stderr)
    for message in comparison.messages:
        print(message, file=sys.stderr)
    print(format_table(comparison.summary_rows()))
    bundle = comparison.save_bundle(args.out)
    png = comparison.save_png(
        os.path.join(args.out, f"{comparison.run_id}.png"), args.log_scale, args.smoothing, args.x_axis
    )
    print(f"wrote the run bundle {bundle} (config.json, records.csv) and {png}")
    return 0 if any(s.status == "finished" for s in comparison.series) else 1


def _footer(comparison, options) -> str:
    from keras_adaptive_gui import engine

    return engine.config_text(comparison) + "\n" + options.describe()


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    if args.command == "compare":
        sys.exit(compare(args))
    sys.exit(importlib.import_module(COMMANDS[args.command][0]).run(args))


if __name__ == "__main__":
    main()
