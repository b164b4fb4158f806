"""The learning-rate range test (Smith 2017; Gugger's exponential form, as fastai's `lr_find`).

`find_learning_rate(model, data, optimizer=...)` trains `steps` batches while the learning
rate grows exponentially from `min_lr` to `max_lr`, records each batch's loss, smooths it,
stops when the smoothed loss diverges, and suggests learning rates by stated rules. It trains
a fresh copy of the optimizer (from its config) in a training step of its own, so the model's
compile state and the optimizer given are never touched, and it puts every model variable
(weights, non-trainable statistics, dropout seed states) back to its value, bit for bit.

References: L. N. Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017);
S. Gugger, "How Do You Find A Good Learning Rate" (2017); fastai's `LRFinder` and its
suggestion functions (`valley`, `steep`, `minimum`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_adaptive.batches import Batches

SUGGESTION_RULES = ("valley", "steepest", "minimum/10")
DEFAULT_RULE = "valley"


@dataclass
class LearningRateRange:
    """What `find_learning_rate` found.

    `learning_rates[i]` is the rate batch `i` was trained with, `losses[i]` that batch's loss
    (before its update), `smoothed_losses[i]` the bias-corrected moving average up to it.
    `suggestions` maps each rule of `SUGGESTION_RULES` to its learning rate (None where the
    curve is too short for it); `suggestion` is the `rule` one (default "valley").
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestions: dict[str, float | None]
    rule: str = DEFAULT_RULE
    stopped_at: int | None = None  # the step the smoothed loss diverged at (None: ran all steps)
    stop_reason: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def suggestion(self) -> float | None:
        return self.suggestions.get(self.rule)

    def to_dict(self) -> dict:
        """Plain lists and floats (for JSON, or a message between processes)."""
        return {
            "learning_rates": [float(v) for v in self.learning_rates],
            "losses": [float(v) for v in self.losses],
            "smoothed_losses": [float(v) for v in self.smoothed_losses],
            "suggestion": self.suggestion,
            "suggestions": dict(self.suggestions),
            "rule": self.rule,
            "stopped_at": self.stopped_at,
            "stop_reason": self.stop_reason,
        }

    def plot(self, ax: Any = None, *, title: str | None = None, raw: bool = True) -> Any:
        """Smoothed loss against the learning rate (log axis), raw losses faint, each rule's
        suggestion marked. Draws on `ax` (a matplotlib Axes) or a new figure; returns the Axes."""
        import matplotlib.pyplot as plt  # lazily: the range test itself needs no matplotlib

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        if raw:
            ax.plot(self.learning_rates, self.losses, color="0.75", lw=0.8, label="batch loss")
        ax.plot(self.learning_rates, self.smoothed_losses, color="C0", lw=1.8, label="smoothed loss")
        markers = {"valley": ("C3", "o"), "steepest": ("C2", "^"), "minimum/10": ("C1", "s")}
        for rule, lr in self.suggestions.items():
            if lr is None:
                continue
            color, marker = markers.get(rule, ("k", "x"))
            y = float(np.interp(np.log(lr), np.log(self.learning_rates), self.smoothed_losses))
            star = " (suggestion)" if rule == self.rule else ""
            ax.plot([lr], [y], marker=marker, color=color, ms=9, ls="none", label=f"{rule}: {lr:.2g}{star}")
            ax.axvline(lr, color=color, lw=0.8, ls="--", alpha=0.6)
        ax.set_xscale("log")
        body = slice(0, max(len(self.smoothed_losses) - 5, 1))  # what the rules read: not the divergence's tail
        smoothed = self.smoothed_losses[body]
        if smoothed.size and np.all(np.isfinite(smoothed)):
            low = float(min(smoothed.min(), self.losses[body].min() if raw else smoothed.min()))
            high = float(smoothed.max())
            pad = 0.05 * max(high - low, 1e-12)
            ax.set_ylim(low - pad, high + 3 * pad)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        return ax


