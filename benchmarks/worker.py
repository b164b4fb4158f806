"""One backend's measurements, run in its own process (`run.py` starts one per backend).

    KERAS_BACKEND=jax python -m benchmarks.worker --out results/jax.json [--quick]

Every measurement is a group of contenders timed in interleaved rounds: each round runs
every contender for a few steps (in a rotated order), and the reported time is the
median over rounds of the mean step time within a round. The first call of each
contender (building state, tracing, compiling) is timed apart. A memory-bandwidth probe
is one of the contenders of every `apply` group, so the bound it gives was measured in
the same minutes as the steps it bounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_adaptive as ka  # noqa: E402
from benchmarks import specs  # noqa: E402

# --- memory -------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_extra_bytes(step) -> int | None:
    """Resident memory a warm step adds at its peak, over what was resident before it."""
    if not os.path.exists("/proc/self/status"):
        return None
    gc.collect()
    before = _status_kib("VmRSS")
    if not _reset_peak():
        return None
    step()
    return max(0, _status_kib("VmHWM") - before) * 1024


def cpu_jiffies() -> tuple[int, int, int]:
    """(all CPUs' busy jiffies, all jiffies, this process's jiffies): for the share others used."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields), int(own[11]) + int(own[12])
    except (OSError, ValueError, IndexError):
        return 0, 0, 0


def others_cpu(before, after) -> float:
    """CPUs' worth of time used by other processes between two `cpu_jiffies()` readings."""
    busy, total, own = (a - b for a, b in zip(after, before))
    cpus = os.cpu_count() or 1
    return max(0.0, (busy - own) / total * cpus) if total else 0.0


def minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# --- timing -------------------------------------------------------------------------


class Contender:
    """Something to time: `step()` runs one step and waits for it to finish."""

    def __init__(self, impl: str, make, *, bytes_per_step=None):
        self.impl = impl
        self.make = make  # () -> step function; builds state
        self.step = None
        self.times: list[float] = []
        self.first_call_ms = None
        self.bytes_per_step = bytes_per_step
        self.info: dict = {}
        self.faults: list[float] = []
        self.others: list[float] = []


def time_group(contenders: list, rounds: int, steps: int, warmup: int = 2) -> None:
    for c in contenders:
        start = time.perf_counter()
        c.step = c.make()
        c.step()
        c.first_call_ms = (time.perf_counter() - start) * 1e3
        for _ in range(warmup):
            c.step()
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            faults, jiffies = minor_faults(), cpu_jiffies()
            start = time.perf_counter()
            for _ in range(steps):
                c.step()
            c.times.append((time.perf_counter() - start) * 1e3 / steps)
            c.faults.append((minor_faults() - faults) / steps)
            c.others.append(others_cpu(jiffies, cpu_jiffies()))


def summary(c: Contender) -> dict:
    t = sorted(c.times)
    q = statistics.quantiles(t, n=4) if len(t) >= 2 else [t[0]] * 3
    return {
        "impl": c.impl,
        "median_ms": statistics.median(t),
        "q25_ms": q[0],
        "q75_ms": q[2],
        "min_ms": t[0],
        "rounds": len(t),
        "first_call_ms": c.first_call_ms,
        "minor_faults_per_step": statistics.median(c.faults),
        "others_cpu": statistics.median(c.others) if c.others else None,
        **c.info,
    }


# --- backend specifics ----------------------------------------------------------------


def make_grads(count: int, shape: tuple, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    # Mixed magnitudes, as real gradients have; no zeros (no denormals in the state).
    return [
        (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 0)).astype("float32") + np.float32(1e-3)
        for _ in range(count)
    ]


def make_weights(count: int, shape: tuple, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 0.05).astype("float32") for _ in range(count)]


def state_bytes_keras(optimizer) -> tuple[int, int]:
    """(bytes of all optimizer state, bytes of per-weight slots only)."""
    total = slots = 0
    for v in optimizer.variables:
        n = int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        total += n
        if len(v.shape) > 0:
            slots += n
    return total, slots


