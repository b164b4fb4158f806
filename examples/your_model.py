"""Compare and sweep optimizers on your own model: `keras_adaptive.compare` and
`keras_adaptive.sweep` on a small regression.

The model is an MLP 8-32-32-1 that learns y = sin(2 x0) + x1 x2 - 0.5 x3² + noise from 8
features (data made with NumPy, nothing to download). First five optimizers, Keras' own Adam
among them, start from the same weights and see the same batches, each at one learning rate
(the page's PNG, its run bundle, the summary with the time to a target validation loss). One
learning rate each is not a fair comparison, so then Adam, RMSProp and SGD with momentum are
swept over 5 learning rates (1e-3 to 1e-1) and 2 seeds, 4 epochs each: the sensitivity plot (the best
validation loss against the learning rate, median and min-max over seeds), the loss curves
at each one's best rate, sweep.csv (a row per run) and the table.

    KERAS_BACKEND=jax python examples/your_model.py

The same from the command line, with the model and data in a module of your own:

    keras-adaptive compare --model mypkg.models:build --data mypkg.data:load --loss mse \\
        --optimizers adam,rmsprop,sgd:learning_rate=0.01:momentum=0.9 --epochs 8 --target val_loss=0.1
    keras-adaptive sweep --model mypkg.models:build --data mypkg.data:load --loss mse \\
        --optimizers adam,rmsprop,sgd:momentum=0.9 --learning-rates 1e-3:1e-1:5 --seeds 2 --epochs 4
"""

from __future__ import annotations

import os

import _common
import numpy as np

FEATURES = 8
TARGET_VAL_LOSS = 0.1  # the noise alone gives 0.01; predicting the mean gives about 1.1


def build_model():
    """An uncompiled model: compare compiles one copy per optimizer, from the same weights."""
    import keras

    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ],
        name="regressor",
    )


def make_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2 + 0.1 * rng.normal(size=n)
    return x, y[:, None].astype("float32")


def report(comparison, args, name: str) -> None:
    print(comparison.summary().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for label, reached in comparison.time_to_target().items():
        when = f"at step {reached[0]}, after {reached[1]:.2f} s of its own training" if reached else "never"
        print(f"  {label}: val_loss ≤ {TARGET_VAL_LOSS:g} {when}")
    bundle = comparison.save_bundle(os.path.join(args.out, "your_model_runs"))
    print(f"run bundle (config.json, records.csv): {bundle}")
    print(f"wrote {comparison.save_png(os.path.join(args.out, name), log_scale=True, smoothing=0.6)}")


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    import keras

    import keras_adaptive as ka

    n_train, epochs = (512, 2) if args.short else (4000, 8)
    data = make_data(n_train, args.seed)
    validation = make_data(1000, args.seed + 1)
    print(f"backend {keras.backend.backend()}: {n_train} samples, batch size 32, {epochs} epochs")

    optimizers = {
        "Adam": ka.Adam(learning_rate=3e-3),
        "RMSProp": ("rmsprop", {"learning_rate": 1e-3}),
        "Momentum": ("sgd", {"learning_rate": 0.01, "momentum": 0.9}),
        "AdaGrad": ("adagrad", {"learning_rate": 0.05}),
        "keras.Adam": ("keras.Adam", {"learning_rate": 3e-3}),
    }
    if args.short:
        optimizers = {k: optimizers[k] for k in ("Adam", "keras.Adam")}
    comparison = ka.compare(
        build_model,
        data,
        optimizers,
        epochs=epochs,
        batch_size=32,
        seeds=[args.seed],
        loss="mse",
        metrics=["mae"],
        validation_data=validation,
        target={"val_loss": TARGET_VAL_LOSS},
    )
    report(comparison, args, "your_model.png")

    # A fair comparison: each optimizer at its best learning rate, found by a sweep over seeds.
    # Half the comparison's epochs: 30 runs in about a minute on 2 CPU cores.
    rates, seeds, sweep_epochs = ("1e-3:1e-1:2", 1, 1) if args.short else ("1e-3:1e-1:5", 2, 4)
    swept = {"Adam": "adam", "RMSProp": "rmsprop", "Momentum": ("sgd", {"momentum": 0.9})}
    if args.short:
        swept = {k: swept[k] for k in ("Adam", "Momentum")}
    sweep = ka.sweep(
        build_model,
        data,
        swept,
        learning_rates=rates,
        seeds=seeds,
        epochs=sweep_epochs,
        batch_size=32,
        loss="mse",
        validation_data=validation,
        target={"val_loss": TARGET_VAL_LOSS},
    )
    print(f"sweep: {len(sweep.rows)} runs ({len(swept)} optimizers × learning rates {rates} × {seeds} seed(s))")
    print(sweep.table().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    paths = sweep.save(args.out)
    print(f"sweep.csv, sweep.json and a run bundle per seed: {paths['folder']}")
    print(f"wrote {paths['sensitivity']}")
    print(f"wrote {paths['curves']}")


if __name__ == "__main__":
    main()
