"""AdaDelta with and without momentum on the MNIST MLP: loss curves and effective learning rates.

Zeiler's AdaDelta (momentum=0) scales each step by `sqrt(s + eps) / sqrt(r + eps)`, the
RMS of past updates over the RMS of past gradients; `AdaDelta(momentum=mu)` feeds an
Adam-style bias-corrected first moment through the same scaling. `OptimizerMonitor`
records the effective learning rate of the first and last layers' kernels. Where both
averages are still far below eps (weights fed by MNIST's mostly-blank pixels) the ratio
stays near sqrt(eps)/sqrt(eps) = 1: the first layer's median sits there.

    python examples/adadelta_momentum.py           # 5 epochs on 6,000 images
    python examples/adadelta_momentum.py --short
"""

from __future__ import annotations

import _common
import numpy as np


def main():
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    epochs, train_size = (1, 1024) if args.short else (args.epochs, args.train_size)

    import keras_adaptive as ka
    from keras_adaptive.callbacks import OptimizerMonitor

    x, y, x_test, y_test, source = _common.load_mnist(args, train_size=train_size)
    print(f"{source}; training on {len(x)} images for {epochs} epochs, backend {_common.backend_name()}")
    runs = {
        "AdaDelta (Zeiler: lr 1, rho 0.95, no momentum)": lambda: ka.AdaDelta(),
        "AdaDelta, momentum 0.9": lambda: ka.AdaDelta(momentum=0.9),
        "AdaDelta, momentum 0.99": lambda: ka.AdaDelta(momentum=0.99),
    }
    results = {}
    for name, make in runs.items():
        model = _common.compile_classifier(_common.mlp(seed=args.seed), make())
        monitor = OptimizerMonitor(every=5, variables=["dense_0/kernel", "logits/kernel"], log_to_history=False)
        losses, seconds = _common.fit_with_batch_losses(model, x, y, 128, epochs, callbacks=[monitor], shuffle=False)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        results[name] = (losses, accuracy, monitor)
        print(
            f"  {name:48s} final train loss {np.mean(losses[-20:]):.3f}  test loss {loss:.3f}  "
            f"test accuracy {accuracy:.3f}  [{seconds:.1f} s]"
        )

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    for i, (name, (losses, accuracy, monitor)) in enumerate(results.items()):
        color = f"C{i}"
        axes[0].plot(losses, color=color, alpha=0.2, lw=0.7)
        axes[0].plot(_common.smooth(losses), color=color, label=f"{name}: test acc {accuracy:.3f}")
        for ax, layer in zip(axes[1:], ["dense_0/kernel", "logits/kernel"]):
            steps, median = monitor.series(layer, "elr_p50")
            ax.fill_between(
                steps, monitor.series(layer, "elr_p10")[1], monitor.series(layer, "elr_p90")[1], color=color, alpha=0.15
            )
            ax.plot(steps, median, color=color, label=name)
    axes[0].set(xlabel="step", ylabel="training loss per batch (EMA 0.9)", yscale="log", title="loss")
    for ax, layer in zip(axes[1:], ["dense_0/kernel", "logits/kernel"]):
        ax.set(
            xlabel="step",
            ylabel="effective learning rate sqrt(s+eps)/sqrt(r+eps)",
            yscale="log",
            title=f"{layer}: median, 10-90% band",
        )
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"AdaDelta with and without momentum, MNIST MLP ({_common.backend_name()} backend)")
    fig.tight_layout()
    _common.save(fig, args, "adadelta_momentum.png")
    best = max(results, key=lambda k: results[k][1])
    print(f"Best test accuracy: {best} ({results[best][1]:.3f}).")


if __name__ == "__main__":
    main()
