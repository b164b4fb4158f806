"""The worker: one process per run, on one backend, training every optimizer of the run.

`run(config, queue, stop)` is the process target. It sets `KERAS_BACKEND` before keras
is first imported (this module imports keras only inside functions), builds one model
per optimizer from the same NumPy initial weights, and interleaves their steps on the
same batches in the same order. It reports through `queue` with plain dicts:

    {"type": "ready", "backend", "keras", "startup_s"}
    {"type": "steps", "rows": [{"series", "step", "time", "loss", "x", "y"}, ...],
                      "stats": [{"series", "step", "effective_lr", "update_ratio", "grad_norm"}, ...],
                      "wall": time.time() when sent}
        (rows: per-step batch loss; "time" is that optimizer's own cumulated step time;
         "x", "y" only for 2-D tasks. stats: the optimizer's statistics after `step`, each a
         float or None, at most a few hundred times per run, in the message of their step's
         row or a later one)
    {"type": "epoch", "series", "epoch", "step", "val_loss", "val_acc"}
    {"type": "diverged", "series", "step", "loss"}
    {"type": "finished", "stopped": bool}
    {"type": "error", "message", "traceback"}

The statistics of a model come from `keras_adaptive.callbacks.OptimizerMonitor` (its
whole-model record): the weighted median effective learning rate, the update ratio
||w_t - w_{t-1}|| / ||w_{t-1}|| and the norm of the training batch's gradient that the step
applied, both over all weights. The monitor needs `effective_learning_rate`, so Keras'
built-in optimizers get no statistics on models. On a 2-D function the step returns the
gradient it applied, grad f(p_{t-1}), and the update ratio comes from the positions, so
every optimizer has those two.

`series` is the index of the optimizer in `config["optimizers"]`. `stop` is an Event;
the parent also terminates the process, which is always safe here.

Persistent workers (`serve`, used by sweeps and the page's runs): import Keras once, then take job after job
from `inbox` until None (or the server is gone). A job is a dict with an `"id"`; every
message the job sends carries `"job": id`, and its last message is "finished" (a run),
"result" (a call) or "error" (either; the worker lives on):

    {"job": "run", "id", "config": <a run config, as `run` takes>}
        a training run, reported as above. Built and compiled models and optimizers are
        kept per (task settings, optimizer, hyperparameters other than learning_rate); a
        later run with the same key resets the weights to its seed's initial weights,
        every optimizer variable (iterations too) to its value right after
        `optimizer.build`, and assigns its learning rate, so the compiled training
        function is reused (same numbers as a fresh run: tests/gui/test_sweep.py).
        `config["stats"] = False` leaves the optimizer statistics out (no monitor).
    {"job": "call", "id", "target": "package.module:function", "kwargs": {...}}
        `function(**kwargs, send=send, stopped=stopped)` in the warm process: `send(dict)`
        reports (tagged with the job's id), `stopped()` says whether to stop; its return
        value (picklable) comes back as {"type": "result", "value"}. For page actions that
        need Keras (e.g. a learning-rate finder) without changing this module.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

FLUSH_SECONDS = 0.15  # how often the worker sends what it did (the display can be no fresher)
STATS_POINTS = 100  # a model's optimizer statistics are recorded about this many times per run
CACHE_KEYS = 16  # (task settings, optimizer, hyperparameters) a persistent worker keeps built models for


def limit_threads(backend: str) -> None:
    """One PyTorch intra-op thread per worker process on a small machine (≤ 2 cores), or
    `KERAS_ADAPTIVE_WORKER_THREADS` threads (0: PyTorch's default). Its OpenMP threads wait
    at barriers for each other, and with the server, the browser and other work sharing 2
    cores, the MNIST MLP's 1.4 ms step took 60 ms with 2 threads (benchmarks/sweep.py). The
    page's runs and the sweeps' runs all start here, so they count with the same threads."""
    wanted = os.environ.get("KERAS_ADAPTIVE_WORKER_THREADS", "")
    threads = int(wanted) if wanted.strip() else (1 if (os.cpu_count() or 1) <= 2 else 0)
    if threads > 0 and backend == "torch":
        import torch

        torch.set_num_threads(threads)


def run(config: dict, queue: Any, stop: Any) -> None:
    os.environ["KERAS_BACKEND"] = config["backend"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    limit_threads(config["backend"])
    parent = os.getppid()

    def stopped() -> bool:  # asked to stop, or orphaned (the server is gone)
        return stop.is_set() or os.getppid() != parent

    try:
        _Trainer(config, queue.put, stopped).run()
    except BaseException as error:  # reported, then the process ends
        queue.put({"type": "error", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


SPARE_NAME, RUN_NAME = b"ka-spare", b"ka-run"  # the process's name (/proc/<pid>/comm) while idle, while running
WORKER_NICENESS = 19  # the lowest priority: training runs on the CPU time the page and the browser leave


def _name_process(name: bytes) -> None:
    """Name this process (Linux prctl PR_SET_NAME), so an idle spare is told from a run."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def become_worker(backend: str) -> None:
    """Make this (spawned) process a worker of `backend`, before Keras is imported: its
    backend, quiet TensorFlow logs, its threads (`limit_threads`), its name (idle: SPARE_NAME)
    and a lower priority."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    limit_threads(backend)
    _name_process(SPARE_NAME)
    lower_priority()


def lower_priority() -> None:
    """The server (the page's frames) and the browser go first: training takes what CPU is
    left. Niceness alone does not do it on Linux with autogroup scheduling (the default on
    desktop kernels), which shares the CPU fairly between sessions first (the terminal that
    runs the server, the browser) and applies niceness only within one: so the worker starts
    a session of its own and gives that session the niceness too."""
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(WORKER_NICENESS))
    except OSError:  # not Linux, no autogroup, or not allowed: niceness is what there is
        pass


def import_keras() -> dict | None:
    """Import Keras and the optimizer catalog now, before any run is asked for (the point of a
    warm worker); None, or the error message to tell the run that comes (the page shows it)."""
    try:
        import keras  # noqa: F401

        from keras_adaptive_gui import hyperparams

        hyperparams.catalog()
    except BaseException as error:  # told to the run that comes, not lost
        return {"type": "error", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    return None


def run_when_given(backend: str, inbox: Any, queue: Any, stop: Any) -> None:
    """A warm spare: import Keras and the optimizers now, then wait for one run's config on
    `inbox` and run it (`run`); None, or the server gone, ends it. The engine keeps one spare
    per backend in use, so a Train finds Keras already imported."""
    become_worker(backend)
    parent = os.getppid()
    import queue as queue_module

    failed = import_keras()
    while True:
        try:
            config = inbox.get(timeout=1.0)
            break
        except queue_module.Empty:
            if os.getppid() != parent:
                return
    if config is None:
        return
    _name_process(RUN_NAME)
    if failed is not None:
        queue.put(failed)
        return
    run(config, queue, stop)


def serve(backend: str, inbox: Any, outbox: Any, stop: Any) -> None:
    """A persistent warm worker: import Keras once, then run job after job from `inbox` (see
    the module's docstring) until None or the server is gone. `stop` (an Event) asks the job
    in progress to stop; the parent clears it before the next job."""
    become_worker(backend)
    serve_jobs(inbox, outbox, stop, rename=True)


def serve_jobs(inbox: Any, outbox: Any, stop: Any, rename: bool = False) -> None:
    """`serve`'s loop, without making this process a worker (its name, niceness and threads
    stay): what the tests run in their own process."""
    parent = os.getppid()
    import queue as queue_module

    failed = import_keras()  # imported once, before the first job
    cache = RunCache()
    while True:
        try:
            job = inbox.get(timeout=1.0)
        except queue_module.Empty:
            if os.getppid() != parent:
                return
            continue
        if job is None:
            return
        job_id = job.get("id")

        def send(message: dict, job_id: Any = job_id) -> None:
            outbox.put({**message, "job": job_id})

        def stopped() -> bool:
            return stop.is_set() or os.getppid() != parent

        if failed is not None:
            send(failed)
            continue
        if rename:
            _name_process(RUN_NAME)
        try:
            if job.get("job") == "call":
                module, name = job["target"].split(":")
                import importlib

                function = getattr(importlib.import_module(module), name)
                send({"type": "result", "value": function(**job.get("kwargs", {}), send=send, stopped=stopped)})
            elif job.get("job") == "run":
                _Trainer(job["config"], send, stopped, cache).run()
            else:
                raise ValueError(f"Unknown job {job.get('job')!r}: 'run' or 'call'.")
        except BaseException as error:  # told, and the worker takes the next job
            send({"type": "error", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})
        if rename:
            _name_process(SPARE_NAME)


class RunCache:
    """What a persistent worker keeps between runs: data sets, and per (task settings,
    optimizer key, hyperparameters other than learning_rate) built models (or 2-D points)
    with their compiled optimizer, and the optimizer variables' values right after build."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.entries: dict = {}
        self.monitors: dict = {}  # (id(model), every) -> its OptimizerMonitor (the page's runs)

    @staticmethod
    def key(config: dict, choice: dict) -> tuple:
        others = tuple(sorted((k, v) for k, v in choice["kwargs"].items() if k != "learning_rate"))
        task = config["task"]
        return (task, config.get("cell", "LSTM"), config.get("seq_len", 30), choice["key"], others)

    def take(self, config: dict, choice: dict, nth: int, make: Callable[[dict], Any]) -> Any:
        """The `nth` entry (0, 1, ... for repeats of one key within a run) for this key, made
        by `make(choice)` the first time."""
        key = self.key(config, choice)
        entries = self.entries.pop(key, [])
        self.entries[key] = entries  # the most recently used last
        while len(entries) <= nth:
            entries.append(make(choice))
        # The page's runs try many settings: the least recently used beyond CACHE_KEYS go (a run
        # has at most 6 optimizers, so never one of the run in progress), with their monitors.
        while len(self.entries) > CACHE_KEYS:
            dropped = self.entries.pop(next(iter(self.entries)))
            gone = {id(entry[0]) for entry in dropped}
            self.monitors = {k: m for k, m in self.monitors.items() if k[0] not in gone}
        return entries[nth]


def _snapshot(optimizer: Any) -> list:
    from keras import ops

    return [np.array(ops.convert_to_numpy(v.value)) for v in optimizer.variables]


def _restore(optimizer: Any, values: list, choice: dict) -> None:
    """Every optimizer variable back to its value right after build, then the run's learning rate."""
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    if "learning_rate" in choice["kwargs"]:
        optimizer.learning_rate = choice["kwargs"]["learning_rate"]


class _Trainer:
    def __init__(
        self,
        config: dict,
        send: Callable[[dict], None],
        stopped: Callable[[], bool],
        cache: RunCache | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.send = send
        self.stopped = stopped
        self.rows: list[dict] = []
        self.stats: list[dict] = []
        self.monitors: list = []
        self.last_flush = -math.inf  # the first steps go out at once: the page's first curve waits for them

    def flush(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not (force or (self.rows and now - self.last_flush >= FLUSH_SECONDS)):
            return
        self.collect_monitor_stats()
        if self.rows or self.stats:
            # "wall": when this was sent (time.time()), for measuring how far the display lags.
            self.send({"type": "steps", "rows": self.rows, "stats": self.stats, "wall": time.time()})
            self.rows, self.stats = [], []
        self.last_flush = now

    def run(self) -> None:
        started = time.perf_counter()
        import keras

        from keras_adaptive_gui import hyperparams, tasks

        c = self.config
        if keras.backend.backend() != c["backend"]:
            raise RuntimeError(
                f"keras was imported with the {keras.backend.backend()} backend before KERAS_BACKEND was set "
                f"to {c['backend']}; start workers through keras_adaptive_gui.engine."
            )
        if self.cache is None:
            self.optimizers = [hyperparams.make(o["key"], o["kwargs"]) for o in c["optimizers"]]
        task = tasks.TASKS[c["task"]]
        kind = task.kind
        total = c["steps_2d"] if task.is_2d else c["epochs"] * c["steps_per_epoch"]
        self.lr_every = max(1, total // STATS_POINTS)
        if task.is_2d:
            self.prepare_2d()
        else:
            self.prepare_model(kind)
        self.send(
            {
                "type": "ready",
                "backend": keras.backend.backend(),
                "keras": keras.__version__,
                "startup_s": time.perf_counter() - started,
            }
        )
        stopped = self.train_2d() if task.is_2d else self.train_model(kind)
        self.flush(force=True)
        self.send({"type": "finished", "stopped": stopped})

    # --- optimizer statistics ----------------------------------------------------------

    def add_stats(self, series: int, step: int, effective_lr: Any, update_ratio: Any, grad_norm: Any) -> None:
        values = {"effective_lr": effective_lr, "update_ratio": update_ratio, "grad_norm": grad_norm}
        row = {"series": series, "step": step}
        row.update({k: float(v) if v is not None and math.isfinite(v) else None for k, v in values.items()})
        self.stats.append(row)

    def effective_lr(self, optimizer: Any, variables: list) -> Any:
        if not hasattr(optimizer, "effective_learning_rate"):
            return None  # Keras' built-ins do not expose it
        from keras import ops

        values = [np.ravel(ops.convert_to_numpy(optimizer.effective_learning_rate(v))) for v in variables]
        return float(np.median(np.concatenate(values)))

    def start_monitors(self) -> None:
        """One OptimizerMonitor per model, driven by hand around `train_on_batch`."""
        from keras_adaptive.callbacks import OptimizerMonitor

        self.monitors, self.records_seen = [], []
        for model, optimizer in zip(self.models, self.optimizers):
            monitor = None
            if hasattr(optimizer, "effective_learning_rate"):  # what the monitor needs; not Keras' built-ins
                # A cached model keeps its monitor: a new one would trace and compile its observed
                # training function again (2.5 s a run on JAX); its records start empty each run.
                kept = self.cache.monitors.get((id(model), self.lr_every)) if self.cache is not None else None
                if kept is not None and getattr(kept, "_model", None) is model:
                    monitor = kept
                    monitor.records.clear()
                else:
                    monitor = OptimizerMonitor(every=self.lr_every, log_to_history=False, summary=True)
                    monitor.set_model(model)
                    if self.cache is not None:
                        self.cache.monitors[(id(model), self.lr_every)] = monitor
                monitor.on_train_begin()
            self.monitors.append(monitor)
            self.records_seen.append(0)

    def collect_monitor_stats(self) -> None:
        """The monitors' whole-model records made since the last call, as stats rows. Resolving
        them syncs the device, so it happens here, when rows are sent, outside the step timing."""
        from keras_adaptive.callbacks import MODEL  # the whole-model record (`summary=True`)

        for i, monitor in enumerate(self.monitors):
            if monitor is None:
                continue
            monitor.flush()
            records = monitor.records[self.records_seen[i] :]
            self.records_seen[i] += len(records)
            for r in records:
                if r["variable"] == MODEL:
                    self.add_stats(i, r["step"], r["elr_p50"], r["update_ratio"], r["grad_norm"])

    # --- models ----------------------------------------------------------------------

    def load_data(self) -> Any:
        from keras_adaptive_gui import tasks

        c = self.config
        if tasks.TASKS[c["task"]].uses_mnist:
            key = (c["task"], c["mnist_path"])
            make = lambda: tasks.mnist_data(c["task"], c["mnist_path"])  # noqa: E731
        else:
            key = ("adding", c["seq_len"], c["seed"])
            make = lambda: tasks.adding_data(c["seq_len"], c["seed"])  # noqa: E731
        if self.cache is None:
            return make()
        if key not in self.cache.data:
            self.cache.data = {key: make()}  # one data set kept: a sweep trains on one task
        return self.cache.data[key]

    def prepare_model(self, kind: str) -> None:
        from keras_adaptive_gui import hyperparams, tasks

        c = self.config
        self.data = self.load_data()
        self.order = tasks.batch_order(
            len(self.data.x_train), c["batch_size"], c["steps_per_epoch"], c["epochs"], c["seed"]
        )

        def new_model(optimizer: Any) -> Any:
            model = tasks.build_model(c["task"], c.get("cell", "LSTM"), c.get("seq_len", 30))
            model.compile(optimizer=optimizer, loss=tasks.loss_for(c["task"]))
            return model

        def new_entry(choice: dict) -> tuple:
            optimizer = hyperparams.make(choice["key"], choice["kwargs"])
            model = new_model(optimizer)
            optimizer.build(model.trainable_variables)  # what the first train_on_batch would do
            return model, optimizer, _snapshot(optimizer)

        self.models = []
        start = None
        if self.cache is None:
            for optimizer in self.optimizers:
                model = new_model(optimizer)
                start = start if start is not None else tasks.initial_weights(model.weights, c["seed"])
                model.set_weights(start)
                self.models.append(model)
        else:
            self.optimizers, seen = [], {}
            for choice in c["optimizers"]:
                key = RunCache.key(c, choice)
                seen[key] = seen.get(key, -1) + 1
                model, optimizer, values = self.cache.take(c, choice, seen[key], new_entry)
                start = start if start is not None else tasks.initial_weights(model.weights, c["seed"])
                model.set_weights(start)
                _restore(optimizer, values, choice)
                self.models.append(model)
                self.optimizers.append(optimizer)
        if c.get("stats", True):
            self.start_monitors()
        else:
            self.monitors = [None] * len(self.models)

    def evaluate(self, model: Any, kind: str) -> tuple[float, float]:
        out = np.asarray(model.predict_on_batch(self.data.x_val), dtype="float64")
        y = self.data.y_val
        if kind == "classify":
            shifted = out - out.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = float(-log_probs[np.arange(len(y)), y].mean())
            accuracy = float((out.argmax(axis=1) == y).mean())
        else:
            loss = float(np.mean((out - y) ** 2))
            accuracy = float(np.mean(np.abs(out - y) < 0.04))
        return loss, accuracy

    def train_model(self, kind: str) -> bool:
        stopped = self.train_model_steps(kind)
        for monitor in self.monitors:
            if monitor is not None:
                monitor.on_train_end()  # records the last step if it was a recorded one
        return stopped

    def train_model_steps(self, kind: str) -> bool:
        from keras_adaptive import _compat

        alive = [True] * len(self.models)
        own_time = [0.0] * len(self.models)
        step = 0
        for epoch in range(self.config["epochs"]):
            for batch, indices in enumerate(self.order[epoch]):
                step += 1
                x, y = self.data.x_train[indices], self.data.y_train[indices]
                for i, model in enumerate(self.models):
                    if not alive[i]:
                        continue
                    if self.monitors[i] is not None:
                        self.monitors[i].on_train_batch_begin(batch)
                    t0 = time.perf_counter()
                    loss = float(np.asarray(_compat.train_on_batch(model, x, y)["loss"]).reshape(-1)[0])
                    own_time[i] += time.perf_counter() - t0
                    self.rows.append({"series": i, "step": step, "time": own_time[i], "loss": loss})
                    if not math.isfinite(loss):
                        alive[i] = False
                        self.flush(force=True)
                        self.send({"type": "diverged", "series": i, "step": step, "loss": loss})
                self.flush()
                if self.stopped():
                    return True
                if not any(alive):
                    return False
            for i, model in enumerate(self.models):
                if alive[i]:
                    val_loss, val_acc = self.evaluate(model, kind)
                    self.flush(force=True)
                    self.send(
                        {
                            "type": "epoch",
                            "series": i,
                            "epoch": epoch + 1,
                            "step": step,
                            "val_loss": val_loss,
                            "val_acc": val_acc,
                        }
                    )
        return False

    # --- 2-D functions ---------------------------------------------------------------

    def prepare_2d(self) -> None:
        import keras

        from keras_adaptive_gui import hyperparams, tasks

        c = self.config
        self.function = tasks.FUNCTIONS_2D[c["task"]]

        def new_point() -> Any:
            return keras.Variable(np.array(self.function.start, dtype="float32"), name="xy")

        if self.cache is None:
            self.points = [new_point() for _ in self.optimizers]
            for optimizer, point in zip(self.optimizers, self.points):
                optimizer.build([point])
            self.steps = [_compiled_step(self.function.f, o, p) for o, p in zip(self.optimizers, self.points)]
            return

        def new_entry(choice: dict) -> tuple:
            optimizer, point = hyperparams.make(choice["key"], choice["kwargs"]), new_point()
            optimizer.build([point])
            return point, optimizer, _snapshot(optimizer), _compiled_step(self.function.f, optimizer, point)

        self.points, self.optimizers, self.steps, seen = [], [], [], {}
        for choice in c["optimizers"]:
            key = RunCache.key(c, choice)
            seen[key] = seen.get(key, -1) + 1
            point, optimizer, values, step = self.cache.take(c, choice, seen[key], new_entry)
            point.assign(np.array(self.function.start, dtype="float32"))
            _restore(optimizer, values, choice)
            self.points.append(point)
            self.optimizers.append(optimizer)
            self.steps.append(step)

    def train_2d(self) -> bool:
        from keras import ops

        alive = [True] * len(self.optimizers)
        own_time = [0.0] * len(self.optimizers)
        with_stats = self.config.get("stats", True)
        position = []  # each series' last (x, y)
        for i, point in enumerate(self.points):
            x, y = (float(v) for v in ops.convert_to_numpy(point.value))
            position.append((x, y))
            self.rows.append(
                {"series": i, "step": 0, "time": 0.0, "loss": float(self.function.f(x, y)), "x": x, "y": y}
            )
        for step in range(1, self.config["steps_2d"] + 1):
            for i, (optimizer, point) in enumerate(zip(self.optimizers, self.points)):
                if not alive[i]:
                    continue
                t0 = time.perf_counter()
                grad = self.steps[i]()
                own_time[i] += time.perf_counter() - t0
                x, y = (float(v) for v in ops.convert_to_numpy(point.value))
                loss = float(self.function.f(np.float64(x), np.float64(y)))
                self.rows.append({"series": i, "step": step, "time": own_time[i], "loss": loss, "x": x, "y": y})
                # Every step: the gradient comes with the step and the update is the change of position.
                (x0, y0), position[i] = position[i], (x, y)
                if with_stats:
                    size = math.hypot(x0, y0)
                    lr = self.effective_lr(optimizer, [point]) if step == 1 or step % self.lr_every == 0 else None
                    grad_norm = math.hypot(*(float(g) for g in ops.convert_to_numpy(grad)))
                    self.add_stats(i, step, lr, math.hypot(x - x0, y - y0) / size if size > 0 else None, grad_norm)
                if not (math.isfinite(loss) and abs(x) < 1e6 and abs(y) < 1e6):
                    alive[i] = False
                    self.flush(force=True)
                    self.send({"type": "diverged", "series": i, "step": step, "loss": loss})
            self.flush()
            if self.stopped():
                return True
            if not any(alive):
                return False
        return False


def _compiled_step(f: Callable, optimizer: Any, point: Any) -> Callable[[], Any]:
    """One optimizer step on `point` (a keras.Variable of shape (2,)) for f(x, y), with the
    gradient computed by the backend, compiled where the backend compiles (tf.function,
    jax.jit), so a 2-D run costs about a millisecond a step. The step returns the gradient
    it applied (a backend tensor of shape (2,))."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step():
            w = point.value
            with tf.GradientTape() as tape:
                tape.watch(w)
                value = f(w[0], w[1])
            grad = tape.gradient(value, w)
            optimizer.apply_gradients([(grad, point)])
            return grad

        return step
    if backend == "jax":
        import jax

        value_and_grad = jax.value_and_grad(lambda w: f(w[0], w[1]))

        @jax.jit
        def pure(optimizer_values, w):
            _, grad = value_and_grad(w)
            (new_w,), new_optimizer_values = optimizer.stateless_apply(optimizer_values, [grad], [w])
            return new_w, new_optimizer_values, grad

        def step():
            new_w, new_values, grad = pure([v.value for v in optimizer.variables], point.value)
            point.assign(new_w)
            for variable, value in zip(optimizer.variables, new_values):
                variable.assign(value)
            return grad

        return step
    if backend == "torch":
        import torch

        def step():
            w = point.value.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(w[0], w[1]), w)
            applied = grad.clone()  # the optimizer's fused kernels may work on `grad` in place
            optimizer.apply_gradients([(grad, point)])
            return applied

        return step
    raise ValueError(f"Backend {backend!r} is not supported for the 2-D functions.")
