"""Keras callbacks that show what the optimizers do during training.

`OptimizerMonitor` records, every few steps and for each trainable variable, the
optimizer's effective learning rate (its median and spread over the weights), the
size of the last update relative to the weights, and the norm of the gradient that
update applied. It reads the optimizer only through its documented monitoring methods,
`effective_learning_rate(variable)` (or `effective_learning_rate_at(variables, indices)`
for samples of the variables) and `observing(observer)`, so it works with every
keras_adaptive optimizer, on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_adaptive.backend.ops import l2_norms

_TINY = 1e-30  # keeps a ratio finite for an all-zero weight (a fresh bias)
_MAX_PENDING = 256  # measurements kept on their device at most, within an epoch, before records are made


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
      momentum) divided by the L2 norm of the weights before it. Measured from a copy of
      the weights taken in the recorded step before its update; not read from the optimizer.
    - `grad_norm`: the L2 norm of the gradient of the training batch that the recorded
      step applied, as the optimizer received it (after loss-scale unscaling, before
      clipping).

    Keras' `fit` hands callbacks neither gradients nor the weights before a step, so the
    recorded steps measure themselves: before each one the monitor gives Keras a training
    function of its own (made once, from the model's `train_step`), in which the optimizer
    lets the monitor observe the step (`optimizer.observing(monitor)`), and whose logs carry
    the measurements out. The other steps run Keras' training function untouched.

    Results go to `self.records` (one dict per recorded step and variable, with `step` =
    `optimizer.iterations` after the step, `epoch`, `variable` = the variable's path),
    optionally to a CSV file with the same columns (one row per step and variable, written
    at the end of each epoch), and, with `log_to_history=True`, the last record of each
    epoch into the epoch logs as `"<variable path>/<stat>"` (so into `History.history`, and
    into the progress bar; use `verbose=0` or `2` with many variables). The measurements
    stay on their device until the end of the epoch (or until 256 have piled up, those that
    are done), and are then read back and turned into records together: while the steps run,
    a record costs the training loop only the recorded step itself. `flush()` does the same
    at once; it runs at the end of each epoch and of training.

    Args:
        every: record the training steps whose number (`optimizer.iterations` after the
            step, counted over all of the optimizer's training) is a multiple of `every`.
            Default 10. With `steps_per_execution=n` in `compile`, Keras calls callbacks
            every n steps: the call holding such a step is observed, and its last step is
            recorded.
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

    Cost: a recorded step does its usual work plus the copy of the weights, three norms per
    variable and the effective learning rates of the samples, in the same compiled step (a
    second `tf.function` or `jax.jit` of the training step, traced and compiled at the first
    record); the results wait on their device until the end of the epoch. The other steps
    cost what they cost without the monitor, plus a Python call. On the 2-core CPU this is
    developed on, for the MNIST MLP (784-256-256-10, batch 128; steps of 0.8 ms on JAX,
    1.8-2.1 ms on TensorFlow, 2.3-2.8 ms on PyTorch), `every=10` added 2.5-4.8% to training
    on JAX, 2.7-5.6% on TensorFlow and 2.2-3.8% on PyTorch in four runs of `python
    examples/monitor_overhead.py --backends tensorflow,jax,torch --mnist mnist.npz
    --train-size 30000 --rounds 40 --epochs 1` (see README: medians of per-epoch ratios that
    scatter by about 5 points).
    Measure yours with that script, and raise `every` for small, fast models.
    """

    def __init__(
        self,
        every: int = 10,
        csv_path: str | None = None,
        log_to_history: bool = True,
        max_samples: int = 4096,
        percentiles: Sequence[float] = (10, 50, 90),
        variables: Sequence[str] | None = None,
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
        self._observed = False
        self._measured = None
        self._pending: list = []
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
        # Recorded are the steps whose number t (the optimizer's, counted over every `fit`) is
        # a multiple of `every`. A call of the batch hooks covers `steps_per_execution` steps.
        self._step = int(ops.convert_to_numpy(optimizer.iterations))
        steps = getattr(model, "steps_per_execution", 1)
        self._steps_per_call = steps if isinstance(steps, int) and steps > 0 else 1
        all_variables = list(model.trainable_variables)
        watched = [v for v in all_variables if self.variables is None or any(name in v.path for name in self.variables)]
        # Another `fit` of the same model: keep the samples and the observed training function
        # (tracing and compiling it again would cost every `fit` a fraction of a second).
        if self._observed:  # a `fit` that stopped on an error left the observed function
            self._set_train_function(self._plain_function)
        model.make_train_function()
        key = (id(model), id(optimizer), id(model.train_function), tuple(id(v) for v in watched))
        if getattr(self, "_prepared_for", None) != key:
            self._prepare(model, optimizer, watched)
            self._prepared_for = key
        self._observed = False
        self._pending = []
        self._csv_file = None
        if self.csv_path:
            directory = os.path.dirname(os.path.abspath(self.csv_path))
            os.makedirs(directory, exist_ok=True)
            self._csv_file = open(self.csv_path, "w", newline="")
            self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
            self._csv_writer.writeheader()

    def _prepare(self, model, optimizer, watched: list) -> None:
        """The fixed samples of the watched variables and the two training functions."""
        self._optimizer = optimizer
        self._watched = watched
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
        # The recorded steps run a training function of their own, traced (TensorFlow, JAX)
        # or run (PyTorch) with the optimizer observing: the others run Keras' own, untouched.
        self._plain_function = model.train_function
        traced = _new_train_function(model, self)
        self._set_train_function(self._plain_function)

        def observed_function(*args):
            with optimizer.observing(self):
                outputs = traced(*args)
            logs = outputs[0] if isinstance(outputs, tuple) else outputs  # JAX: (logs, state)
            self._add(logs.pop(_MEASURED, self._measured))
            return outputs

        self._observed_function = observed_function

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_record = {}

    # Everything happens in `on_train_batch_begin`, in the recorded steps themselves and at the
    # end of an epoch, never in `on_train_batch_end`: a callback with a batch-end hook makes
    # Keras run every batch's end synchronously (no async dispatch of the logs), which alone
    # cost 10-20% of an MNIST MLP's step. Before a recorded step the hook hands Keras the
    # observed training function, whose outputs carry the step's measurements; they wait on
    # their device until the end of the epoch.

    def on_train_batch_begin(self, batch, logs=None):
        before, self._step = self._step, self._step + self._steps_per_call
        observed = self._step // self.every > before // self.every
        if observed != self._observed:
            self._observed = observed
            self._set_train_function(self._observed_function if observed else self._plain_function)

    def _set_train_function(self, function) -> None:
        # `_model`: on JAX, `Callback.model` copies the trainer's state into the model's
        # variables, and the next step fetches it anew. `object.__setattr__`: Keras' own
        # costs tens of microseconds (it tracks layers and variables; a function is neither).
        object.__setattr__(self._model, "train_function", function)

    def flush(self) -> None:
        """Move every pending measurement into `records` (and the CSV file). Called at the end
        of each epoch and of training; call it yourself between steps when you drive the hooks
        by hand (around `train_on_batch`) and need the records at once."""
        self._collect(everything=True)
        if self._csv_file is not None:
            self._csv_file.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.flush()
        if self.log_to_history and logs is not None:
            logs.update(self._epoch_record)

    def on_train_end(self, logs=None):
        self.flush()
        self._set_train_function(self._plain_function)
        self._observed = False
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

    def _add(self, measured) -> None:
        """Keep a recorded step's measurements (on their device) until the end of the epoch, or
        until `_MAX_PENDING` have piled up."""
        self._pending.append((measured, self._step, self._epoch))
        if len(self._pending) >= _MAX_PENDING:
            self._collect()

    def _collect(self, everything: bool = False) -> None:
        """Bring the kept measurements to the host and turn them into records, all of them or
        (within an epoch) those that are done."""
        # Done at the end of an epoch rather than a few records at a time between steps, where
        # on 2 CPUs it competes with the steps running behind Python (JAX): on the MNIST MLP
        # the monitor's host work per 235-step epoch went from 2.7 ms to 1.6 ms on JAX. JAX
        # runs steps ahead of Python: a measurement still waiting behind queued steps is
        # left for later rather than stalling the training loop.
        done = len(self._pending)
        if not everything:
            done = next((i for i, (m, _, _) in enumerate(self._pending) if not _is_ready(m)), done)
        done, self._pending = self._pending[:done], self._pending[done:]
        self._resolve([(_to_host(m), step, epoch) for m, step, epoch in done])

    def _resolve(self, host: list) -> None:
        """The records of measurements on the host (`(flat, step, epoch)`), computed for all
        of them at once: one sort per variable for all the records (sorting the samples is
        most of the cost)."""
        if not host:
            return
        flats = np.stack([flat for flat, _, _ in host])
        count = len(self._watched)
        # The samples stay float32 (NumPy sorts them twice as fast): only order statistics are kept.
        changes, befores, norms = np.split(flats[:, : 3 * count].astype(np.float64), 3, axis=1)
        samples = flats[:, 3 * count :]
        bounds = np.cumsum([0] + [self._sample_sizes[k] for k in self._sample_order])
        percentiles = {
            k: _percentiles(samples[:, start:end], self.percentiles)
            for k, start, end in zip(self._sample_order, bounds[:-1], bounds[1:])
        }
        rows = [
            np.column_stack([percentiles[k], changes[:, k] / (befores[:, k] + _TINY), norms[:, k]])
            for k in range(count)
        ]
        names = [v.path for v in self._watched]
        if self.summary:
            names.append(MODEL)
            rows.append(
                np.column_stack(
                    [
                        _weighted_percentiles(samples, self._sample_weights, self.percentiles),
                        _norm(changes) / (_norm(befores) + _TINY),
                        _norm(norms),
                    ]
                )
            )
        columns, stats = self.columns, self.stat_names
        rows = [row.tolist() for row in rows]  # one conversion per variable, not per record
        records = [
            dict(zip(columns, (step, epoch, name, *row[i])))
            for i, (_, step, epoch) in enumerate(host)
            for name, row in zip(names, rows)
        ]
        self.records.extend(records)
        if self._csv_file is not None:
            self._csv_writer.writerows(records)
        for record in records[-len(names) :]:  # the epoch's last so far
            self._epoch_record.update({f"{record['variable']}/{stat}": record[stat] for stat in stats})

    # --- the observer (`optimizer.observing(self)`): runs inside the recorded training steps ---

    def before_update(self):
        """Copies of the watched weights before the step (float32)."""
        return [ops.copy(_float32(v.value)) for v in self._watched]

    def after_update(self, gradients: list, variables: list, before: list) -> None:
        """The change, weight and gradient norms of each watched variable, then each one's
        (sampled) effective LRs, as one flat float32 tensor (one device-to-host transfer per
        record), into `self._measured`: the recorded step's output (see `_new_train_function`).

        Percentiles are taken on the host with NumPy: sorting on XLA's CPU backend costs
        milliseconds per variable, more than the whole rest of a record."""
        optimizer = self._optimizer
        by_variable = {id(v): g for g, v in zip(gradients, variables)}
        watched_gradients = [by_variable.get(id(v)) for v in self._watched]
        # One call for all the norms: fewer operations (each costs a launch) than three.
        after = [_float32(v.value) for v in self._watched]
        present = [g for g in watched_gradients if g is not None]
        count = len(self._watched)
        norms = l2_norms([a - b for a, b in zip(after, before)] + list(before) + present)
        grad_norms = norms[2 * count :]
        if len(present) < count:  # zeros for the variables without one
            positions = [[i] for i, g in enumerate(watched_gradients) if g is not None]
            grad_norms = ops.scatter(ops.array(positions, "int32"), grad_norms, (count,))
        if optimizer.loss_scale_factor is not None:  # the gradients as the loss gave them
            grad_norms = grad_norms / optimizer.loss_scale_factor
        samples = [
            _float32(
                optimizer.effective_learning_rate_at(
                    [self._watched[k] for k in group], [self._sample_indices[k] for k in group]
                )
            )
            for group in self._elr_groups
        ]
        self._measured = ops.concatenate([norms[: 2 * count], grad_norms] + samples)


MODEL = "(model)"  # the `variable` of the whole-model records


def _float32(x):
    # A Keras op costs microseconds of Python on PyTorch even when it has nothing to do.
    return x if keras.backend.standardize_dtype(x.dtype) == "float32" else ops.cast(x, "float32")


def _is_ready(x) -> bool:
    """Whether a step's output is computed (JAX's arrays can be still on their way)."""
    return getattr(x, "is_ready", lambda: True)()


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
    below, above = ordered[..., low].astype(np.float64), ordered[..., high].astype(np.float64)
    return below + (position - low) * (above - below)


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
        result[i] = row[order[np.minimum(index, len(row) - 1)]]
    return result if np.ndim(values) > 1 else result[0]


_MEASURED = "_keras_adaptive_measured"  # the key of the measurements in a recorded step's logs


def _new_train_function(model, monitor: OptimizerMonitor):
    """A training function of the model's own, apart from `model.train_function`, whose
    training step adds the monitor's measurements to its logs: that is how they leave a
    compiled step (a tensor of the trace cannot).

    Made from a new function around `train_step`, which `make_train_function` compiles. A
    new function also keeps `jax.jit`, which caches traces by the function it compiles, from
    handing it the trace of the usual one (traced without observing). Keras' PyTorch trainer
    calls `model.train_step` at each step instead: there the measurements are tensors already."""
    train_step = model.train_step

    def train_step_with_measurements(*args, **kwargs):
        outputs = train_step(*args, **kwargs)
        if isinstance(outputs, tuple):  # JAX: (logs, state)
            return {**outputs[0], _MEASURED: monitor._measured}, *outputs[1:]
        return {**outputs, _MEASURED: monitor._measured}

    shadowed = "train_step" in vars(model)
    object.__setattr__(model, "train_step", train_step_with_measurements)
    try:
        model.make_train_function(force=True)
    finally:
        if shadowed:
            object.__setattr__(model, "train_step", train_step)
        else:
            object.__delattr__(model, "train_step")
    return model.train_function
