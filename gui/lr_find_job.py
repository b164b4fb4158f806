"""The page's "find learning rate" action: the range test on a built-in task, in a warm worker.

The page sends `{"job": "call", "target": "keras_adaptive_gui.lr_find_job:run", "kwargs": {...}}`
to a worker (`worker.serve`), which calls `run(**kwargs, send=send, stopped=stopped)`. The
model, its initial weights, the data and the batch order are the task's own (`tasks.py`), as
a training run of the page would have them; the optimizer is the page's choice with its
hyperparameters (its learning rate is what the test ramps). While it runs it sends
`{"type": "progress", "step", "steps", "learning_rate", "loss"}` a few times a second; at the
end one message,

    {"type": "lr_find", "learning_rates", "losses", "smoothed_losses", "suggestion", "suggestions",
     "rule", "stopped_at", "stop_reason", "optimizer", "task"}

and returns the same dict. `run` also takes the keyword arguments as one dict:
`run({"task": ...}, send, stopped)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PROGRESS_SECONDS = 0.25  # how often a {"type": "progress", "step", "steps", "learning_rate", "loss"} is sent

DEFAULTS = {
    "hyperparameters": {},
    "batch_size": 64,
    "seed": 0,
    "cell": "LSTM",
    "seq_len": 30,
    "mnist_path": None,
    "steps": 100,
    "min_lr": 1e-7,
    "max_lr": 10.0,
}


def run(
    kwargs: dict | None = None,
    send: Callable[[dict], None] | None = None,
    stopped: Callable[[], bool] | None = None,
    **fields: Any,
) -> dict:
    """The range test on `task` with optimizer `optimizer` (a page key: "adam", "keras.Adam").

    Keyword arguments: task, optimizer, hyperparameters (name -> value, as the page's fields
    give them; learning_rate is ignored), batch_size, seed, cell, seq_len, mnist_path (None:
    the MNIST sample shipped with keras_adaptive), steps, min_lr, max_lr.
    """
    from keras_adaptive.lr_finder import find_learning_rate
    from keras_adaptive_gui import hyperparams, tasks

    options = {**DEFAULTS, **(kwargs or {}), **fields}
    unknown = set(options) - set(DEFAULTS) - {"task", "optimizer"}
    if unknown:
        raise ValueError(f"lr_find_job.run has no argument {sorted(unknown)}; it takes {sorted(DEFAULTS)}.")
    for name in ("task", "optimizer"):
        if name not in options:
            raise ValueError(f"Argument `{name}` is needed.")
    task = options["task"]
    if task not in tasks.TASKS or tasks.TASKS[task].is_2d:
        models = [name for name, t in tasks.TASKS.items() if not t.is_2d]
        raise ValueError(f"Argument `task` must be a model task, one of {models}, got {task!r}.")
    key = hyperparams.resolve_key(options["optimizer"])
    raw = {k: v for k, v in dict(options["hyperparameters"]).items() if k != "learning_rate"}
    optimizer = hyperparams.make(key, hyperparams.build_kwargs(key, raw, where=f"{key}: "))

    if tasks.TASKS[task].uses_mnist:
        from keras_adaptive.datasets import sample_path

        data = tasks.mnist_data(task, options["mnist_path"] or sample_path())
    else:
        data = tasks.adding_data(options["seq_len"], options["seed"])
    model = tasks.build_model(task, options["cell"], options["seq_len"])
    model.set_weights(tasks.initial_weights(model.weights, options["seed"]))

    last = [0.0]

    def on_step(step: int, learning_rate: float, loss: float) -> bool:
        # Progress for the page, a few times a second (a message per step would cost more than the step).
        now = time.monotonic()
        if send is not None and now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            send(
                {
                    "type": "progress",
                    "step": step + 1,
                    "steps": options["steps"],
                    "learning_rate": learning_rate,
                    "loss": loss,
                }
            )
        return bool(stopped is not None and stopped())

    result = find_learning_rate(
        model,
        (data.x_train, data.y_train),  # cut into batches as a run of the page is (tasks.batch_order's draws)
        optimizer=optimizer,
        loss=tasks.loss_for(task),
        min_lr=options["min_lr"],
        max_lr=options["max_lr"],
        steps=options["steps"],
        batch_size=options["batch_size"],
        seed=options["seed"],
        on_step=on_step,
    )
    message = {"type": "lr_find", **result.to_dict(), "optimizer": key, "task": task}
    if send is not None:
        send(message)
    return message
