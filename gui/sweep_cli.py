"""`keras-adaptive sweep ...`: learning-rate sweeps over several seeds, from the command line.

    keras-adaptive sweep --task mnist-mlp --optimizers sgd,adam --learning-rates 1e-4:1e-1:7 --seeds 3 --backends jax
    keras-adaptive sweep --model mypkg.models:build --data mypkg.data:load --loss mse --optimizers sgd,adam

Every (optimizer, learning rate, seed, backend) is a complete training run, the one
`keras-adaptive compare --optimizers <that optimizer>:learning_rate=<lr> --seed <seed>`
makes, scheduled over warm workers (`sweep.Sweep`, the page's engine). Prints a progress
bar over all runs and the table, and writes under `<out>/sweep-<id>/`: sweep.csv (one row
per run), sweep.json (the configuration), sensitivity.png, best-lr-curves.png and the run
bundles (one per seed) that the page's "Open a run bundle" reads. With `--model` and `--data`
(a person's own code, 'module:function') the same files come from `keras_adaptive.sweep`: one
`keras_adaptive.compare` of every (optimizer, learning rate) over the seeds, its runs turned
into the same rows, aggregated and drawn by the same functions.

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
    cli.add_model_options(p, seeds_and_target=False)
    cli.add_output_options(p)
    # Unset by default, so that --task is told from --model, and each gets its own defaults.
    p.set_defaults(task=None, steps_per_epoch=None, batch_size=None)
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
        help="time to target: a validation accuracy (classifiers) or a training loss; default the task's; "
        "with --model: a training loss (0.1), val_loss=V or val_acc=V (default none)",
    )
    p.add_argument("--workers", type=int, default=None, help="worker processes per backend (default: cores / 2)")


def run(args: argparse.Namespace) -> int:
    from keras_adaptive_gui import cli

    if args.model is not None or args.data is not None:
        return run_own_model(args)
    args.task = args.task or "mnist-mlp"
    args.steps_per_epoch = 50 if args.steps_per_epoch is None else args.steps_per_epoch
    args.batch_size = 64 if args.batch_size is None else args.batch_size
    backends = [b.strip() for b in str(args.backends).split(",") if b.strip()]
    if backends:  # the optimizers are checked with keras: import it as the first worker does
        os.environ.setdefault("KERAS_BACKEND", backends[0])
    from keras_adaptive_gui import engine, sweep

    workers = args.workers if args.workers and args.workers > 0 else sweep.default_workers_per_backend()
    for backend in dict.fromkeys(backends):  # the workers import Keras while this process checks the inputs
        if backend in engine.BACKENDS:
            sweep.POOL.warm(backend, workers)
    try:
        mnist_path = cli.mnist_of(args)
    except ValueError as error:
        sweep.POOL.close()
        print(f"error: {error}", file=sys.stderr)
        return 2
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
    curves = the_sweep.curves(sweep.best_points(points, kind))
    sensitivity_png, curves_png = plots.save_sweep_pngs(folder, points, kind, curves, title, sweep_footer(the_sweep))
    print(
        f"wrote {paths['csv']}, {sensitivity_png}, {curves_png} and {len(paths['bundles'])} run bundles "
        f"(one per seed) in {folder}"
    )
    return 0 if any(r["status"] in sweep.ENDED for r in rows) else 1


def run_own_model(args: argparse.Namespace) -> int:
    """sweep with --model and --data: `keras_adaptive.sweep` on the person's code (in this
    process on one backend, else in a worker per backend, one after another); the same
    table and files as with --task."""
    from keras_adaptive_gui import cli

    try:
        if args.workers is not None:
            raise ValueError("--workers is for --task sweeps: with --model each backend trains in one process.")
        inputs = cli.own_model_inputs(args)
        backends = inputs.pop("all_backends")
        from keras_adaptive import sweep as sweep_api  # after own_model_inputs chose Keras' backend

        print(f"model: {args.model}; data: {args.data}; backends: {', '.join(backends)}", file=sys.stderr)
        started = time.monotonic()
        result = sweep_api(**inputs, learning_rates=args.learning_rates, progress=cli.progress_printer(args))
    except ValueError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    runs = len(result.rows)
    if not args.no_progress:
        print(cli._progress(1.0, f"{runs} runs done in {time.monotonic() - started:.1f} s"), file=sys.stderr)
    for message in result.comparison.messages:
        print(message, file=sys.stderr)
    print(cli.format_table(result.table_rows()))
    paths = result.save(args.out)
    print(
        f"wrote {paths['csv']}, {paths['sensitivity']}, {paths['curves']} and {len(paths['bundles'])} run bundles "
        f"(one per seed) in {paths['folder']}"
    )
    from keras_adaptive_gui import sweep

    return 0 if any(r["status"] in sweep.ENDED for r in result.rows) else 1


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
