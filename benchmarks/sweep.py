"""What a learning-rate sweep costs beyond its training, per backend.

    python -m benchmarks.sweep --mnist ../shared/data/mnist.npz                 # every backend, 1 and 2 workers
    python -m benchmarks.sweep --mnist PATH --backends jax --workers 1 --rounds 2

The sweep: SGD, Momentum (SGD, momentum 0.9), RMSProp and Adam on the MNIST MLP, 2 epochs x
50 steps of 64, each optimizer at 7 learning rates (the default grid: 2 decades either side
of its default rate) and 3 seeds: 84 runs, driven by `sweep.Sweep` as the page and
`keras-adaptive sweep` drive it. Reported per backend and number of workers: the sweep's
wall time; the runs' training time (each run's cumulated step time, what `seconds_to_target`
counts); the overhead per run beyond its training, (wall x workers - training) / runs,
against a run's mean training time; and one plain run (a fresh `engine.Comparison` of one
optimizer: a worker spawned, Keras imported, the model built and compiled, trained): its wall
time against its training time. Each sweep runs twice: cold (fresh workers: Keras imported,
models built and compiled in the sweep) and warm (the same workers again, as the page's next
sweep finds them). The tuned-vs-untuned table comes from the same sweep: each
optimizer at its default learning rate (the grid's centre) and at its best one.

Results go to benchmarks/results/sweep-<time>.json. The machine's other work shows in the
numbers: run it on a quiet machine, and twice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

OPTIMIZERS = [("sgd", {}), ("sgd", {"momentum": "0.9"}), ("rmsprop", {}), ("adam", {})]


def _sweep(backend: str, mnist: str, workers: int, seeds: int, points: int, pool=None) -> dict:
    from keras_adaptive_gui import sweep

    config = sweep.check_sweep(
        "mnist-mlp",
        OPTIMIZERS,
        [backend],
        learning_rates=None,
        seeds=seeds,
        epochs=2,
        steps_per_epoch=50,
        batch_size=64,
        mnist_path=mnist,
    )
    if points != sweep.GRID_POINTS:
        config.grids = [sweep.default_grid(g[len(g) // 2], points) for g in config.grids]
    own_pool = pool is None
    pool = sweep.Pool(keep=workers) if own_pool else pool
    started = time.monotonic()
    the_sweep = sweep.Sweep(config, workers_per_backend=workers, pool=pool)
    first_ready = None
    for _ in the_sweep.run(interval=0.5):
        if first_ready is None and any(r.status != "pending" for r in the_sweep.runs):
            first_ready = time.monotonic() - started
    wall = time.monotonic() - started
    if own_pool:
        pool.close()
    training = [r.series.times[-1] for r in the_sweep.runs if r.series.times]
    n = len(the_sweep.runs)
    per_run = wall * workers / n
    rows = the_sweep.result_rows()
    points_ = sweep.sensitivity(rows, "classify")
    best = sweep.best_points(points_, "classify")
    untuned = {}
    for i in range(len(config.base.optimizers)):
        centre = config.grids[i][len(config.grids[i]) // 2]
        name = config.name(i)
        p = next(q for q in points_ if q["name"] == name and abs(q["learning_rate"] / centre - 1) < 1e-9)
        untuned[name] = {"learning_rate": centre, "median_best_val_acc": p["metric_median"], "blown_up": p["blown_up"]}
    return {
        "backend": backend,
        "workers": workers,
        "runs": n,
        "statuses": {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}},
        "wall_s": wall,
        "first_run_started_s": first_ready,
        "training_s_total": sum(training),
        "training_s_per_run_mean": statistics.mean(training),
        "wall_s_per_run_x_workers": per_run,
        "overhead_per_run_s": per_run - statistics.mean(training),
        "overhead_fraction": per_run / statistics.mean(training) - 1,
        "tuned": {
            name: {"learning_rate": p["learning_rate"], "median_best_val_acc": p["metric_median"]}
            for (name, _), p in best.items()
        },
        "untuned": untuned,
        "table": sweep.table_rows(points_, "classify", config.target, config.target_metric),
    }


def _plain_run(backend: str, mnist: str) -> dict:
    from keras_adaptive_gui import engine

    engine.SPARES.enabled = False
    config = engine.check_config(
        "mnist-mlp", [("adam", {})], [backend], epochs=2, steps_per_epoch=50, batch_size=64, mnist_path=mnist
    )
    started = time.monotonic()
    comparison = engine.Comparison(config)
    for _ in comparison.run(interval=0.5):
        pass
    wall = time.monotonic() - started
    training = comparison.series[0].times[-1]
    return {"wall_s": wall, "training_s": training, "startup_s": comparison.workers[0].startup_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="MNIST .npz (keras.datasets layout)")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--workers", default="1,2", help="workers per backend to try")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--points", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    os.environ.setdefault("KERAS_BACKEND", backends[0])  # the optimizers are checked in this process
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = []
    for _ in range(args.rounds):
        for backend in backends:
            plain = _plain_run(backend, args.mnist)
            print(
                f"{backend}: one plain run {plain['wall_s']:.1f} s wall for {plain['training_s']:.2f} s of training",
                flush=True,
            )
            for workers, warm in [(int(w), warm) for w in args.workers.split(",") for warm in (False, True)]:
                from keras_adaptive_gui import sweep

                if not warm:
                    pool = sweep.Pool(keep=workers)
                # warm: a second sweep on the workers of the first (Keras imported, models compiled),
                # as the page's second sweep finds them
                r = _sweep(backend, args.mnist, workers, args.seeds, args.points, pool=pool)
                if warm:
                    pool.close()
                r["plain_run"], r["warm"] = plain, warm
                results.append(r)
                print(
                    f"{backend}, {workers} worker(s), {'warm' if warm else 'cold'}: {r['runs']} runs in "
                    f"{r['wall_s']:.1f} s "
                    f"(first run started after {r['first_run_started_s']:.1f} s); training "
                    f"{r['training_s_per_run_mean']:.3f} s per run; wall x workers per run "
                    f"{r['wall_s_per_run_x_workers']:.3f} s: overhead {r['overhead_per_run_s']:.3f} s "
                    f"= {100 * r['overhead_fraction']:.0f}% of training; {r['statuses']}",
                    flush=True,
                )
                if warm:
                    continue
                from keras_adaptive_gui.cli import format_table

                print(format_table(r["table"]))
                for name in r["tuned"]:
                    t, u = r["tuned"][name], r["untuned"][name]
                    print(
                        f"    {name:22s} default lr {u['learning_rate']:.3g}: {u['median_best_val_acc']}  "
                        f"best lr {t['learning_rate']:.3g}: {t['median_best_val_acc']:.4f}"
                    )
    os.makedirs(os.path.join("benchmarks", "results"), exist_ok=True)
    path = os.path.join("benchmarks", "results", f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