def keras_contender(impl: str, factory: str, weights_np, grads_np):
    """A Keras optimizer's `apply`, run as Keras' trainer runs it on this backend."""

    def make():
        optimizer = eval(factory, {"ka": ka, "keras": keras})
        variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(weights_np)]
        optimizer.build(variables)
        contender.info["state_bytes"], contender.info["slot_bytes"] = state_bytes_keras(optimizer)
        contender.info["class"] = type(optimizer).__module__ + "." + type(optimizer).__name__
        if BACKEND == "torch":
            import torch

            grads = [torch.from_numpy(g.copy()) for g in grads_np]
            try:
                from keras_adaptive.backend import torch_fused

                contender.info["torch_path"] = torch_fused.describe(optimizer, variables)
            except (ImportError, AttributeError):
                pass

            def step():
                optimizer.apply(grads, variables)

            return step
        if BACKEND == "jax":
            import jax
            import jax.numpy as jnp

            grads = [jnp.asarray(g) for g in grads_np]
            state = {
                "opt": [jnp.array(v.value) for v in optimizer.variables],
                "train": [jnp.array(v.value) for v in variables],
            }

            # Arguments in the order of the results, as Keras' JAX trainer passes its state: JAX pairs
            # each result with the first unused donated argument of its shape, so `stateless_apply`'s own
            # order (optimizer variables first, weights returned first) would alias every weight to a
            # moment's buffer and make XLA copy all of them (22 copies of 16 MB each per Adam step).
            def train_then_opt(train, opt, gradients):
                return optimizer.stateless_apply(opt, gradients, train)

            apply = jax.jit(train_then_opt, donate_argnums=(0, 1))

            def step():
                state["train"], state["opt"] = apply(state["train"], state["opt"], grads)
                jax.block_until_ready(state["train"])

            return step
        if BACKEND == "tensorflow":
            import tensorflow as tf

            grads = [tf.constant(g) for g in grads_np]

            @tf.function(jit_compile=True)
            def apply(gs):
                optimizer.apply(gs, variables)

            def step():
                apply(grads)

            return step
        raise ValueError(BACKEND)

    contender = Contender(impl, make)
    return contender


def torch_peer(row) -> tuple:
    """`(torch.optim name, arguments, has a fused implementation)` of the row's algorithm, as
    `keras_adaptive.pytorch` declares it, or None where the row's configuration is not PyTorch's."""
    import inspect

    import torch

    import keras_adaptive as ka

    found = ka.pytorch.torch_equivalent(eval(row.keras_adaptive, {"ka": ka}))
    if found is None:
        return None
    name, kwargs = found
    return name, kwargs, "fused" in inspect.signature(getattr(torch.optim, name)).parameters


def torch_contender(impl: str, spec: tuple, weights_np, grads_np, fused: bool):
    import torch

    def make():
        name, kwargs = spec
        params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights_np]
        for p, g in zip(params, grads_np):
            p.grad = torch.from_numpy(g.copy())
        optimizer = getattr(torch.optim, name)(params, **kwargs, **({"fused": True} if fused else {"foreach": True}))
        optimizer.step()  # creates the state
        state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        contender.info["state_bytes"] = sum(t.numel() * t.element_size() for t in state)
        contender.info["slot_bytes"] = sum(t.numel() * t.element_size() for t in state if t.dim() > 0)
        return optimizer.step

    contender = Contender(impl, make)
    return contender


def optax_contender(spec: str, weights_np, grads_np):
    import jax
    import jax.numpy as jnp
    import optax

    def make():
        transform = eval(spec, {"optax": optax})
        grads = [jnp.asarray(g) for g in grads_np]
        params = [jnp.asarray(w) for w in weights_np]
        opt_state = transform.init(params)
        leaves = [x for x in jax.tree_util.tree_leaves(opt_state) if hasattr(x, "nbytes")]
        contender.info["state_bytes"] = sum(int(x.nbytes) for x in leaves)
        contender.info["slot_bytes"] = sum(int(x.nbytes) for x in leaves if x.ndim > 0)

        @jax.jit
        def _update(params, opt_state, grads):
            updates, opt_state = transform.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        update = jax.jit(_update, donate_argnums=(0, 1))
        state = {"params": params, "opt": opt_state}

        def step():
            state["params"], state["opt"] = update(state["params"], state["opt"], grads)
            jax.block_until_ready(state["params"])

        return step

    contender = Contender("optax", make)
    return contender


