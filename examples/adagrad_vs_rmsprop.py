"""AdaGrad's effective learning rate only shrinks; RMSProp's forgets. Seen on an MNIST MLP.

Both train the 784-256-256-10 MLP with `model.fit`; `OptimizerMonitor` records, every
10 steps, the median and 10th-90th percentile band of `effective_learning_rate` over the
weights of each layer's kernel. AdaGrad divides by the square root of the *sum* of all
squared gradients, so its step sizes fall like 1/sqrt(t); RMSProp divides by a moving
*average*, so its step sizes level off at whatever the recent gradients dictate.
Weights fed by pixels that are always 0 (MNIST's border) never get a gradient and keep
`lr / sqrt(eps)`: the flat top of the first layer's bands.

    python examples/adagrad_vs_rmsprop.py           # 8 epochs on 6,000 images
    python examples/adagrad_vs_rmsprop.py --short
"""

from __future__ import annotations

import os

import _common
import numpy as np


def main():
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p)
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    epochs, train_size = (1, 1024) if args.short else (args.epochs, args.train_size)

    import keras_adaptive as ka
    from keras_adaptive.callbacks import OptimizerMonitor

    x, y, x_test, y_test, source = _common.load_mnist(args, train_size=train_size)
    print(f"{source}; training on {len(x)} images for {epochs} epochs, backend {_common.backend_name()}")
    runs = {
        "AdaGrad (lr 0.01)": ka.AdaGrad(learning_rate=0.01),
        "RMSProp (lr 0.001, rho 0.9)": ka.RMSProp(learning_rate=0.001),
    }
    results = {}
    for name, optimizer in runs.items():
        model = _common.compile_classifier(_common.mlp(seed=args.seed), optimizer)
        csv_path = os.path.join(args.out, f"adagrad_vs_rmsprop_{name.split()[0].lower()}.csv")
        os.makedirs(args.out, exist_ok=True)
        every = 2 if args.short else 10  # --short trains 8 steps
        monitor = OptimizerMonitor(every=every, csv_path=csv_path, log_to_history=False)
        losses, seconds = _common.fit_with_batch_losses(model, x, y, 128, epochs, callbacks=[monitor])
        accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
        results[name] = (monitor, losses, accuracy)
        print(f"  {name}: final loss {np.mean(losses[-20:]):.3f}, test accuracy {accuracy:.3f} [{seconds:.1f} s]")

    layers = ["dense_0/kernel", "dense_1/kernel", "logits/kernel"]
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, len(layers) + 1, figsize=(17, 4.2))
    colors = {name: color for name, color in zip(runs, ["tab:blue", "tab:orange"])}
    for name, (monitor, losses, accuracy) in results.items():
        axes[0].plot(losses, color=colors[name], alpha=0.25, lw=0.7)
        axes[0].plot(_common.smooth(losses), color=colors[name], label=f"{name}: test acc {accuracy:.3f}")
        for ax, layer in zip(axes[1:], layers):
            steps, median = monitor.series(layer, "elr_p50")
            _, low = monitor.series(layer, "elr_p10")
            _, high = monitor.series(layer, "elr_p90")
            ax.fill_between(steps, low, high, color=colors[name], alpha=0.2)
            ax.plot(steps, median, color=colors[name], label=name.split()[0] + " median, 10-90% band")
    axes[0].set(xlabel="step", ylabel="training loss (batch; smoothed)", yscale="log", title="loss")
    axes[0].legend(fontsize=8)
    for ax, layer in zip(axes[1:], layers):
        ax.set(xlabel="step", ylabel="effective learning rate", xscale="log", yscale="log", title=f"{layer}")
        ax.legend(fontsize=8)
    fig.suptitle(
        "Effective learning rate per weight of each kernel (median and 10-90% band over its weights; log-log), "
        f"MNIST MLP ({_common.backend_name()} backend)"
    )
    fig.tight_layout()
    _common.save(fig, args, "adagrad_vs_rmsprop.png")

    print("What it shows (median effective LR of dense_0/kernel, first record -> last):")
    for name, (monitor, _, _) in results.items():
        steps, median = monitor.series("dense_0/kernel", "elr_p50")
        half = len(median) // 2
        print(
            f"  {name}: {median[0]:.3g} at step {steps[0]} -> {median[-1]:.3g} at step {steps[-1]} "
            f"(x{median[-1] / median[0]:.2f}; over the second half x{median[-1] / median[half]:.2f})"
        )


if __name__ == "__main__":
    main()
