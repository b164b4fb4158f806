"""`compare`: optimizers side by side on a person's own model and data.

    comparison = keras_adaptive.compare(build, (x, y), ["adam", ("rmsprop", {"learning_rate": 1e-2})],
                                        epochs=3, loss="mse", validation_data=(x_val, y_val))
    comparison.summary(); comparison.records; comparison.plot(); comparison.save_bundle("results")

Every run of a comparison starts from the same weights and trains on the same batches in the
same order: per seed, `build_model()` is called once (after `keras.utils.set_random_seed`) and
its weights are copied into a fresh model for every optimizer; the data is read once into NumPy
batches (`keras_adaptive.batches.Batches`). The runs are interleaved step by step, each with
`train_on_batch`, so that a change in the machine's load hits all of them alike; each run's time
is its own step time. With `backends=[...]` the same loop runs in one worker process per backend
(one after another, so they do not take each other's CPU), from the weights made here.

The records have the columns of the page's and the CLI's CSV (`keras_adaptive_gui.engine
.CSV_COLUMNS`) plus `seed`, and a run is marked blown up by the page's rule (`engine.Series`).
Both come from the GUI package, which ships in the same distribution and is imported only inside
functions here; pandas (`records`, `summary`) likewise.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from keras_adaptive import user_code
from keras_adaptive.batches import Batches, is_arrays
from keras_adaptive.comparison_inputs import (
    Target,
    backend_list,
    changed_hyperparameters,
    check_first_batch,
    check_model,
    checked_seeds,
    classes_of,
    describe_model,
    from_template,
    function_name,
    is_accuracy,
    optimizer_choices,
    portable,
    read_loader,
    validation_arrays,
)
from keras_adaptive.comparison_runs import run_worker, train

OWN_TASK = "own model"  # the bundle's task: not one of the page's built-in tasks


class Comparison:
    """The outcome of `compare`: every run's records, a summary, the page's charts, a bundle.

    `series` holds one `keras_adaptive_gui.engine.Series` per (backend, seed, optimizer);
    `config` the full configuration (what the bundle's config.json carries under "config");
    `initial_weights[seed]` the weights every run of that seed started from; `messages` what
    happened (blow-ups).
    """

    def __init__(self, config: dict, series: list, initial_weights: dict, messages: list | None = None) -> None:
        from keras_adaptive_gui.engine import new_run_id

        self.config = config
        self.series = series
        self.initial_weights = initial_weights
        self.messages = list(messages or [])
        self.run_id = new_run_id()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S")
        self.target = Target.of(config.get("target"))

    # --- records ------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        from keras_adaptive_gui.engine import CSV_COLUMNS

        return [*CSV_COLUMNS, "seed"]  # seed: several seeds' runs in one table

    def rows(self) -> list[list]:
        """Every record as the CSV writes it: one row per (run, step) and per (run, epoch)."""
        from keras_adaptive_gui.engine import record_rows

        return [row for s in self.series for row in record_rows(s, self._optimizer_label(s), (s.seed,))]

    def _optimizer_label(self, s: Any) -> str:
        return self.config["optimizers"][s.optimizer % len(self.config["optimizers"])]["label"]

    @property
    def records(self) -> Any:
        """A pandas DataFrame with the CSV's columns (empty cells are NaN): `time_s` is the run's
        own cumulated `train_on_batch` time (the steps the optimizer statistics record count as
        long as the step before them), `effective_lr`, `update_ratio`, `grad_norm` the
        whole-model statistics of `OptimizerMonitor` about 100 times a run (keras_adaptive's
        optimizers only), `val_loss`, `val_acc` one row per epoch, `seed` the run's seed."""
        import pandas as pd

        frame = pd.DataFrame(self.rows(), columns=self.columns)
        for column in frame.columns:
            if column not in ("optimizer", "backend", "record"):
                frame[column] = pd.to_numeric(frame[column].replace("", np.nan))
        return frame

    def to_csv(self, path: str) -> str:
        """Write every record (after one `#` line carrying the configuration as JSON), as the
        page's and the CLI's CSV; read it back with `pandas.read_csv(path, comment="#")`."""
        from keras_adaptive_gui.engine import write_records

        return write_records(path, self.describe(), self.columns, self.rows())

    # --- summary ------------------------------------------------------------------------

    def summary_rows(self) -> list[dict]:
        """One dict per run (the CLI's table; `summary()` is the same as a DataFrame)."""
        several_seeds = len(self.config["seeds"]) > 1
        rows = []
        for s in self.series:
            finite = [v for v in s.losses if math.isfinite(v)]
            accs = [v for v in s.val_accs if math.isfinite(v)]
            row = {"optimizer": self._optimizer_label(s), "backend": s.backend}
            if several_seeds:
                row["seed"] = s.seed
            row.update({"status": s.status, "steps": s.steps[-1] if s.steps else 0})
            row["final loss"] = finite[-1] if finite else None
            if any(math.isfinite(v) for t in self.series for v in t.val_accs):  # an accuracy metric
                row["best val acc"] = max(accs) if accs else None
            row["final val loss"] = s.val_losses[-1] if s.val_losses else None
            row["ms/step"] = s.time_per_step_ms()
            row["blown up at step"] = s.blown_up_at
            if self.target is not None:
                row["target"] = self.target.describe()
                row["target step"] = s.target_step
                row["target s"] = s.target_s
            rows.append(row)
        return rows

    def summary(self) -> Any:
        """One row per run: status, final loss, best validation accuracy, final validation loss,
        ms per step, where it blew up, and with a `target` the first step and the seconds of
        its own training time at which it reached it (None: not reached)."""
        import pandas as pd

        return pd.DataFrame(self.summary_rows())

    def time_to_target(self) -> dict:
        """{series label: (step, seconds) or None} for the comparison's target."""
        if self.target is None:
            raise ValueError("This comparison has no `target`: give compare(..., target=...).")
        return {s.label: (s.target_step, s.target_s) if s.target_step is not None else None for s in self.series}

    # --- what the page draws and reads ----------------------------------------------------

    def describe(self) -> dict:
        """The bundle's config.json: the page's format, its task the "own model"."""
        from keras_adaptive_gui.engine import BLOWUP_RULE, BUNDLE_FORMAT, versions

        return {
            "format": BUNDLE_FORMAT,
            "run_id": self.run_id,
            "created": self.created,
            "config": self._page_config(),
            "versions": versions(),
            "blowup_rule": BLOWUP_RULE,
            "stopped": False,
            "messages": list(self.messages),
            "summary": self.summary_rows(),
        }

    def _page_config(self) -> dict:
        """The configuration, with `optimizers` listed as the page lists its series (one entry
        per seed and optimizer, in series order): what `engine.RunConfig.from_json` reads."""
        c = dict(self.config)
        seeds = c["seeds"]
        c["optimizers"] = [
            {**o, "label": o["label"] + (f" · seed {seed}" if len(seeds) > 1 else ""), "seed": seed}
            for seed in seeds
            for o in self.config["optimizers"]
        ]
        c["seed"] = seeds[0]
        return c

    def save_bundle(self, folder: str) -> str:
        """The run bundle the page's history opens: `<folder>/<run id>/config.json` and
        `records.csv`. Returns its directory."""
        from keras_adaptive_gui.engine import CONFIG_FILE, RECORDS_FILE

        path = os.path.join(folder, self.run_id)
        os.makedirs(path, exist_ok=True)
        self.to_csv(os.path.join(path, RECORDS_FILE))
        with open(os.path.join(path, CONFIG_FILE), "w") as f:
            json.dump(self.describe(), f, indent=1, default=str)
        return path

    def page_view(self) -> Any:
        """This comparison as the page's drawing code reads a run: `config` an
        `engine.RunConfig` (its task facts those of the own model, as a bundle of it reads
        back), `series`, `run_id`. Colours follow the optimizer (the page's PNG colours by
        series index): a seed's runs share their optimizer's colour."""
        from types import SimpleNamespace

        from keras_adaptive_gui.engine import RunConfig

        series = [copy.copy(s) for s in self.series]  # copies: the records keep their own index
        for s in series:
            s.optimizer %= len(self.config["optimizers"])
        return SimpleNamespace(config=RunConfig.from_json(self._page_config()), series=series, run_id=self.run_id)

    def plot(self, log_scale: bool = False, smoothing: float = 0.0, x_axis: str = "step") -> Any:
        """The page's interactive chart (training loss per step, validation loss and accuracy
        per epoch, the optimizer statistics): a plotly Figure, or its dict without plotly."""
        from keras_adaptive_gui import charts

        fig = charts.figure([charts.Shown(self.page_view())], charts.DisplayOptions(log_scale, smoothing, x_axis))
        charts.split_stable(fig)  # the page's bookkeeping, not plotly's
        try:
            import plotly.graph_objects as go
        except ImportError:
            return fig
        return go.Figure(fig)

    def save_png(self, path: str, log_scale: bool = False, smoothing: float = 0.0, x_axis: str = "step") -> str:
        """The CLI's PNG of this comparison (the same panels), its configuration at its foot."""
        from keras_adaptive_gui import plots

        options = plots.DisplayOptions(log_scale, smoothing, x_axis)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig = plots.figure(self.page_view(), options)
        if not any(math.isfinite(v) for s in self.series for v in s.val_accs):
            _no_accuracy_panel(fig, self.config["metrics"])
        return plots.save_png(fig, path, footer=self.footer() + "\n" + options.describe())

    def footer(self) -> str:
        c = self.config
        run = [
            f"run {self.run_id} · {c['task_description']}",
            f"backends {', '.join(c['backends'])}",
            f"{c['epochs']} epochs × {c['steps_per_epoch']} steps"
            + (f", batch size {c['batch_size']}" if c.get("batch_size") else ""),
            f"seeds {', '.join(map(str, c['seeds']))}",
            f"loss {c['loss_name']}",
        ]
        lines = [" · ".join(run)]
        for o in c["optimizers"]:
            values = ", ".join(f"{k}={_short(v)}" for k, v in o["changed"].items())
            lines.append(f"{o['label']}: {o['key']}({values})")
        return "\n".join(lines)


def _no_accuracy_panel(fig: Any, metrics: list) -> None:
    """Say why the validation-accuracy panel is empty (no accuracy metric), instead of NaN axes."""
    for ax in fig.axes:
        if ax.get_title().startswith("validation accuracy"):
            title = ax.get_title()
            ax.cla()
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            text = "no accuracy metric" + (f"\n(metrics: {', '.join(map(str, metrics))})" if metrics else "")
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.5")


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def compare(
    build_model: Callable[[], Any] | str,
    data: Any,
    optimizers: Any,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    seeds: int | Sequence[int] = 1,
    backends: Sequence[str] | None = None,
    validation_data: Any = None,
    target: float | dict | None = None,
    callbacks: Sequence[Any] | None = None,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    template: Any = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Comparison:
    """Train every optimizer of `optimizers` on the model `build_model()` makes, from the same
    initial weights and on the same batches, and return the `Comparison`.

    Args:
        build_model: a function returning an uncompiled `keras.Model` (or its 'module:function'
            name). Per seed it is called once for the initial weights, which are then copied
            into a fresh model per optimizer: every optimizer starts from the same point.
        data: NumPy arrays `(x, y)` (shuffled each epoch from the seed, batches of
            `batch_size`, default 32), a `tf.data.Dataset`, a `keras.utils.PyDataset`, an
            iterable or generator of `(x, y)` batches, or a loader (a function or its
            'module:function' name) returning one of these or `((x, y), (x_val, y_val))`. Read
            once: every run trains on the same batches in the same order.
        optimizers: a list of optimizer instances (copied per run, never trained themselves),
            registered names ("adam", "keras.Adam" for Keras' own) or `(name, kwargs)`; or a
            dict {label: any of those}.
        epochs: passes over the data (of `steps_per_epoch` batches each, default: one pass).
        seeds: a number of seeds (0, 1, ...) or a list of them; each seed has its own
            initial weights (and, for array data, its own batch order), shared by every
            optimizer. The records' `seed` column tells them apart.
        backends: None (train here, on the current backend) or names of backends, each
            trained in a worker process of its own, one after another, from the weights made
            here. Workers need `build_model` importable ('module:function': defined at the top
            of a module, not in `__main__` or a notebook); the data is read here and sent.
        validation_data: evaluated at each epoch's end (`val_loss`, and `val_acc` when a
            metric is an accuracy).
        target: when a run counts as done, for the time to target: a number (a batch loss at or
            below it), `{"val_loss": v}` (at or below, at an epoch's end) or `{"val_acc": v}`
            (at or above). The summary gives per run the first step and the seconds of its own
            training time at which it was reached (None: not reached).
        callbacks: Keras callbacks, driven by hand around `train_on_batch` for every run (in
            this process only: not with `backends`). `model.stop_training` ends a run.
        loss, metrics: what each run is compiled with; or `template`, a compiled model whose
            loss and metrics are taken.
        batch_size: batch size for array data (default 32).
        progress: called with (fraction done, text) as the runs go.

    Raises:
        ValueError naming the argument and what is wrong: a `build_model` that returns a
        compiled model or no model, data that does not fit the model, an unknown optimizer,
        a name that cannot be imported.
    """
    return run_comparison(
        build_model,
        data,
        optimizers,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        seeds=seeds,
        backends=backends,
        validation_data=validation_data,
        target=target,
        callbacks=callbacks,
        loss=loss,
        metrics=metrics,
        template=template,
        batch_size=batch_size,
        progress=progress,
    )


def run_comparison(
    build_model: Callable[[], Any] | str,
    data: Any,
    optimizers: Any,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    seeds: int | Sequence[int] = 1,
    backends: Sequence[str] | None = None,
    validation_data: Any = None,
    target: float | dict | None = None,
    callbacks: Sequence[Any] | None = None,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    template: Any = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    chance_rule: bool = True,
) -> Comparison:
    """`compare`'s work. `chance_rule=False` (a sweep, which applies its own): a classifier
    that ends at chance is left as it ended, not marked blown up."""
    import keras

    if isinstance(build_model, str):
        build_model = user_code.load(build_model, "build_model")
    if not callable(build_model) or isinstance(build_model, keras.Model):
        raise ValueError(
            f"Argument `build_model` must be a function returning an uncompiled keras.Model (or its "
            f"'module:function' name), got {build_model!r}."
        )
    data, validation_data, data_name = read_loader(data, validation_data)
    backends = backend_list(backends)
    seed_list = checked_seeds(seeds)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"Argument `epochs` must be a positive integer, got {epochs!r}.")
    if template is not None:
        if loss is not None or metrics is not None:
            raise ValueError("Give either `loss=`/`metrics=` or a compiled `template=`, not both.")
        loss, metrics = from_template(template)
    if loss is None:
        raise ValueError("Argument `loss` is missing: give compare(..., loss=...) (or a compiled `template=`).")
    metrics = list(metrics or [])
    if callbacks and backends is not None:
        raise ValueError(
            "Argument `callbacks` works in this process only (callbacks cannot be sent to worker processes): "
            "leave out `backends`, or the callbacks."
        )
    choices = optimizer_choices(optimizers)
    target_spec = Target.of(target)
    model_spec = None
    if backends is not None:  # the clear error now, before anything trains
        model_spec = user_code.spec_of(build_model, "build_model")
        loss_job, metrics_job = portable(loss, "loss"), [portable(m, "metrics") for m in metrics]
    else:
        loss_job, metrics_job = loss, metrics
    validation = validation_arrays(validation_data)
    # Array data is shuffled from each seed; other data is read once, in its own order, for every seed.
    arrays = is_arrays(data)
    batches_of: dict = {}
    for seed in seed_list if arrays else seed_list[:1]:
        batches_of[seed] = Batches(
            data, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed
        )
    batches_for = lambda seed: batches_of.get(seed) or batches_of[seed_list[0]]  # noqa: E731
    initial, classes = {}, 0
    for n, seed in enumerate(seed_list):  # per seed, the weights every run of it starts from
        keras.utils.set_random_seed(seed)
        weights_model = build_model()
        check_model(weights_model, build_model)
        if n == 0:
            check_first_batch(weights_model, loss, metrics, batches_for(seed), validation)
            classes = classes_of(weights_model) if any(is_accuracy(m) for m in metrics) else 0
        elif not weights_model.weights:
            weights_model(batches_for(seed).epochs[0][0][0])
        initial[seed] = [np.array(w) for w in weights_model.get_weights()]
    steps = batches_for(seed_list[0]).steps_per_epoch
    config = {
        "task": OWN_TASK,
        "kind": "classify",  # what the page's charts draw: a model's loss, validation loss and accuracy
        "task_description": describe_model(weights_model, model_spec or function_name(build_model)),
        "model": model_spec or function_name(build_model),
        "data": data_name,
        "loss_name": loss if isinstance(loss, str) else getattr(loss, "name", None) or function_name(loss),
        "metrics": [m if isinstance(m, str) else getattr(m, "name", None) or function_name(m) for m in metrics],
        "backends": backends or [keras.backend.backend()],
        "optimizers": [
            {
                "key": c.key,
                "label": c.label,
                "hyperparameters": c.config.get("config", {}),
                "changed": changed_hyperparameters(c.config),
                "given": c.given,
            }
            for c in choices
        ],
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": len(batches_for(seed_list[0]).epochs[0][0][1]),  # the first batch's, for other data
        "steps": epochs * steps,
        "seeds": seed_list,
        "classes": classes,
        "validation": validation is not None,
        "target": {target_spec.metric: target_spec.value} if target_spec else None,
    }
    job = {
        "choices": choices,
        "loss": loss_job,
        "metrics": metrics_job,
        "target": config["target"],
        "chance": 1.0 / classes if classes and chance_rule else None,
        "model": model_spec,
    }
    per_seed = epochs * steps
    whole = per_seed * len(seed_list) * len(config["backends"])
    series, done = [], 0
    for backend in config["backends"]:
        for n, seed in enumerate(seed_list):

            def report(step: int, done: int = done, backend: str = backend) -> None:
                if progress is not None:
                    progress((done + step) / whole, f"{backend}: step {done + step} of {whole}")

            seed_job = {**job, "seed": seed}
            if backends is None:
                found = train(seed_job, build_model, batches_for(seed), validation, initial[seed], callbacks, report)
            else:
                found = run_worker(backend, seed_job, batches_for(seed), validation, initial[seed], report)
            for s in found:  # the series index counts (seed, optimizer), as the bundle lists them
                s.optimizer += n * len(choices)
                if len(seed_list) > 1:
                    s.label = f"{s.label} · seed {seed}"
                if len(config["backends"]) > 1:
                    s.label = f"{s.label} · {s.backend}"
            series += found
            done += per_seed
    messages = [s.blow_up_message() for s in series if s.blown_up_at is not None]
    return Comparison(config, series, initial, messages)
