"""Long run: many optimizer steps with the resident memory (RSS) sampled as it goes.

    KERAS_BACKEND=jax python -m tests.soak --steps 10000

Trains one small MLP per optimizer class (the representatives of tests/test_distributed.py,
so every class with its full state), in turn: step s is one `train_on_batch` of model
s mod 7, so 10,000 steps are 10,000 optimizer steps, ~1,430 per class (`--lockstep`: every
model at every step, 7 optimizer steps per step). RSS is read from /proc/self/status
(VmRSS) every `--sample-every` steps. After `--warmup` steps (compilation, allocator pools,
caches) memory must stay flat: the script prints RSS at the end of the warm-up, at the end,
the peak, and the least-squares slope over the samples after warm-up, in MB per 1,000 steps.
tests/test_soak.py runs a short version and bounds the growth.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(
    steps: int = 10_000, warmup: int = 1_000, sample_every: int = 250, case_ids=None, log=None, lockstep: bool = False
) -> dict:
    import keras
    import numpy as np

    from tests.cases import BY_ID, REPRESENTATIVES

    case_ids = list(case_ids or REPRESENTATIVES)
    rng = np.random.default_rng(0)
    pool = [(rng.normal(size=(32, 8)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")) for _ in range(8)]
    models = []
    for case_id in case_ids:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)])
        # Small learning rates: 10,000 steps on noise must not diverge (that is not what is measured).
        model.compile(optimizer=BY_ID[case_id].make(learning_rate=1e-4), loss="mse")
        models.append(model)
    samples = []  # (step, rss in MB)
    start = time.time()
    for step in range(1, steps + 1):
        x, y = pool[step % len(pool)]
        for model in models if lockstep else [models[step % len(models)]]:
            model.train_on_batch(x, y)
        if step % sample_every == 0 or step == warmup:
            gc.collect()
            samples.append((step, rss_mb()))
            if log:
                log(f"step {step:6d}  RSS {samples[-1][1]:8.1f} MB  {time.time() - start:6.0f} s")
    iterations = [int(keras.ops.convert_to_numpy(m.optimizer.iterations)) for m in models]
    assert sum(iterations) == steps * (len(models) if lockstep else 1), iterations
    weights_finite = all(np.all(np.isfinite(w)) for m in models for w in m.get_weights())
    after = [(s, r) for s, r in samples if s >= warmup]
    at_warmup = after[0][1]
    xs = np.array([s for s, _ in after], dtype="float64")
    ys = np.array([r for _, r in after], dtype="float64")
    slope = float(np.polyfit(xs, ys, 1)[0] * 1000) if len(after) > 2 else 0.0
    return {
        "backend": keras.backend.backend(),
        "optimizers": case_ids,
        "steps": steps,
        "warmup": warmup,
        "optimizer_steps": sum(iterations),
        "lockstep": lockstep,
        "seconds": round(time.time() - start, 1),
        "rss_first_mb": round(samples[0][1], 1),
        "rss_at_warmup_mb": round(at_warmup, 1),
        "rss_final_mb": round(samples[-1][1], 1),
        "rss_peak_after_warmup_mb": round(float(ys.max()), 1),
        "growth_after_warmup_mb": round(samples[-1][1] - at_warmup, 2),
        "max_growth_after_warmup_mb": round(float(ys.max()) - at_warmup, 2),
        "slope_mb_per_1000_steps": round(slope, 3),
        "weights_finite": bool(weights_finite),
        "samples": samples,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--backend", help="sets KERAS_BACKEND (default: the environment's)")
    parser.add_argument("--lockstep", action="store_true", help="every optimizer at every step")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = run(args.steps, args.warmup, args.sample_every, log=lambda s: print(s, flush=True), lockstep=args.lockstep)
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
