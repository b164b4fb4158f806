"""`sweep`: learning-rate sweeps over several seeds on a person's own model and data.

    result = keras_adaptive.sweep(build, (x, y), ["sgd", "adam"], learning_rates="1e-4:1e-1:7", seeds=3,
                                  epochs=3, loss="mse", validation_data=(x_val, y_val))
    result.table(); result.records; result.to_csv("sweep.csv"); result.save("results")

A sweep is one `compare`: every (optimizer, learning rate) of the grid an entry, over `seeds`,
so every run of a seed starts from that seed's weights and sees its batches, and a sweep's run
is the run `compare` makes with that one optimizer, learning rate and seed. Its runs become the
rows of the page's sweep.csv (`keras_adaptive_gui.sweep.run_row`), which the page's own
`sensitivity`, `best_points` and `table_rows` aggregate and its PNGs draw: one aggregation for
the built-in tasks' sweeps and for these. The GUI package (same distribution) and pandas are
imported inside functions.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from keras_adaptive.comparison import Comparison, run_comparison
from keras_adaptive.comparison_inputs import changed_hyperparameters, optimizer_choices

MAX_GRID_POINTS = 100  # learning rates per optimizer (a typo's guard: the page allows 15)


def _grid(learning_rates: Any, center: Any, label: str) -> list[float]:
    """The learning rates of one optimizer: the page's default grid around its own rate, a
    text ('1e-4:1e-1:7' or '0.001, 0.01'), or a list of numbers."""
    from keras_adaptive_gui.sweep import default_grid, parse_grid

    where = f"Argument `learning_rates` (for {label})"
    numeric = isinstance(center, (int, float)) and not isinstance(center, bool) and center > 0
    if learning_rates is None or (isinstance(learning_rates, str) and not learning_rates.strip()):
        if not numeric:
            raise ValueError(
                f"{where} is needed: its learning rate {center!r} is not a number to centre the default grid on; "
                "give a list such as [0.001, 0.01, 0.1] or a text such as '1e-4:1e-1:7'."
            )
        return default_grid(float(center))
    if isinstance(learning_rates, str):
        return parse_grid(learning_rates, float(center) if numeric else 1e-3, MAX_GRID_POINTS, where)
    values = list(learning_rates) if isinstance(learning_rates, (list, tuple)) else None
    if (
        not values
        or len(values) > MAX_GRID_POINTS
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values
        )
    ):
        raise ValueError(
            f"{where} must be None (7 points over 2 decades either side of each optimizer's rate), a text such as "
            f"'1e-4:1e-1:7' or '0.001, 0.01', or a list of 1 to {MAX_GRID_POINTS} positive finite numbers, "
            f"got {learning_rates!r}."
        )
    return sorted({float(v) for v in values})


def _at_rate(serialized: dict, learning_rate: float) -> Any:
    """A fresh optimizer from its serialized config, at `learning_rate` (any class: a person's own too)."""
    import keras

    changed = copy.deepcopy(serialized)
    changed["config"]["learning_rate"] = learning_rate
    return keras.optimizers.deserialize(changed)


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class Sweep:
    """The outcome of `sweep`: one row per run (`rows`, the page's sweep.csv columns), the
    page's aggregation of them (`sensitivity`, `best`, `table`), its PNGs and run bundles.

    `comparison` is the underlying `Comparison` (every step's records); `grids[i]` the learning
    rates of optimizer `i`, `names[i]` its name without its learning rate (what the rows call
    it); `kind` says which validation metric the sensitivity plot shows ("classify": the best
    validation accuracy, "regress": the best validation loss, "train": the final loss only).
    """

    def __init__(self, comparison: Comparison, choices: list, grids: list, names: list) -> None:
        from keras_adaptive_gui import engine, sweep

        self.comparison = comparison
        self.choices, self.grids, self.names = choices, grids, names
        self.entries = [(i, lr) for i, grid in enumerate(grids) for lr in grid]  # compare's optimizers, in order
        c = comparison.config
        self.kind = ("classify" if c["classes"] else "regress") if c["validation"] else "train"
        self.sweep_id = engine.new_run_id()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S")
        target = comparison.target
        self.target = None if target is None else target.value
        self.target_metric = "loss" if target is None else target.metric
        chance = 1.0 / c["classes"] if c["classes"] else None
        self.statuses = []
        for s in comparison.series:  # the sweeps' chance rule (compare ran without its own)
            was = s.blown_up_at
            self.statuses.append(sweep.sweep_status(s, s.status, chance))
            if was is None and s.blown_up_at is not None:
                comparison.messages.append(s.blow_up_message())

    def _entry(self, s: Any) -> tuple[int, float]:
        return self.entries[s.optimizer % len(self.entries)]

    @property
    def rows(self) -> list[dict]:
        """One dict per run (sweep.csv's rows): optimizer, name, hyperparameters,
        learning_rate, seed, backend, status, final_loss, best_val_loss, best_val_acc,
        steps_to_target, seconds_to_target."""
        from keras_adaptive_gui.sweep import run_row

        rows = []
        for s, status in zip(self.comparison.series, self.statuses):
            i, lr = self._entry(s)
            hyperparameters = {
                k: v for k, v in self.choices[i].config.get("config", {}).items() if k not in ("learning_rate", "name")
            }
            reached = (s.target_step, s.target_s) if s.target_step is not None else (None, None)
            rows.append(
                run_row(
                    s,
                    optimizer=self.choices[i].key,
                    name=self.names[i],
                    hyperparameters=hyperparameters,
                    learning_rate=lr,
                    seed=s.seed,
                    backend=s.backend,
                    status=status,
                    reached=reached,
                )
            )
        return rows

    @property
    def records(self) -> Any:
        """The rows as a pandas DataFrame (sweep.csv's columns)."""
        import pandas as pd

        from keras_adaptive_gui.sweep import CSV_COLUMNS

        return pd.DataFrame(self.rows, columns=CSV_COLUMNS)

    def sensitivity(self) -> list[dict]:
        """Per (name, backend, learning rate): the median, min and max over the seeds that did
        not blow up of the final loss and of the validation metric (`keras_adaptive_gui.sweep.sensitivity`)."""
        from keras_adaptive_gui import sweep

        return sweep.sensitivity(self.rows, self.kind)

    def best(self) -> dict:
        """Per (name, backend): the point of its best learning rate."""
        from keras_adaptive_gui import sweep

        return sweep.best_points(self.sensitivity(), self.kind)

    def table_rows(self) -> list[dict]:
        """The sweep's table (what the CLI prints): per optimizer its best learning rate, the
        metric there with its spread, where no seed blew up, and the time to the target."""
        from keras_adaptive_gui import sweep

        return sweep.table_rows(self.sensitivity(), self.kind, self.target, self.target_metric)

    def table(self) -> Any:
        """`table_rows()` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.table_rows())

    def curves(self) -> list[dict]:
        """The batch loss at each optimizer's best learning rate: median, min and max over seeds."""
        from keras_adaptive_gui import sweep

        runs = []
        for s in self.comparison.series:
            i, lr = self._entry(s)
            runs.append((self.names[i], s.backend, lr, s))
        return sweep.best_curves(self.best(), runs)

    def to_csv(self, path: str) -> str:
        """sweep.csv: one row per run (read it with `keras_adaptive_gui.sweep.read_csv` or pandas)."""
        from keras_adaptive_gui import sweep

        return sweep.write_csv(self.rows, path)

    def describe(self) -> dict:
        """sweep.json: the configuration, every optimizer with its grid."""
        c = dict(self.comparison.config)
        c["optimizers"] = [
            {
                "key": choice.key,
                "name": name,
                "hyperparameters": {k: v for k, v in choice.config.get("config", {}).items() if k != "learning_rate"},
                "learning_rates": grid,
            }
            for choice, name, grid in zip(self.choices, self.names, self.grids)
        ]
        c["target_metric"] = self.target_metric
        return {"sweep_id": self.sweep_id, "created": self.created, "config": c}

    def title(self) -> str:
        return f"{self.comparison.config['task_description']} · sweep {self.sweep_id}"

    def footer(self) -> str:
        """The configuration in a few lines (the PNGs carry it)."""
        from keras_adaptive_gui import engine

        c = self.comparison.config
        aim = "none" if self.target is None else f"{self.comparison.target.describe()}"
        lines = [
            f"sweep {self.sweep_id} · {c['task_description']} · {c['epochs']} epochs × {c['steps_per_epoch']} "
            f"steps, batch size {c['batch_size']} · loss {c['loss_name']} · seeds {', '.join(map(str, c['seeds']))} "
            f"· backends {', '.join(c['backends'])} · target {aim}"
        ]
        for choice, name, grid in zip(self.choices, self.names, self.grids):
            # What differs from the class's defaults (every hyperparameter is in sweep.json and sweep.csv).
            changed = {k: v for k, v in changed_hyperparameters(choice.config).items() if k != "learning_rate"}
            values = ", ".join(f"{k}={_short(v)}" for k, v in changed.items())
            rates = ", ".join(f"{lr:.3g}" for lr in grid)
            lines.append(f"{name}: {choice.key}({values or 'defaults'}); learning rates {rates}")
        lines.append(", ".join(f"{k} {v}" for k, v in engine.versions().items()))
        return "\n".join(lines)

    def save_pngs(self, folder: str) -> tuple[str, str]:
        """sensitivity.png and best-lr-curves.png in `folder` (the page's sweep PNGs)."""
        from keras_adaptive_gui import plots

        os.makedirs(folder, exist_ok=True)
        return plots.save_sweep_pngs(folder, self.sensitivity(), self.kind, self.curves(), self.title(), self.footer())

    def comparisons(self) -> list[Comparison]:
        """The sweep as run bundles, one per seed: every (optimizer, learning rate) at that seed."""
        c = self.comparison
        found = []
        for seed in c.config["seeds"]:
            series = []
            for s in c.series:
                if s.seed == seed:
                    one = copy.copy(s)
                    one.optimizer = s.optimizer % len(self.entries)  # the bundle lists one seed's entries
                    series.append(one)
            config = {**c.config, "seeds": [seed]}
            messages = [f"sweep {self.sweep_id}, seed {seed}"]
            found.append(Comparison(config, series, {seed: c.initial_weights[seed]}, messages))
        return found

    def save(self, folder: str) -> dict:
        """Under `folder/sweep-<id>/`: sweep.csv, sweep.json, sensitivity.png, best-lr-curves.png
        and a run bundle per seed (the page opens them). Returns their paths."""
        where = os.path.join(folder, f"sweep-{self.sweep_id}")
        os.makedirs(where, exist_ok=True)
        from keras_adaptive_gui.sweep import SWEEP_FILE

        paths: dict = {"folder": where, "csv": self.to_csv(os.path.join(where, SWEEP_FILE))}
        paths["json"] = os.path.join(where, "sweep.json")
        with open(paths["json"], "w") as f:
            json.dump(self.describe(), f, indent=1, default=str)
        paths["sensitivity"], paths["curves"] = self.save_pngs(where)
        paths["bundles"] = [one.save_bundle(where) for one in self.comparisons()]
        return paths


def sweep(
    build_model: Callable[[], Any] | str,
    data: Any,
    optimizers: Any,
    *,
    learning_rates: Any = None,
    seeds: int | Sequence[int] = 3,
    epochs: int,
    steps_per_epoch: int | None = None,
    backends: Sequence[str] | None = None,
    validation_data: Any = None,
    target: float | dict | None = None,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    template: Any = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Sweep:
    """Train every optimizer of `optimizers` at every learning rate of its grid over `seeds`
    seeds, each a complete run of `compare` (same initial weights and batches per seed), and
    return the `Sweep`: its rows, the page's sensitivity figures and table, PNGs and bundles.

    Args:
        build_model, data, validation_data, target, loss, metrics, template, batch_size,
            epochs, steps_per_epoch, backends, progress: as for `compare`.
        optimizers: as for `compare` (instances, names, `(name, kwargs)` or `{label: ...}`);
            each is trained at every learning rate of its grid, its other hyperparameters
            as given.
        learning_rates: None (7 points log-spaced over 2 decades either side of each
            optimizer's own learning rate), a text for every optimizer ('1e-4:1e-1:7': 7
            points log-spaced from 1e-4 to 1e-1, or '0.001, 0.01, 0.1') or a list of numbers.
        seeds: a number of seeds (0, 1, ...; default 3) or a list of them.

    Raises:
        ValueError naming the argument and what is wrong (those of `compare`, a bad grid).
    """
    choices = optimizer_choices(optimizers)
    names = []
    for choice in choices:
        given_label = isinstance(optimizers, dict)
        shown = {k: v for k, v in changed_hyperparameters(choice.config).items() if k != "learning_rate"}
        plain = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        names.append(choice.label if given_label else f"{choice.key} ({plain})" if plain else choice.key)
    for n, name in enumerate(names):  # "(2)", not "#2": pandas' comment="#" would cut the name there
        if names.count(name) > 1:
            names[n] = f"{name} ({names[: n + 1].count(name)})"
    grids = [
        _grid(learning_rates, c.config.get("config", {}).get("learning_rate"), names[i]) for i, c in enumerate(choices)
    ]
    entries = {}
    for i, choice in enumerate(choices):
        for lr in grids[i]:
            entries[f"{names[i]} · lr={lr:.6g}"] = _at_rate(choice.config, lr)
    comparison = run_comparison(
        build_model,
        data,
        entries,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        seeds=seeds,
        backends=backends,
        validation_data=validation_data,
        target=target,
        loss=loss,
        metrics=metrics,
        template=template,
        batch_size=batch_size,
        progress=progress,
        chance_rule=False,
    )
    return Sweep(comparison, choices, grids, names)
