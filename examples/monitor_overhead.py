"""What OptimizerMonitor costs: training time of the MNIST MLP with and without monitoring.

The 784-256-256-10 MLP, batch 128, Adam, `model.fit` on the current backend. One model
trains throughout; three configurations of callbacks take turns on it, one epoch (one `fit`)
each, in an order that rotates, `--rounds` x `--epochs` times. A first one-epoch `fit` of
each (tracing, compiling, the monitor's own training function) is reported apart. The
overhead of a configuration is the median, over the rounds, of its epoch's time divided by
the unmonitored epoch's of the same round, with a 95% bootstrap interval of that median and
the ratios' quartiles beside it. Taking turns on one model keeps two things out of the
comparison: a drifting machine (this one's speed moves by 10-20% over minutes) and the
difference between model instances (separate but identical models ran 3-5% apart on
TensorFlow).

- no monitor;
- `OptimizerMonitor(every=10)`: effective-LR percentiles, update ratios and gradient norms
  of every variable;
- `OptimizerMonitor(every=10, summary=True)`: plus the whole-model record.

    python examples/monitor_overhead.py                     # current KERAS_BACKEND
    python examples/monitor_overhead.py --backends tensorflow,jax,torch
    python examples/monitor_overhead.py --short
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import _common
import numpy as np


def measure(args):
    import keras

    import keras_adaptive as ka
    from keras_adaptive.callbacks import OptimizerMonitor

    x, y, _, _, source = _common.load_mnist(args)
    n = (len(x) // 128) * 128
    x, y = x[:n], y[:n]
    every = 2 if args.short else 10  # --short trains 8 steps: record anyway
    configs = {
        "none": lambda: [],
        f"every {every}": lambda: [OptimizerMonitor(every=every, log_to_history=False)],
        f"every {every} + summary": lambda: [OptimizerMonitor(every=every, summary=True, log_to_history=False)],
    }

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append((time.perf_counter() - self._start[0], time.process_time() - self._start[1]))

    steps = n // 128
    per_step = {name: [] for name in configs}
    cpu_per_step = {name: [] for name in configs}
    first = {}
    model = _common.compile_classifier(_common.mlp(seed=args.seed), ka.Adam())
    timer = EpochTimer()
    # The timer goes last, so an epoch's time includes the monitor's callbacks.
    setups = {name: [*make_callbacks(), timer] for name, make_callbacks in configs.items()}
    for name, callbacks in setups.items():
        model.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=callbacks)
        first[name] = timer.times.pop()[0]
    names = list(setups)
    for i in range(args.rounds * args.epochs):
        # The order rotates from round to round, so that no configuration always follows another.
        for name in names[i % len(names) :] + names[: i % len(names)]:
            callbacks = setups[name]
            model.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=callbacks)
            wall, cpu = timer.times.pop()
            per_step[name].append(wall / steps * 1e3)
            cpu_per_step[name].append(cpu / steps * 1e3)
    base = np.array(per_step["none"])
    ratios = {name: np.array(v) / base for name, v in per_step.items()}
    return {
        "backend": _common.backend_name(),
        "source": source,
        "steps_per_epoch": steps,
        "load_average": os.getloadavg()[0],
        "ms_per_step": {name: float(np.median(v)) for name, v in per_step.items()},
        "ms_per_step_all": per_step,
        "overhead_quartiles": {
            name: [float(100 * (np.percentile(r, q) - 1)) for q in (25, 50, 75)] for name, r in ratios.items()
        },
        "overhead_median_ci95": {name: median_interval(r) for name, r in ratios.items()},
        "cpu_ms_per_step": {name: float(np.median(v)) for name, v in cpu_per_step.items()},
        "torch_threads": _torch_threads(),
        "first_epoch_s": first,
    }


def median_interval(ratios: np.ndarray, draws: int = 2000) -> list[float]:
    """A 95% bootstrap interval of the median overhead (%), from the per-round ratios: how far
    the median of this many rounds can be trusted on a machine this noisy."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, (draws, len(ratios))), axis=1)
    return [float(100 * (np.percentile(medians, q) - 1)) for q in (2.5, 97.5)]


def report(result) -> None:
    cpu_base = result["cpu_ms_per_step"]["none"]
    print(
        f"{result['backend']}: {result['steps_per_epoch']} steps/epoch, {result['source']}; "
        f"load average at the end {result['load_average']:.1f}"
    )
    for name, ms in result["ms_per_step"].items():
        cpu = result["cpu_ms_per_step"][name]
        low, median, high = result["overhead_quartiles"][name]
        ci_low, ci_high = result["overhead_median_ci95"][name]
        overhead = (
            ""
            if name == "none"
            else (
                f"  overhead {median:+.1f}% wall (95% interval {ci_low:+.1f}%, {ci_high:+.1f}%; quartiles "
                f"{low:+.1f}%, {high:+.1f}%), {100 * (cpu / cpu_base - 1):+.1f}% CPU"
            )
        )
        print(
            f"  {name:18s} {ms:7.3f} ms/step wall, {cpu:7.3f} ms/step CPU (medians){overhead}   "
            f"first epoch {result['first_epoch_s'][name]:.2f} s"
        )


def main():
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p, train_size=6000)
    p.add_argument("--epochs", type=int, default=4, help="timed epochs per round and configuration")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backends", default=None, help="comma-separated: run each in its own process")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads(n) first (on a busy machine 2 OpenMP threads slow torch 10x)",
    )
    p.add_argument("--json", default=None, help=argparse_json_help())
    args = p.parse_args()
    if args.short:
        args.epochs, args.rounds, args.train_size = 2, 1, 1024
    if args.torch_threads and _common.backend_name() == "torch":
        import torch

        torch.set_num_threads(args.torch_threads)

    if args.backends:
        results = []
        for backend in args.backends.split(","):
            out = os.path.join(args.out, f"monitor_overhead_{backend}.json")
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--json",
                out,
                "--out",
                args.out,
                "--epochs",
                str(args.epochs),
                "--rounds",
                str(args.rounds),
                "--train-size",
                str(args.train_size),
            ]
            command += ["--mnist", args.mnist] if args.mnist else []
            command += ["--torch-threads", str(args.torch_threads)] if args.torch_threads else []
            subprocess.run(command, check=True, env={**os.environ, "KERAS_BACKEND": backend})
            with open(out) as f:
                results.append(json.load(f))
    else:
        results = [measure(args)]
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(results[0], f)
        report(results[0])
        if args.json:
            return

    if args.backends:
        for result in results:
            report(result)
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(results[0]["ms_per_step"])
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [r["ms_per_step"][name] for r in results]
        bars = ax.bar(np.arange(len(results)) + i * width, values, width, label=name)
        if name != "none":
            for bar, r in zip(bars, results):
                pct = r["overhead_quartiles"][name][1]
                ax.annotate(
                    f"{pct:+.1f}%",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(
        np.arange(len(results)) + width * (len(names) - 1) / 2,
        [f"{r['backend']}\n(load average {r['load_average']:.1f})" for r in results],
    )
    ax.set(
        ylabel="ms per training step (median over epochs)",
        title="OptimizerMonitor overhead, MNIST MLP 784-256-256-10, batch 128, Adam\n"
        "(wall clock; negative overheads mean other load on the machine dominates)",
    )
    ax.legend(fontsize=8)
    _common.save(fig, args, "monitor_overhead.png")


def _torch_threads():
    if _common.backend_name() != "torch":
        return None
    import torch

    return torch.get_num_threads()


def argparse_json_help() -> str:
    return "write the measurements of this backend to this JSON file (used by --backends)"


if __name__ == "__main__":
    main()
