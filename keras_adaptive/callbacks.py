"""Keras callbacks that show what the optimizers do during training.

`OptimizerMonitor` records, every few steps and for each trainable variable, the
optimizer's effective learning rate (its median and spread over the weights), the
size of the last update relative to the weights, and the gradient norm on a probe
batch. It reads the optimizer only through `effective_learning_rate(variable)`, so it
works with every keras_adaptive optimizer, on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Optional, Sequence

import numpy as np

import keras
from keras import ops

_TINY = 1e-30  # keeps a ratio finite for an all-zero weight (a fresh bias)


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
    - `grad_norm` (only with `probe_data`): the L2 norm of the gradient of the compiled
      loss (plus regularization losses) on the fixed `probe_data` batch, at the weights
      after the step, computed with `training=False` (no dropout, BatchNorm in inference
      mode). It is **not** the gradient of the training batch the optimizer saw: Keras'
      `fit` does not hand gradients to callbacks, so this is a separate, small
      forward-and-backward pass, and the costliest part of monitoring.

    Results go to `self.records` (one dict per recorded step and variable, with `step`
    = `optimizer.iterations` after the step, `epoch`, `variable` = the variable's path),
    optionally to a CSV file with the same columns (one row per step and variable, written
    as training runs), and, with `log_to_history=True`, the last record of each epoch into
    the epoch logs as `"<variable path>/<stat>"` (so into `History.history`, and into the
    progress bar; use `verbose=0` or `2` with many variables).

    Args:
        every: record after every `every`-th training step. Default 10. With
            `steps_per_execution=n` in `compile`, Keras calls callbacks every n steps and
            `every` counts those calls.
        probe_data: optional `(x, y)` (NumPy arrays or tensors; a few dozen samples are
            enough) for `grad_norm`. Without it no gradient norm is recorded.
        csv_path: optional path of a CSV file to (over)write.
        log_to_history: add each epoch's last record to the epoch logs. Default True.
        max_samples: most weights per variable used for the percentiles. Default 4096.
        percentiles: which percentiles of the effective learning rate to record.
            Default (10, 50, 90).
        variables: optional list of variable paths (or substrings of them) to record;
            default all trainable variables.

    Example:
        >>> monitor = keras_adaptive.callbacks.OptimizerMonitor(every=10, probe_data=(x[:64], y[:64]))
        >>> model.fit(x, y, callbacks=[monitor])
        >>> monitor.records[-1]   # {'step': ..., 'variable': 'dense/kernel', 'elr_p50': ..., ...}

    Cost: the effective-LR and update statistics are one compiled function per record
    (`tf.function` on TensorFlow, `jax.jit` on JAX, eager on PyTorch) and one transfer to
    the host; on JAX the monitor reads the trainer's state without syncing it into the
    model. A record costs 0.5 ms (JAX) to 1.2 ms (TensorFlow) on the 2-core CPU this is
    developed on; on the MNIST MLP (a 0.8-2.5 ms step) `every=10` adds 8-9% (TensorFlow,
    PyTorch) and 19% (JAX; 8% CPU time) to training: measure yours with
    `examples/monitor_overhead.py`, and raise `every` for small, fast models.
    """

    def __init__(
        self,
        every: int = 10,
        probe_data: Optional[tuple] = None,
        csv_path: Optional[str] = None,
        log_to_history: bool = True,
        max_samples: int = 4096,
        percentiles: Sequence[float] = (10, 50, 90),
        variables: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Argument `every` must be an integer >= 1, got {every!r}.")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"Argument `max_samples` must be an integer >= 1, got {max_samples!r}.")
        for q in percentiles:
            if not 0 <= q <= 100:
                raise ValueError(f"Argument `percentiles` must hold numbers in [0, 100], got {percentiles!r}.")
        if probe_data is not None and (not isinstance(probe_data, (tuple, list)) or len(probe_data) != 2):
            raise ValueError(f"Argument `probe_data` must be a pair (x, y), got {type(probe_data).__name__}.")
        self.every = every
        self.probe_data = probe_data
        self.csv_path = csv_path
        self.log_to_history = log_to_history
        self.max_samples = max_samples
        self.percentiles = tuple(float(q) for q in percentiles)
        self.variables = list(variables) if variables is not None else None
        self.records: list[dict] = []
        self._calls = 0
        self._epoch = 0
        self._previous = None
        self._epoch_record: dict = {}

    # --- names --------------------------------------------------------------------

    @property
    def stat_names(self) -> list[str]:
        names = [f"elr_p{q:g}" for q in self.percentiles] + ["update_ratio"]
        return names + (["grad_norm"] if self.probe_data is not None else [])

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
        all_variables = list(model.trainable_variables)
        self._positions = [
            i
            for i, v in enumerate(all_variables)
            if self.variables is None or any(name in v.path for name in self.variables)
        ]
        self._watched = [all_variables[i] for i in self._positions]
        rng = np.random.default_rng(0)
        self._sample_indices, self._sample_sizes = [], []
        for v in self._watched:
            size = int(np.prod(v.shape))
            self._sample_sizes.append(min(size, self.max_samples))
            if size > self.max_samples:
                idx = np.sort(rng.choice(size, self.max_samples, replace=False)).astype("int32")
                self._sample_indices.append(ops.convert_to_tensor(idx))
            else:
                self._sample_indices.append(None)
        self._measure = _compile_measure(self, model, optimizer)
        self._iterations_index = next(i for i, v in enumerate(optimizer.variables) if v is optimizer.iterations)
        self._grad_norms = None
        if self.probe_data is not None:
            x, y = self.probe_data
            self._probe = (_to_tensor(x), _to_tensor(y))
            self._grad_norms = _compile_grad_norms(model, self._positions)
        self._csv_file = None
        if self.csv_path:
            directory = os.path.dirname(os.path.abspath(self.csv_path))
            os.makedirs(directory, exist_ok=True)
            self._csv_file = open(self.csv_path, "w", newline="")
            self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
            self._csv_writer.writeheader()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_record = {}

    # Everything happens in `on_train_batch_begin` (and at the end of an epoch), never in
    # `on_train_batch_end`: a callback with a batch-end hook makes Keras run every batch's end
    # synchronously (no async dispatch of the logs), which alone cost 10-20% of an MNIST MLP's
    # step. A recorded step is measured just before the next step begins, at the weights and
    # optimizer state it left.

    def on_train_batch_begin(self, batch, logs=None):
        if self._previous is not None:
            self._record()
        self._calls += 1
        # Never `self.model`: on JAX that property syncs the trainer's state into the model.
        if self._calls % self.every == 0:
            trainable, _, _ = self._current_values()
            self._previous = [ops.copy(ops.cast(trainable[i], "float32")) for i in self._positions]

    def _record(self) -> None:
        trainable, non_trainable, optimizer_values = self._current_values()
        flat = ops.convert_to_numpy(self._measure(trainable, optimizer_values, self._previous))
        self._previous = None
        count = len(self._watched)
        ratios, samples = flat[:count], np.split(flat[count:], np.cumsum(self._sample_sizes)[:-1])
        stats = np.stack([np.append(_percentiles(sample, self.percentiles), ratio) for sample, ratio in zip(samples, ratios)])
        if self._grad_norms is not None:
            norms = ops.convert_to_numpy(self._grad_norms(*self._probe, trainable, non_trainable))
            stats = np.concatenate([stats, norms[:, None]], axis=1)
        step = int(ops.convert_to_numpy(optimizer_values[self._iterations_index]))
        for v, row in zip(self._watched, stats):
            record = {"step": step, "epoch": self._epoch, "variable": v.path}
            record.update({name: float(value) for name, value in zip(self.stat_names, row)})
            self.records.append(record)
            if self._csv_file is not None:
                self._csv_writer.writerow(record)
            self._epoch_record.update({f"{v.path}/{name}": record[name] for name in self.stat_names})
        if self._csv_file is not None:
            self._csv_file.flush()

    def on_epoch_end(self, epoch, logs=None):
        if self._previous is not None:  # the epoch's last step was a recorded one
            self._record()
        if self.log_to_history and logs is not None:
            logs.update(self._epoch_record)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            self._record()
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None

    # --- results --------------------------------------------------------------------

    def to_dataframe(self):
        """The records as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=self.columns)

    def series(self, variable: str, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """`(steps, values)` of one statistic for the variable whose path is or contains `variable`."""
        rows = [r for r in self.records if r["variable"] == variable]
        if not rows:
            rows = [r for r in self.records if variable in r["variable"]]
        if stat not in self.stat_names:
            raise ValueError(f"Argument `stat` must be one of {self.stat_names}, got {stat!r}.")
        return np.array([r["step"] for r in rows]), np.array([r[stat] for r in rows])

    # --- internals --------------------------------------------------------------------

    def _current_values(self) -> tuple[list, list, list]:
        """The current values of the model's trainable and non-trainable variables and of the
        optimizer's variables.

        On JAX, in the middle of an epoch the trainer holds them (`_jax_state`) and the model's
        variables are stale; reading them there avoids `Callback.model`'s sync, which assigns
        every variable and makes the next step fetch its state anew (most of a record's cost).
        Elsewhere, and on JAX when the model is in sync, they are the variables' values."""
        model = self._model
        state = getattr(model, "_jax_state", None)
        if state and not getattr(model, "_jax_state_synced", True):
            return tuple(list(state[k]) for k in ("trainable_variables", "non_trainable_variables", "optimizer_variables"))
        return tuple([v.value for v in variables] for variables in
                     (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables))

    def _statistics(self, previous):
        """The update ratio of each watched variable, then each one's (sampled) effective LRs.

        Percentiles are taken on the host with NumPy: sorting on XLA's CPU backend costs
        milliseconds per variable, more than the whole rest of a record."""
        optimizer = self._optimizer
        samples, ratios = [], []
        for v, before, idx in zip(self._watched, previous, self._sample_indices):
            elr = ops.reshape(ops.cast(optimizer.effective_learning_rate(v), "float32"), (-1,))
            samples.append(elr if idx is None else ops.take(elr, idx))
            change = ops.cast(v.value, "float32") - before
            ratios.append(ops.sqrt(ops.sum(ops.square(change))) / (ops.sqrt(ops.sum(ops.square(before))) + _TINY))
        # One flat array, so that a record costs one device-to-host transfer.
        return ops.concatenate([ops.stack(ratios)] + samples)


def _percentiles(sample: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """`np.percentile(sample, percentiles)` (its default, linear interpolation) from one sort:
    a tenth of np.percentile's time on a few thousand numbers."""
    ordered = np.sort(sample)
    position = np.asarray(percentiles) / 100.0 * (len(ordered) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def _to_tensor(x):
    return ops.convert_to_tensor(x)


def _compile_measure(monitor: OptimizerMonitor, model, optimizer):
    """`monitor._statistics` compiled for the backend, as a function of (trainable values,
    optimizer values, weights before the step); TensorFlow and PyTorch read the variables."""
    backend = keras.backend.backend()
    monitor._optimizer = optimizer
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(monitor._statistics, reduce_retracing=True)
        return lambda trainable_values, optimizer_values, previous: compiled(previous)
    if backend == "jax":
        import jax

        def stateless(trainable_values, optimizer_values, previous):
            mapping = list(zip(model.trainable_variables, trainable_values))
            mapping += list(zip(optimizer.variables, optimizer_values))
            with keras.StatelessScope(state_mapping=mapping):
                return monitor._statistics(previous)

        return jax.jit(stateless) if model.jit_compile else stateless
    if backend == "torch":
        import torch

        def measure(trainable_values, optimizer_values, previous):
            with torch.no_grad():
                return monitor._statistics(previous)

        return measure
    raise ValueError(f"OptimizerMonitor supports the tensorflow, jax and torch backends, got {backend!r}.")


def _compile_grad_norms(model, positions: list[int]):
    """A function `(x, y, trainable values, non-trainable values) -> L2 norms of d loss / d w`
    for the trainable variables at `positions` (TensorFlow and PyTorch read the variables)."""
    backend = keras.backend.backend()

    def loss_of(x, y):
        # The scope swallows writes (the compiled loss updates per-output loss metrics).
        with keras.StatelessScope():
            y_pred = model(x, training=False)
            return model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)

    def norms(grads):
        zero = ops.zeros((), "float32")
        return ops.stack([zero if g is None else ops.sqrt(ops.sum(ops.square(ops.cast(g, "float32")))) for g in grads])

    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def grad_norms(x, y):
            variables = [model.trainable_variables[i] for i in positions]
            with tf.GradientTape() as tape:
                loss = loss_of(x, y)
            return norms(tape.gradient(loss, [v.value for v in variables]))

        return lambda x, y, trainable_values, non_trainable_values: grad_norms(x, y)
    if backend == "jax":
        import jax

        def loss_fn(trainable_values, non_trainable_values, x, y):
            mapping = list(zip(model.trainable_variables, trainable_values))
            mapping += list(zip(model.non_trainable_variables, non_trainable_values))
            with keras.StatelessScope(state_mapping=mapping):
                y_pred = model(x, training=False)
                return model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)

        def probe(trainable_values, non_trainable_values, x, y):
            grads = jax.grad(loss_fn)(trainable_values, non_trainable_values, x, y)
            return norms([grads[i] for i in positions])

        jitted = jax.jit(probe) if model.jit_compile else probe

        def grad_norms(x, y, trainable_values, non_trainable_values):
            return jitted(trainable_values, non_trainable_values, x, y)

        return grad_norms
    if backend == "torch":
        import torch

        def grad_norms(x, y, trainable_values=None, non_trainable_values=None):
            variables = [model.trainable_variables[i].value for i in positions]
            with torch.enable_grad():
                loss = loss_of(x, y)
                grads = torch.autograd.grad(loss, variables, allow_unused=True)
            grads = [torch.zeros_like(v) if g is None else g for v, g in zip(variables, grads)]
            with torch.no_grad():
                return norms(grads)

        return grad_norms
    raise ValueError(f"OptimizerMonitor supports the tensorflow, jax and torch backends, got {backend!r}.")