def bandwidth_contenders(n: int) -> list:
    """In-place `a += b` over n float32 (12 bytes per element): numpy and the backend's own."""

    def numpy_probe():
        a = np.ones(n, np.float32)
        b = np.ones(n, np.float32)

        def step():
            np.add(a, b, out=a)

        return step

    def native_probe():
        if BACKEND == "torch":
            import torch

            a, b = torch.ones(n), torch.ones(n)
            return lambda: a.add_(b)
        if BACKEND == "jax":
            import jax
            import jax.numpy as jnp

            add = jax.jit(lambda a, b: a + b, donate_argnums=0)
            state = {"a": jnp.ones(n, jnp.float32)}
            b = jnp.ones(n, jnp.float32)

            def step():
                state["a"] = add(state["a"], b)
                state["a"].block_until_ready()

            return step
        import tensorflow as tf

        a = tf.Variable(tf.ones(n))
        b = tf.ones(n)

        @tf.function(jit_compile=True)
        def add():
            a.assign_add(b)

        return add

    return [
        Contender("bandwidth_numpy", numpy_probe, bytes_per_step=12 * n),
        Contender("bandwidth_native", native_probe, bytes_per_step=12 * n),
    ]


# --- the benchmarks ---------------------------------------------------------------------


def bench_apply(rows, sizes, rounds, steps, log, records=None, save=lambda: None) -> list:
    records = [] if records is None else records
    for size_name, (count, shape) in sizes.items():
        weights = make_weights(count, shape)
        grads = make_grads(count, shape)
        n = count * int(np.prod(shape))
        for row in rows:
            group = [
                keras_contender("keras_adaptive", row.keras_adaptive, weights, grads),
                keras_contender("keras", row.keras, weights, grads),
            ]
            peer = torch_peer(row) if BACKEND == "torch" else None
            if peer is not None:
                name, kwargs, has_fused = peer
                group.append(torch_contender("torch_foreach", (name, kwargs), weights, grads, fused=False))
                if has_fused:
                    group.append(torch_contender("torch_fused", (name, kwargs), weights, grads, fused=True))
            if BACKEND == "jax" and row.optax:
                group.append(optax_contender(row.optax, weights, grads))
            group += bandwidth_contenders(n)
            log(f"apply {size_name} {row.id}: {', '.join(c.impl for c in group)}")
            time_group(group, rounds, steps)
            for c in group:
                rec = {
                    "bench": "apply",
                    "size": size_name,
                    "row": row.id,
                    "label": row.label,
                    "params": n,
                    "tensors": count,
                    **summary(c),
                }
                rec["peak_extra_bytes"] = peak_extra_bytes(c.step)
                if c.bytes_per_step:
                    rec["bandwidth_GBps"] = c.bytes_per_step / (rec["median_ms"] * 1e-3) / 1e9
                records.append(rec)
                log(f"  {c.impl:18s} {rec['median_ms']:9.3f} ms  first {rec['first_call_ms']:9.1f} ms")
            save()
            del group
            gc.collect()
    return records


def _mnist(steps: int, batch: int):
    from keras_adaptive.datasets import load_mnist

    data = load_mnist(download=False)
    n = steps * batch
    x = data.x_train[:n].astype("float32") / 255.0
    return x, data.y_train[:n].astype("int32")


def _model(kind: str):
    if kind == "mlp":
        return keras.Sequential(
            [
                keras.Input((28, 28)),
                keras.layers.Flatten(),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
    return keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(128), keras.layers.Dense(10)])


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self._start


