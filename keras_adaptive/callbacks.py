"""Keras callbacks that show what the optimizers do during training.

`OptimizerMonitor` records, every few steps and for each trainable variable, the
optimizer's effective learning rate (its median and spread over the weights), the
size of the last update relative to the weights, and the norm of the gradient that
update applied. It reads the optimizer only through its documented monitoring methods,
`effective_learning_rate(variable)` (or `effective_learning_rate_at(variables, indices)`
for samples of the variables) and `track_gradient_norms()`, so it works with every
keras_adaptive optimizer, on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import numpy as np

import keras
from keras import ops

from keras_adaptive.math import l2_norms

_TINY = 1e-30  # keeps a ratio finite for an all-zero weight (a fresh bias)
_BATCH = 16  # measurements on the host turned into records together


class OptimizerMonitor(keras.callbacks.Callback):
    """Record per-variable optimizer statistics every `every` training steps.

    At each recorded step, for every trainable variable `w` (a layer's kernel, bias, ...):

    - `elr_p10`, `elr_p50`, `elr_p90`: percentiles over the weights of
      `optimizer.effective_learning_rate(w)`, the per-weight step size the optimizer
      would apply next (the factor that multiplies the gradient, or the momentum/first
      moment): `alpha` for SGD, `alpha / sqrt(r + eps)` for AdaGrad, and so on. For a
      variable with more than `max_samples` weights the percentiles are estimated from a
      fixed random sample of `max_samples` of them (chosen once; exact below that size;
      NumPy's linear interpolation).
    - `update_ratio`: `||w_t - w_{t-1}|| / ||w_{t-1}||`, the L2 norm of the change the
      last training step actually made (everything included: weight decay, clipping,
      momentum) divided by the L2 norm of the weights before it. Measured by keeping a
      copy of the weights before the recorded step; not read from the optimizer.
    - `grad_norm`: the L2 norm of the gradient of the training batch that the recorded
      step applied, as the optimizer received it (after loss-scale unscaling, before
      clipping). Keras' `fit` does not hand gradients to callbacks: the optimizer keeps
      their norms (`optimizer.track_gradient_norms()`, which the monitor calls), one
      reduction per variable per step.

    Results go to `self.records` (one dict per recorded step and variable, with `step`
    = `optimizer.iterations` after the step, `epoch`, `variable` = the variable's path),
    optionally to a CSV file with the same columns (one row per step and variable, written
    as training runs), and, with `log_to_history=True`, the last record of each epoch into
    the epoch logs as `"<variable path>/<stat>"` (so into `History.history`, and into the
    progress bar; use `verbose=0` or `2` with many variables). Measurements are read back to
    the host once they are done (so that on JAX the monitor never waits for a step to
    finish) and turned into records 16 at a time; `flush()` does so for all that are
    pending, and runs at the end of each epoch and of training.

    Args:
        every: record the training steps whose number (`optimizer.iterations` after the
            step, counted over all of the optimizer's training) is a multiple of `every`.
            Default 10. With `steps_per_execution=n` in `compile`, Keras calls callbacks
            every n steps: a record is made after the call holding such a step (its
            gradient norms are that step's; its update ratio spans the whole call).
        csv_path: optional path of a CSV file to (over)write.
        log_to_history: add each epoch's last record to the epoch logs. Default True.
        max_samples: most weights per variable used for the percentiles. Default 4096.
        percentiles: which percentiles of the effective learning rate to record.
            Default (10, 50, 90).
        variables: optional list of variable paths (or substrings of them) to record;
            default all trainable variables.
        summary: also record, at each recorded step, the whole model (all the recorded
            variables together) as `variable="(model)"`: effective-LR percentiles over all
            its weights (from the per-variable samples, each weighted by the number of
            weights it stands for; NumPy's "inverted_cdf" percentiles), the update ratio and
            the gradient norm with global L2 norms. Default False.

    Example:
        >>> monitor = keras_adaptive.callbacks.OptimizerMonitor(every=10)
        >>> model.fit(x, y, callbacks=[monitor])
        >>> monitor.records[-1]   # {'step': ..., 'variable': 'dense/kernel', 'elr_p50': ..., ...}

    Cost: a record is one compiled copy of the weights before the step and one compiled
    measurement after it (`tf.function` on TensorFlow, `jax.jit` on JAX, eager on PyTorch),
    read back to the host one record later; on JAX the monitor reads the trainer's state
    without syncing it into the model. The gradient norms cost a reduction per variable on
    the recorded steps only (a conditional on the others). On the 2-core CPU this is
    developed on, for the MNIST MLP (784-256-256-10, batch 128; steps of 0.8 ms on JAX,
    1.9 ms on TensorFlow, 2.2 ms on PyTorch), `every=10` adds 0-1% to training on JAX,
    4-5% on PyTorch and 9% on TensorFlow (two runs of `python examples/monitor_overhead.py
    --backends tensorflow,jax,torch --mnist mnist.npz --train-size 30000`). Measure yours
    with that script, and raise `every` for small, fast models.
    """

    def __init__(
        self,
        every: int = 10,
        csv_path: Optional[str] = None,
        log_to_history: bool = True,
        max_samples: int = 4096,
        percentiles: Sequence[float] = (10, 50, 90),
        variables: Optional[Sequence[str]] = None,
        summary: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Argument `every` must be an integer >= 1, got {every!r}.")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"Argument `max_samples` must be an integer >= 1, got {max_samples!r}.")
        for q in percentiles:
            if not 0 <= q <= 100:
                raise ValueError(f"Argument `percentiles` must hold numbers in [0, 100], got {percentiles!r}.")
        self.every = every
        self.csv_path = csv_path
        self.log_to_history = log_to_history
        self.max_samples = max_samples
        self.percentiles = tuple(float(q) for q in percentiles)
        self.variables = list(variables) if variables is not None else None
        self.summary = bool(summary)
        self.records: list[dict] = []
        self._step = 0
        self._epoch = 0
        self._previous = None
        self._pending: list = []
        self._host: list = []
        self._epoch_record: dict = {}

    # --- names --------------------------------------------------------------------

    @property
    def stat_names(self) -> list[str]:
        return [f"elr_p{q:g}" for q in self.percentiles] + ["update_ratio", "grad_norm"]

    @property
    def columns(self) -> list[str]:
        return ["step", "epoch", "variable"] + self.stat_names

    # --- training hooks --------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = model.optimizer
        if not hasattr(optimizer, "effective_learning_rate"):
            raise ValueError(
                "OptimizerMonitor needs an optimizer with `effective_learning_rate(variable)` (the "
                f"keras_adaptive optimizers); got {type(optimizer).__name__}."
            )
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if optimizer.track_gradient_norms(every=self.every):
            # A training function traced before does not record them (TensorFlow would keep
            # using it): trace it again. Keras' `fit` reads `model.train_function` at each step.
            if getattr(model, "train_function", None) is not None:
                model.make_train_function(force=True)
        # Recorded are the steps whose number t (the optimizer's, counted over every `fit`) is
        # a multiple of `every`: those whose gradient norms the optimizer keeps. A call of the
        # batch hooks covers `steps_per_execution` steps.
        self._step = int(ops.convert_to_numpy(optimizer.iterations))
        steps = getattr(model, "steps_per_execution", 1)
        self._steps_per_call = steps if isinstance(steps, int) and steps > 0 else 1
        all_variables = list(model.trainable_variables)
        self._positions = [
            i
            for i, v in enumerate(all_variables)
            if self.variables is None or any(name in v.path for name in self.variables)
        ]
        watched = [all_variables[i] for i in self._positions]
        # Another `fit` of the same model: keep the samples and the compiled functions (tracing
        # and compiling them again would cost every `fit` a fraction of a second).
        key = (id(model), id(optimizer), tuple(id(v) for v in watched))
        if getattr(self, "_prepared_for", None) != key:
            self._prepare(model, optimizer, watched)
            self._prepared_for = key
        self._previous = None
        self._pending = []
        self._host = []
        self._csv_file = None
        if self.csv_path:
            directory = os.path.dirname(os.path.abspath(self.csv_path))
            os.makedirs(directory, exist_ok=True)
            self._csv_file = open(self.csv_path, "w", newline="")
            self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
            self._csv_writer.writeheader()

    def _prepare(self, model, optimizer, watched: list) -> None:
        """The fixed samples of the watched variables and the compiled measuring functions."""
        self._watched = watched
        self._norm_indices = ops.convert_to_tensor([optimizer._get_variable_index(v) for v in self._watched], "int32")
        rng = np.random.default_rng(0)
        self._sample_indices, self._sample_sizes, self._sample_weights = [], [], []
        for v in self._watched:
            size = int(np.prod(v.shape))
            sample = min(size, self.max_samples)
            self._sample_sizes.append(sample)
            self._sample_weights.append(np.full(sample, size / sample))  # weights each sample stands for
            if size > self.max_samples:
                idx = np.sort(rng.choice(size, self.max_samples, replace=False)).astype("int32")
                self._sample_indices.append(ops.convert_to_tensor(idx))
            else:
                self._sample_indices.append(None)
        # The effective LRs are evaluated once per dtype (the formula is element-wise): their
        # samples come in the order of these groups.
        groups: dict = {}
        for k, v in enumerate(self._watched):
            groups.setdefault(keras.backend.standardize_dtype(v.dtype), []).append(k)
        self._elr_groups = list(groups.values())
        self._sample_order = [k for group in self._elr_groups for k in group]
        self._sample_weights = np.concatenate([self._sample_weights[k] for k in self._sample_order] or [np.zeros(0)])
        self._snapshot, self._measure = _compile(self, model, optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_record = {}

    # Everything happens in `on_train_batch_begin` (and at the end of an epoch), never in
    # `on_train_batch_end`: a callback with a batch-end hook makes Keras run every batch's end
    # synchronously (no async dispatch of the logs), which alone cost 10-20% of an MNIST MLP's
    # step. A recorded step is measured just before the next step begins, at the weights and
    # optimizer state it left; the measurement is only dispatched there, and read back to the
    # host once done (at a later record, or at the end of the epoch), so that on JAX the
    # monitor never waits for a step to finish.

    def on_train_batch_begin(self, batch, logs=None):
        if self._previous is not None:
            self._dispatch()
        before, self._step = self._step, self._step + self._steps_per_call
        if self._step // self.every > before // self.every:
            self._previous = self._snapshot()

    def flush(self) -> None:
        """Measure a recorded step that has finished but not been measured yet, and move every
        pending measurement into `records` (and the CSV file). Called at the end of each epoch
        and of training; call it yourself between steps when you drive the hooks by hand
        (around `train_on_batch`) and need the records at once."""
        if self._previous is not None:
            self._dispatch()
        while self._pending:
            self._to_host(*self._pending.pop(0))
        self._resolve()
        if self._csv_file is not None:
            self._csv_file.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.flush()
        if self.log_to_history and logs is not None:
            logs.update(self._epoch_record)

    def on_train_end(self, logs=None):
        self.flush()
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None

    # --- results --------------------------------------------------------------------

    def to_dataframe(self):
        """The records as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=self.columns)

    def series(self, variable: str, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """`(steps, values)` of one statistic for the variable whose path is or contains
        `variable` (`"(model)"` for the whole-model records of `summary=True`)."""
        rows = [r for r in self.records if r["variable"] == variable]
        if not rows:
            rows = [r for r in self.records if variable in r["variable"]]
        if stat not in self.stat_names:
            raise ValueError(f"Argument `stat` must be one of {self.stat_names}, got {stat!r}.")
        return np.array([r["step"] for r in rows]), np.array([r[stat] for r in rows])

    # --- internals --------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start measuring the recorded step (asynchronously on JAX), bring the earlier
        measurements that are done to the host, and turn them into records in batches."""
        measured = self._measure(self._previous)
        self._previous = None
        # JAX runs steps ahead of Python: one still waiting behind queued steps is left for
        # later rather than stalling the training loop.
        while self._pending and all(getattr(part, "is_ready", lambda: True)() for part in self._pending[0][0]):
            self._to_host(*self._pending.pop(0))
        self._pending.append((measured, self._epoch))
        if len(self._host) >= _BATCH:
            self._resolve()

    def _to_host(self, measured, epoch: int) -> None:
        flat, iterations = (_to_host(part) for part in measured)
        self._host.append((flat, int(iterations), epoch))

    def _resolve(self) -> None:
        """The records of the measurements on the host, computed for all of them at once
        (NumPy's per-call cost, not its arithmetic, is most of a single record's)."""
        if not self._host:
            return
        flats = np.stack([flat for flat, _, _ in self._host]).astype(np.float64)
        count = len(self._watched)
        changes, befores, norms, samples = np.split(flats, [count, 2 * count, 3 * count], axis=1)
        bounds = np.cumsum([0] + [self._sample_sizes[k] for k in self._sample_order])
        percentiles = {
            k: _percentiles(samples[:, start:end], self.percentiles)
            for k, start, end in zip(self._sample_order, bounds[:-1], bounds[1:])
        }
        rows = [np.column_stack([percentiles[k], changes[:, k] / (befores[:, k] + _TINY), norms[:, k]]) for k in range(count)]
        names = [v.path for v in self._watched]
        if self.summary:
            names.append(MODEL)
            rows.append(np.column_stack([
                _weighted_percentiles(samples, self._sample_weights, self.percentiles),
                _norm(changes) / (_norm(befores) + _TINY),
                _norm(norms),
            ]))
        stats = self.stat_names
        for i, (_, step, epoch) in enumerate(self._host):
            for name, row in zip(names, rows):
                record = {"step": step, "epoch": epoch, "variable": name}
                record.update(zip(stats, row[i].tolist()))
                self.records.append(record)
                if self._csv_file is not None:
                    self._csv_writer.writerow(record)
                self._epoch_record.update({f"{name}/{stat}": record[stat] for stat in stats})
        self._host = []

    def _statistics(self, previous):
        """The change, weight and gradient norms of each watched variable, then each one's
        (sampled) effective LRs, as one flat float32 tensor (one device-to-host transfer per
        record), and the optimizer's step count.

        Percentiles are taken on the host with NumPy: sorting on XLA's CPU backend costs
        milliseconds per variable, more than the whole rest of a record."""
        optimizer = self._optimizer
        samples = [
            _float32(optimizer.effective_learning_rate_at(
                [self._watched[k] for k in group], [self._sample_indices[k] for k in group]))
            for group in self._elr_groups
        ]
        after = [_float32(v.value) for v in self._watched]
        norms = [
            l2_norms([a - b for a, b in zip(after, previous)]),
            l2_norms(previous),
            ops.take(optimizer.gradient_norms.value, self._norm_indices),
        ]
        # Copies: on PyTorch `.value` is the variable's own tensor, which the next steps advance.
        return ops.concatenate(norms + samples), ops.copy(optimizer.iterations.value)


MODEL = "(model)"  # the `variable` of the whole-model records


def _float32(x):
    # A Keras op costs microseconds of Python on PyTorch even when it has nothing to do.
    return x if keras.backend.standardize_dtype(x.dtype) == "float32" else ops.cast(x, "float32")


def _to_host(x) -> np.ndarray:
    """A CPU tensor's values as NumPy: `.numpy()` where the tensor has it (TensorFlow, PyTorch
    on the CPU: NumPy's `np.array(torch_tensor)` goes through a deprecation warning each time),
    else Keras' conversion (JAX, other devices)."""
    try:
        return x.numpy()
    except (AttributeError, TypeError, RuntimeError):
        return ops.convert_to_numpy(x)


def _norm(norms: np.ndarray) -> np.ndarray:
    """The L2 norm of a vector made of parts whose L2 norms are `norms` (along the last axis)."""
    return np.sqrt(np.sum(np.square(norms), axis=-1))


def _percentiles(sample: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """`np.percentile(sample, percentiles, axis=-1)` (its default, linear interpolation), from
    one sort, as an array (..., len(percentiles)): a tenth of np.percentile's time."""
    ordered = np.sort(sample, axis=-1)
    position = np.asarray(percentiles) / 100.0 * (ordered.shape[-1] - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, ordered.shape[-1] - 1)
    return ordered[..., low] + (position - low) * (ordered[..., high] - ordered[..., low])


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Percentiles of each row of `values` (or of a vector), each value counted `weights`
    times: the smallest value whose cumulative weight reaches q% of the total (NumPy's
    "inverted_cdf" method; with equal weights, `np.percentile(values, q, method="inverted_cdf")`)."""
    rows = np.atleast_2d(values)
    result = np.empty((len(rows), len(percentiles)))
    for i, row in enumerate(rows):
        order = np.argsort(row)
        cumulative = np.cumsum(weights[order])
        index = np.searchsorted(cumulative, np.asarray(percentiles) / 100.0 * cumulative[-1], side="left")
        result[i] = row[order][np.minimum(index, len(row) - 1)]
    return result if np.ndim(values) > 1 else result[0]


def _compile(monitor: OptimizerMonitor, model, optimizer):
    """`(snapshot, measure)` for the backend.

    `snapshot()` copies the watched weights (float32) before a recorded step, in one call.
    `measure(previous)` is `monitor._statistics` compiled (`tf.function`, `jax.jit`; eager
    on PyTorch), and returns without waiting for the result. On JAX both read the
    trainer's state (see `_jax_values`)."""
    backend = keras.backend.backend()
    monitor._optimizer = optimizer
    positions, watched = monitor._positions, monitor._watched
    if backend == "tensorflow":
        import tensorflow as tf

        # The copies live in variables, so that neither function takes arguments: binding
        # them costs tf.function more than the measurement itself.
        previous = [tf.Variable(tf.zeros(v.shape, "float32"), trainable=False) for v in watched]

        @tf.function
        def snapshot():
            for copy, v in zip(previous, watched):
                copy.assign(tf.cast(v.value, "float32"))
            return True  # no outputs to hand back: `statistics` reads the copies

        statistics = tf.function(lambda: monitor._statistics([copy.value() for copy in previous]))
        return snapshot, lambda previous: statistics()
    if backend == "jax":
        import jax

        def stateless_measure(trainable, optimizer_values, previous):
            mapping = list(zip(model.trainable_variables, trainable)) + list(zip(optimizer.variables, optimizer_values))
            with keras.StatelessScope(state_mapping=mapping):
                return monitor._statistics(previous)

        def stateless_snapshot(trainable):
            return [ops.copy(ops.cast(trainable[i], "float32")) for i in positions]

        if model.jit_compile:
            stateless_measure, stateless_snapshot = jax.jit(stateless_measure), jax.jit(stateless_snapshot)

        def snapshot():
            return stateless_snapshot(_jax_values(model)[0])

        def measure(previous):
            return stateless_measure(*_jax_values(model), previous)

        return snapshot, measure
    if backend == "torch":
        import torch

        def snapshot():
            return [v.value.detach().to(torch.float32, copy=True) for v in watched]

        def measure(previous):
            with torch.no_grad():
                return monitor._statistics(previous)

        return snapshot, measure
    raise ValueError(f"OptimizerMonitor supports the tensorflow, jax and torch backends, got {backend!r}.")


def _jax_values(model) -> tuple[list, list]:
    """The current values of the model's trainable variables and of the optimizer's
    variables, on JAX.

    In the middle of an epoch the trainer holds them (`_jax_state`) and the model's variables
    are stale; reading them there avoids `Callback.model`'s sync, which assigns every variable
    and makes the next step fetch its state anew (most of a record's cost). When the model is
    in sync (between epochs, around `train_on_batch`) they are the variables' values."""
    state = getattr(model, "_jax_state", None)
    if state and not getattr(model, "_jax_state_synced", True):
        return list(state["trainable_variables"]), list(state["optimizer_variables"])
    return [v.value for v in model.trainable_variables], [v.value for v in model.optimizer.variables]