# --- the suggestion rules, on the smoothed curve (NumPy only) ---------------------------


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The rate where the loss falls fastest per decade: argmin of the forward difference
    d loss / d log(lr), taken at the left point of that step (fastai's `steep`)."""
    if len(losses) < 2:
        return None
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's `valley`: the longest decreasing run of the curve (longest strictly
    decreasing subsequence ending at each point), and the rate 1/3 + 1/6 = half way into it."""
    n = len(losses)
    if n < 2:
        return None
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[end] < lengths[i]:
                end = i
                start = end - lengths[end]
    sections = (end - start) / 3
    return float(lrs[start + int(sections) + int(sections / 2)])


def minimum_over_10(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """A tenth of the rate at the smoothed loss's minimum (Smith's and fastai's rule of thumb)."""
    if len(losses) == 0:
        return None
    return float(lrs[int(np.argmin(losses))]) / 10


RULES: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {
    "valley": valley,
    "steepest": steepest,
    "minimum/10": minimum_over_10,
}


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict[str, float | None]:
    """Every rule's suggestion, on the curve without its first tenth (where the moving
    average has seen few batches) and its last 5 points (the divergence), as fastai does;
    on the whole curve when that leaves fewer than 5 points."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    lo, hi = len(smoothed) // 10, len(smoothed) - 5
    if hi - lo >= 5:
        lrs, smoothed = lrs[lo:hi], smoothed[lo:hi]
    return {name: rule(lrs, smoothed) for name, rule in RULES.items()}


# --- the test --------------------------------------------------------------------------


def _check_number(name: str, value: Any, allowed: str, ok: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"Argument `{name}` must be {allowed}, got {value!r}.")
    return float(value)


def _optimizer_copy(optimizer: Any, model: Any, min_lr: float) -> Any:
    """A fresh optimizer of the same class and config, its learning rate a plain float."""
    import keras

    from keras_adaptive.registry import OPTIMIZERS, get

    if optimizer is None:
        optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
        if optimizer is None:
            raise ValueError(
                "Argument `optimizer` is None and the model is not compiled with one: pass an optimizer "
                f"(an instance, or a name: one of {sorted(OPTIMIZERS)} or a keras.optimizers name)."
            )
    if isinstance(optimizer, str):
        try:
            return get(optimizer, learning_rate=min_lr)
        except ValueError:
            pass
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError:
            raise ValueError(
                f"Argument `optimizer`={optimizer!r} is not an optimizer name: use one of {sorted(OPTIMIZERS)}, "
                "a keras.optimizers name, or an optimizer instance."
            ) from None
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            f"Argument `optimizer` must be a keras optimizer instance or a name, got {type(optimizer).__name__}."
        )
    config = dict(optimizer.get_config())
    config["learning_rate"] = min_lr  # a schedule would fight the ramp
    return type(optimizer).from_config(config)


def _loss_function(model: Any, loss: Any) -> Callable:
    import keras

    if loss is None:
        if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
            raise ValueError(
                "Argument `loss` is None and the model is not compiled with a loss: pass `loss=` "
                "(a keras loss name, a keras.losses.Loss, or a function (y_true, y_pred))."
            )
        loss = model.loss
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            f"Argument `loss`: a loss per output ({type(loss).__name__}) is not supported; pass `loss=` one "
            "function of (y_true, y_pred) for the whole model."
        )
    if isinstance(loss, str):
        try:
            return keras.losses.get(loss)
        except ValueError:
            raise ValueError(f"Argument `loss`={loss!r} is not a keras loss name.") from None
    if not callable(loss):
        raise ValueError(f"Argument `loss` must be a loss name or a callable, got {type(loss).__name__}.")
    return loss


def _train_step(model: Any, loss_fn: Callable, optimizer: Any) -> Callable[[Any, Any], float]:
    """One training step on (x, y) with `optimizer`, in the backend's own way (as Keras' guides
    "writing a training loop from scratch" do), returning the batch's loss before the update."""
    import keras
    from keras import ops

    def total_loss(y, y_pred, extra):
        value = ops.mean(loss_fn(y, y_pred))
        return value + ops.sum(ops.stack(extra)) if extra else value

    backend = keras.backend.backend()
    trainable = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def tf_step(x, y):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                value = total_loss(y, y_pred, model.losses)
            gradients = tape.gradient(value, trainable)
            optimizer.apply(gradients, trainable)
            return value

        return lambda x, y: float(tf_step(x, y))
    if backend == "jax":
        import jax

        non_trainable = model.non_trainable_variables

        def loss_and_updates(trainable_values, non_trainable_values, x, y):
            y_pred, non_trainable_values, extra = model.stateless_call(
                trainable_values, non_trainable_values, x, training=True, return_losses=True
            )
            return total_loss(y, y_pred, extra), non_trainable_values

        grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

        @jax.jit
        def jax_step(state, x, y):
            trainable_values, non_trainable_values, optimizer_values = state
            (value, non_trainable_values), gradients = grad_fn(trainable_values, non_trainable_values, x, y)
            trainable_values, optimizer_values = optimizer.stateless_apply(
                optimizer_values, gradients, trainable_values
            )
            return value, (trainable_values, non_trainable_values, optimizer_values)

        def step(x, y):
            state = (
                [v.value for v in trainable],
                [v.value for v in non_trainable],
                [v.value for v in optimizer.variables],
            )
            value, state = jax_step(state, x, y)
            for variables, values in zip((trainable, non_trainable, optimizer.variables), state):
                for variable, new in zip(variables, values):
                    variable.assign(new)
            return float(value)

        return step
    if backend == "torch":
        import torch

        def torch_step(x, y):
            x = keras.tree.map_structure(ops.convert_to_tensor, x)
            y = ops.convert_to_tensor(y)
            model.zero_grad()
            y_pred = model(x, training=True)
            value = total_loss(y, y_pred, model.losses)
            value.backward()
            gradients = [v.value.grad for v in trainable]
            with torch.no_grad():
                optimizer.apply(gradients, trainable)
            return float(value.detach().cpu())

        return torch_step
    raise ValueError(f"The range test does not support the {backend!r} backend.")