def fit_contender(impl: str, factory: str, kind: str, x, y, batch: int, steps: int):
    def make():
        model = _model(kind)
        rng = np.random.default_rng(0)  # the same start for every contender
        model.set_weights([(rng.standard_normal(w.shape) * 0.05).astype("float32") for w in model.get_weights()])
        optimizer = eval(factory, {"ka": ka, "keras": keras})
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        timer = _EpochTimer()

        def step():
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
            # time_group divides the wall time by its step count; keep only the epoch's own time.
            return timer.seconds

        contender.model = model
        return step

    contender = Contender(impl, make)
    return contender


def bench_fit(row_ids, models, rounds, steps, batch, log, records=None, save=lambda: None) -> list:
    records = [] if records is None else records
    x, y = _mnist(steps, batch)
    for kind in models:
        for row_id in row_ids:
            row = specs.row(row_id)
            group = [
                fit_contender("keras_adaptive", row.keras_adaptive, kind, x, y, batch, steps),
                fit_contender("keras", row.keras, kind, x, y, batch, steps),
            ]
            # Time the epochs themselves (from the callback), not fit()'s setup.
            for c in group:
                start = time.perf_counter()
                c.step = c.make()
                c.step()
                c.first_call_ms = (time.perf_counter() - start) * 1e3
                c.step()
            for r in range(rounds):
                for c in group[r % 2 :] + group[: r % 2]:
                    jiffies = cpu_jiffies()
                    c.times.append(c.step() * 1e3 / steps)
                    c.faults.append(0)
                    c.others.append(others_cpu(jiffies, cpu_jiffies()))
            for c in group:
                rec = {
                    "bench": "fit",
                    "size": kind,
                    "row": row.id,
                    "label": row.label,
                    "batch": batch,
                    "steps_per_epoch": steps,
                    **summary(c),
                }
                rec.pop("minor_faults_per_step")
                records.append(rec)
                log(
                    f"fit {kind} {row.id} {c.impl:16s} {rec['median_ms']:8.3f} ms/step  first {rec['first_call_ms']:8.0f} ms"
                )
            save()
            del group
            gc.collect()
    return records


def environment(threads=None) -> dict:
    info = {
        "backend": BACKEND,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "thread_env": {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")},
        "threads": threads,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    if BACKEND == "torch":
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    elif BACKEND == "jax":
        import jax

        info["jax"] = jax.__version__
        try:
            import optax

            info["optax"] = optax.__version__
        except ImportError:
            pass
    else:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    return info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", default=None, help="comma-separated row ids (default: all)")
    parser.add_argument("--sizes", default=None, help="comma-separated: 1M,16M")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--no-apply", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (torch; TF)")
    args = parser.parse_args(argv)
    if args.threads:
        if BACKEND == "torch":
            import torch

            torch.set_num_threads(args.threads)
        elif BACKEND == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    quick = args.quick
    rows = specs.rows(quick, args.rows.split(",") if args.rows else None)
    sizes = specs.QUICK_SIZES if quick else specs.SIZES
    if args.sizes:
        sizes = {k: v for k, v in sizes.items() if k in args.sizes.split(",")}
    rounds = args.rounds or (3 if quick else 15)

    def log(msg):
        print(f"[{BACKEND} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    result = {"environment": environment(args.threads), "records": [], "started": time.time(), "complete": False}
    with open("/proc/loadavg") as f:
        result["loadavg_start"] = f.read().split()[:3]

    def save():  # after every group, so an interrupted run keeps what it measured
        for rec in result["records"]:
            rec["backend"] = BACKEND
        with open("/proc/loadavg") as f:
            result["loadavg_end"] = f.read().split()[:3]
        result["seconds"] = time.time() - result["started"]
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    if not args.no_apply:
        bench_apply(rows, sizes, rounds, 1 if quick else 3, log, result["records"], save)
    if not args.no_fit:
        fit_rows = specs.QUICK_FIT_ROWS if quick else [r for r in specs.FIT_ROWS if not args.rows or r in args.rows]
        bench_fit(
            fit_rows,
            specs.QUICK_FIT_MODELS if quick else specs.FIT_MODELS,
            1 if quick else max(5, rounds // 2),
            2 if quick else 20,
            128,
            log,
            result["records"],
            save,
        )
    result["complete"] = True
    save()


if __name__ == "__main__":
    main()
