"""`keras-adaptive sweep ...`: learning-rate sweeps over several seeds, from the command line.

    keras-adaptive sweep --task mnist-mlp --optimizers sgd,adam --learning-rates 1e-4:1e-1:7 --seeds 3 --backends jax

Every (optimizer, learning rate, seed, backend) is a complete training run, the one
`keras-adaptive compare --optimizers <that optimizer>:learning_rate=<lr> --seed <seed>`
makes, scheduled over warm workers (`sweep.Sweep`, the page's engine). Prints a progress
bar over all runs and the table, and writes under `<out>/sweep-<id>/`: sweep.csv (one row
per run), sweep.json (the configuration), sensitivity.png, best-lr-curves.png and the run
bundles (one per seed) that the page's "Open a run bundle" reads.

Light at import: the command imports keras only to check the optimizers (on the sweep's
first backend); training runs in the worker processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    from keras_adaptive_gui import cli

    cli.add_task_options(p)
    cli.add_output_options(p)
    p.add_argument(
        "--learning-rates",
        default="",
        help="the grid, for every optimizer: a list '1e-3,1e-2,1e-1' or 'low:high:n' (n points log-spaced); "
        "default 7 points over 2 decades either side of each optimizer's learning rate",
    )
    p.add_argument("--seeds", default=3, help="seeds per learning rate: --seed, --seed+1, ... (default 3)")
    p.add_argument(
        "--target",
        default=None,
        help="time to target: a validation accuracy (classifiers) or a training loss; default the task's",
    )
    p.add_argument("--workers", type=int, default=None, help="worker processes per backend (default: cores / 2)")


def run(args: argparse.Namespace) -> int:
    from keras_adaptive_gui import cli

    backends = [b.strip() for b in str(args.backends).split(",") if b.strip()]
    if backends:  # the optimizers are checked with keras: import it as the first worker does
        os.environ.setdefault("KERAS_BACKEND", backends[0])
    from keras_adaptive_gui import engine, sweep

    workers = args.workers if args.workers and args.workers > 0 else sweep.default_workers_per_backend()
    for backend in dict.fromkeys(backends):  # the workers import Keras while this process checks the inputs
        if backend in engine.BACKENDS:
            sweep.POOL.warm(backend, workers)
    mnist_path = None
    if args.task.startswith("mnist"):
        from keras_adaptive_gui.app import resolve_mnist

        if args.mnist and not os.path.isfile(args.mnist):
            sweep.POOL.close()
            print(f"error: --mnist {args.mnist!r}: no such file.", file=sys.stderr)
            return 2
        mnist_path, source = resolve_mnist(args.mnist, download=not args.no_download)
        print(f"data: {source}", file=sys.stderr)
    from keras_adaptive_gui import hyperparams, plots, tasks

    try:
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}.")
        config = sweep.check_sweep(
            args.task,
            hyperparams.split_spec_list(args.optimizers),
            backends,
            learning_rates=args.learning_rates,
            seeds=args.seeds,
            target=args.target,
            first_seed=args.seed,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            steps_2d=args.steps,
            cell=args.cell,
            seq_len=args.seq_len,
            mnist_path=mnist_path,
        )
    except ValueError as error:
        sweep.POOL.close()
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    kind = tasks.TASKS[args.task].kind
    the_sweep = sweep.Sweep(config, workers_per_backend=args.workers)
    total = len(the_sweep.runs)
    print(
        f"task: {tasks.TASKS[args.task].description}; {total} runs "
        f"({', '.join(f'{config.name(i)}: {len(g)} learning rates' for i, g in enumerate(config.grids))}; "
        f"{len(config.seeds)} seeds; backends {', '.join(backends)}; {the_sweep.per_backend} worker(s) per backend)",
        file=sys.stderr,
    )
    started, shown, last_line = time.monotonic(), 0, 0.0
    frames = the_sweep.run(interval=0.2)
    try:
        for _ in frames:
            for message in the_sweep.messages[shown:]:
                print(f"\n{message}", file=sys.stderr)
            shown = len(the_sweep.messages)
            if not args.no_progress and (sys.stderr.isatty() or time.monotonic() - last_line >= 5):
                last_line = time.monotonic()
                print(
                    cli._progress(the_sweep.progress(), f"run {the_sweep.done()} of {total}"),
                    end="" if sys.stderr.isatty() else "\n",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the sweep (finished runs are kept)", file=sys.stderr)
        the_sweep.stop()
    finally:
        frames.close()
        sweep.POOL.close()
    elapsed = time.monotonic() - started
    for message in the_sweep.messages[shown:]:
        print(f"\n{message}", file=sys.stderr)
    if not args.no_progress:
        print(cli._progress(the_sweep.progress(), f"{the_sweep.done()} runs done in {elapsed:.1f} s"), file=sys.stderr)
    rows = the_sweep.result_rows()
    points = sweep.sensitivity(rows, kind)
    print(cli.format_table(sweep.table_rows(points, kind, config.target, config.target_metric)))
    folder = os.path.join(args.out, f"sweep-{the_sweep.sweep_id}")
    paths = the_sweep.save(folder)
    title = f"{tasks.TASKS[args.task].description} · sweep {the_sweep.sweep_id}"
    footer = sweep_footer(the_sweep)
    sensitivity_png = os.path.join(folder, "sensitivity.png")
    plots.save_png(plots.sensitivity_figure(points, kind, title), sensitivity_png, footer=footer)
    curves_png = os.path.join(folder, "best-lr-curves.png")
    curves = the_sweep.curves(sweep.best_points(points, kind))
    plots.save_png(plots.best_curves_figure(curves, title, log_scale=True), curves_png, footer=footer)
    print(
        f"wrote {paths['csv']}, {sensitivity_png}, {curves_png} and {len(paths['bundles'])} run bundles "
        f"(one per seed) in {folder}"
    )
    return 0 if any(r["status"] in sweep.ENDED for r in rows) else 1


def sweep_footer(the_sweep) -> str:
    """The sweep's configuration in a few lines (the PNGs carry it)."""
    from keras_adaptive_gui import engine, hyperparams

    c = the_sweep.config
    d = c.describe()
    settings = (
        f"{d['steps']} steps"
        if c.task_facts.is_2d
        else f"{d['epochs']} epochs × {d['steps_per_epoch']} steps, batch size {d['batch_size']}"
    )
    aim = f"{'validation accuracy ≥' if c.target_metric == 'val_acc' else 'training loss ≤'} {c.target:g}"
    lines = [
        f"sweep {the_sweep.sweep_id} · task {d['task']} · {settings} · seeds {', '.join(map(str, c.seeds))} · "
        f"backends {', '.join(d['backends'])} · target {aim}"
    ]
    for o in d["optimizers"]:
        values = ", ".join(f"{k}={hyperparams.format_number(v)}" for k, v in o["hyperparameters"].items())
        grid = ", ".join(f"{lr:.3g}" for lr in o["learning_rates"])
        lines.append(f"{o['name']}: {o['key']}({values}); learning rates {grid}")
    lines.append(", ".join(f"{k} {v}" for k, v in engine.versions().items()))
    return "\n".join(lines)