def _shape_of(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: tuple(v.shape) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [tuple(v.shape) for v in x]
    return tuple(x.shape)


def _first_loss(model: Any, loss_fn: Callable, x: Any, y: Any) -> float:
    """The first batch through the model and the loss, outside any compiled function, so a
    batch of the wrong shape is told as such (and an unbuilt model is built)."""
    from keras import ops

    wanted = getattr(model, "inputs", None)
    try:
        y_pred = model(x, training=False)
    except Exception as error:
        expected = f" (the model takes {[tuple(t.shape) for t in wanted]})" if wanted else ""
        raise ValueError(
            f"Argument `data`: the model cannot take a batch x of shape {_shape_of(x)}{expected}: "
            f"{type(error).__name__}: {error}"
        ) from error
    try:
        value = float(ops.convert_to_numpy(ops.mean(loss_fn(y, y_pred))))
    except Exception as error:
        raise ValueError(
            f"Argument `data`: the loss cannot compare y of shape {tuple(np.shape(y))} with the model's output "
            f"of shape {tuple(y_pred.shape)}: {type(error).__name__}: {error}"
        ) from error
    return value


def find_learning_rate(
    model: Any,
    data: Any,
    *,
    optimizer: Any = None,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    loss: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    stop_on_divergence: bool = True,
    rule: str = DEFAULT_RULE,
    on_step: Callable[[int, float, float], bool | None] | None = None,
) -> LearningRateRange:
    """The learning-rate range test: train with a growing learning rate and watch the loss.

    Rules, in order:

    1. Batch `i` (0-based) of `steps` trains with ``lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))``
       (an exponential ramp, Gugger's form of Smith's test), on a fresh copy of the optimizer
       (its class and config; not its state), starting from the model's current weights.
    2. The recorded loss of batch `i` is the loss of that batch before its update; the smoothed
       loss is the bias-corrected moving average ``a_i = beta a_(i-1) + (1 - beta) loss_i``,
       ``smoothed_i = a_i / (1 - beta ** (i + 1))`` (beta = 0.98).
    3. The test stops at a non-finite loss (not recorded), or, with `stop_on_divergence`, once
       ``smoothed_i > diverge_factor * min(smoothed_0..i)`` (4 by default; that step is recorded).
    4. Suggestions, on the smoothed curve without its first tenth and its last 5 points:
       "valley" (fastai's default: half way into the longest decreasing stretch of the
       curve), "steepest" (where d loss / d log(lr) is most negative), "minimum/10" (a tenth
       of the rate at the lowest loss). `.suggestion` is the `rule` one.
    5. Afterwards every model variable (trainable and not: weights, batch-norm statistics,
       seed states) is assigned its value from before, bit for bit; the model's compile state
       and the optimizer passed (or compiled) are never touched, so an unbuilt one stays unbuilt.

    Args:
        model: a Keras model, compiled (its optimizer and loss are used unless given) or not
            (then `optimizer` and `loss` are needed). An unbuilt model is built by the first batch.
        data: what `keras_adaptive.batches.Batches` reads: arrays `(x, y)` (batches of
            `batch_size` shuffled from `seed`), a tf.data.Dataset, a PyDataset, an iterable of
            `(x, y)` batches (at least `steps` of them), or a `Batches`.
        optimizer: an optimizer instance or a name (`keras_adaptive.OPTIMIZERS` or Keras').
        min_lr, max_lr: the ramp's ends, 0 < min_lr < max_lr.
        steps: batches to train at most (>= 5).
        loss: a loss name, `keras.losses.Loss` or function (y_true, y_pred); its mean over the
            batch, plus the model's own losses (regularizers), is minimized.
        on_step: called as `on_step(i, lr_i, loss_i)` after each batch; returning True stops.

    Returns:
        A `LearningRateRange` with `.learning_rates`, `.losses`, `.smoothed_losses`,
        `.suggestion`, `.suggestions` and `.plot()`.
    """
    import keras
    from keras import ops

    min_lr = _check_number("min_lr", min_lr, "a positive finite number", lambda v: v > 0)
    max_lr = _check_number("max_lr", max_lr, f"a finite number above min_lr={min_lr:g}", lambda v: v > min_lr)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 5:
        raise ValueError(f"Argument `steps` must be an integer >= 5, got {steps!r}.")
    beta = _check_number("beta", beta, "in [0, 1)", lambda v: 0 <= v < 1)
    diverge_factor = _check_number("diverge_factor", diverge_factor, "a number above 1", lambda v: v > 1)
    if rule not in RULES:
        raise ValueError(f"Argument `rule` must be one of {list(RULES)}, got {rule!r}.")
    if not isinstance(model, keras.Model):
        raise ValueError(f"Argument `model` must be a keras.Model, got {type(model).__name__}.")
    loss_fn = _loss_function(model, loss)
    clone = _optimizer_copy(optimizer, model, min_lr)
    if isinstance(data, Batches):
        batches = [b for _, b in zip(range(steps), data)]
    else:
        batches = list(Batches(data, steps_per_epoch=steps, batch_size=batch_size, seed=seed))

    _first_loss(model, loss_fn, *batches[0])
    variables = list(model.trainable_variables) + list(model.non_trainable_variables)
    saved = [np.array(ops.convert_to_numpy(v.value), copy=True) for v in variables]
    clone.build(model.trainable_variables)
    step = _train_step(model, loss_fn, clone)

    ratio = max_lr / min_lr
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    stopped_at, reason = None, ""
    try:
        for i in range(steps):
            lr = min_lr * ratio ** (i / (steps - 1))
            clone.learning_rate = lr
            x, y = batches[i % len(batches)]
            value = step(x, y)
            if not math.isfinite(value):
                stopped_at, reason = i, f"loss {value} at lr={lr:.3g}"
                break
            average = beta * average + (1 - beta) * value
            current = average / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(current)
            best = min(best, current)
            if on_step is not None and on_step(i, lr, value):
                stopped_at, reason = i, "stopped by on_step"
                break
            if stop_on_divergence and current > diverge_factor * best:
                stopped_at, reason = i, f"smoothed loss {current:.4g} > {diverge_factor:g} x best {best:.4g}"
                break
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
    if not lrs:
        raise ValueError(
            f"The range test recorded no finite loss (first batch at min_lr={min_lr:g}: {reason}); "
            "check the data and the model, or lower `min_lr`."
        )
    lrs_a, smoothed_a = np.array(lrs), np.array(smoothed)
    return LearningRateRange(
        learning_rates=lrs_a,
        losses=np.array(losses),
        smoothed_losses=smoothed_a,
        suggestions=suggest(lrs_a, smoothed_a),
        rule=rule,
        stopped_at=stopped_at,
        stop_reason=reason,
        settings={
            "optimizer": type(clone).__name__,
            "min_lr": min_lr,
            "max_lr": max_lr,
            "steps": steps,
            "beta": beta,
            "diverge_factor": diverge_factor,
        },
    )
