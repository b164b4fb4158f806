"""Porting from PyTorch: the keras_adaptive arguments that reproduce each `torch.optim` optimizer.

For each `torch.optim` optimizer (at PyTorch's defaults, with a learning rate), the
script runs it and keras_adaptive's namesake twice on the same problem (100 steps, the
same gradients fed to both): once with keras_adaptive's own defaults, once with the
arguments that match PyTorch. It prints the largest weight difference for each and
exits with status 1 if a "matched" pair differs by more than float32 rounding.

The problem: 60 weights, gradient `c * w + noise_t` with curvatures `c` from 1e-4 to 10,
so that some weights see tiny gradients (where epsilon's size and placement matter).

    python examples/port_from_pytorch.py
    python examples/port_from_pytorch.py --short     # 20 steps
"""

from __future__ import annotations

import sys

import _common
import numpy as np

TOLERANCE = 1e-5  # max |w_keras - w_torch| / max |w| counted as float32 rounding


# (label, torch.optim name, its arguments): PyTorch's defaults plus a learning rate.
TORCH_CONFIGURATIONS = [
    ("SGD", "SGD", dict(lr=0.01)),
    ("SGD Nesterov", "SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("Adagrad", "Adagrad", dict(lr=0.01)),
    ("RMSprop", "RMSprop", dict(lr=0.01)),
    ("RMSprop centered+momentum", "RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adadelta", "Adadelta", dict()),
    ("Adam", "Adam", dict(lr=0.01)),
    ("Adam amsgrad", "Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", "AdamW", dict(lr=0.01)),
    ("NAdam", "NAdam", dict(lr=0.002)),
]


def cases():
    """(label, torch factory, matched arguments as text, matched factory, defaults factory). The
    matched optimizer is `keras_adaptive.pytorch.from_torch`'s: the table the torch fast path and
    the peer tests read. The defaults one is the same class at our defaults, with the same lr."""
    import torch

    import keras_adaptive as ka

    rows = []
    for label, name, kwargs in TORCH_CONFIGURATIONS:
        cls, matched = ka.pytorch.keras_arguments(name, **kwargs)
        defaults = {k: v for k, v in matched.items() if k == "learning_rate" or k in kwargs}  # what the label names
        text = f"{cls.__name__}(" + ", ".join(f"{k}={v!r}" for k, v in matched.items()) + ")"
        rows.append(
            (
                label,
                lambda p, n=name, k=kwargs: getattr(torch.optim, n)(p, **k),
                text,
                lambda n=name, k=kwargs: ka.pytorch.from_torch(n, **k),
                lambda c=cls, d=defaults: c(**d),
            )
        )
    return rows


def problem(steps: int, seed: int):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=60).astype("float32")
    curvature = np.logspace(-4, 1, 60).astype("float32")
    noise = (0.1 * rng.normal(size=(steps, 60)) * curvature).astype("float32")
    return w0, curvature, noise


def run_torch(make, w0, curvature, noise):
    import torch

    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    optimizer = make([w])
    for n in noise:
        w.grad = (torch.from_numpy(curvature) * w.detach() + torch.from_numpy(n)).contiguous()
        optimizer.step()
    return w.detach().numpy().copy()


def run_keras(optimizer, w0, curvature, noise):
    import keras
    from keras import ops

    w = keras.Variable(w0.copy(), name="w")
    c = ops.convert_to_tensor(curvature)
    for n in noise:
        optimizer.apply([c * w + ops.convert_to_tensor(n)], [w])
    return ops.convert_to_numpy(w).copy()


def main():
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    steps = 20 if args.short else args.steps
    w0, curvature, noise = problem(steps, args.seed)
    print(f"{steps} steps on 60 weights, the same gradients for both; backend {_common.backend_name()}")
    print(f"{'torch.optim (defaults + lr)':28s} {'keras_adaptive defaults':>24s} {'matched':>10s}   matching arguments")

    rows, failures = [], []
    for name, make_torch, matched_text, make_matched, make_defaults in cases():
        reference = run_torch(make_torch, w0, curvature, noise)
        scale = np.max(np.abs(reference))
        default_gap = np.max(np.abs(run_keras(make_defaults(), w0, curvature, noise) - reference)) / scale
        matched_gap = np.max(np.abs(run_keras(make_matched(), w0, curvature, noise) - reference)) / scale
        ok = matched_gap <= TOLERANCE
        if not ok:
            failures.append(name)
        rows.append((name, default_gap, matched_gap))
        print(f"{name:28s} {default_gap:24.2e} {matched_gap:10.2e} {'ok ' if ok else 'BAD'} {matched_text}")

    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    y = np.arange(len(rows))
    floor = 1e-10  # the axis starts here; identical results (0) get a label instead of a bar
    for offset, column, label, color in [
        (-0.2, 1, "keras_adaptive defaults (same lr)", "tab:red"),
        (0.2, 2, "matching arguments", "tab:green"),
    ]:
        gaps = np.array([r[column] for r in rows])
        ax.barh(y + offset, np.where(gaps > 0, gaps, floor), height=0.4, label=label, color=color)
        for yi, gap in zip(y + offset, gaps):
            if gap == 0:
                ax.text(floor * 1.5, yi, "0 (identical)", va="center", fontsize=7, color=color)
    ax.axvline(TOLERANCE, color="k", ls="--", lw=1, label=f"tolerance {TOLERANCE:g} (float32 rounding)")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set(
        xscale="log",
        xlim=(floor, 10),
        xlabel=f"max |w_keras - w_torch| / max |w| after {steps} steps",
        title=f"keras_adaptive vs torch.optim ({_common.backend_name()} backend)",
    )
    ax.legend(fontsize=8, loc="lower right")
    _common.save(fig, args, "port_from_pytorch.png")

    differ = [r[0] for r in rows if r[1] > TOLERANCE]
    print(f"With keras_adaptive's defaults {len(differ)} of {len(rows)} differ from PyTorch: {', '.join(differ)}.")
    if failures:
        print(f"MISMATCH with the matching arguments: {', '.join(failures)}")
        sys.exit(1)
    print(f"With the matching arguments all {len(rows)} agree with torch.optim to float32 rounding.")


if __name__ == "__main__":
    main()
