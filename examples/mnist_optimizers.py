"""MNIST with several optimizers through `model.fit`: training-loss curves in one figure.

The 784-256-256-10 MLP, the same initial weights and batches (batch 128) for each
optimizer. Learning rates are common defaults, not tuned per optimizer: the figure
compares typical behaviour, not each method's best.

    python examples/mnist_optimizers.py            # 3 epochs on 6,000 images
    python examples/mnist_optimizers.py --mnist /path/mnist.npz --train-size 60000
    python examples/mnist_optimizers.py --short
"""

from __future__ import annotations

import _common
import numpy as np


def main():
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    epochs, train_size = (1, 1024) if args.short else (args.epochs, args.train_size)
    x, y, x_test, y_test, source = _common.load_mnist(args, train_size=train_size)
    print(f"{source}; training on {len(x)} images for {epochs} epochs, backend {_common.backend_name()}")

    results = {}
    for name, make in _common.optimizer_set(args.short).items():
        optimizer = make()
        model = _common.compile_classifier(_common.mlp(seed=args.seed), optimizer)
        losses, seconds = _common.fit_with_batch_losses(model, x, y, 128, epochs, shuffle=False)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        results[name] = (losses, accuracy, optimizer.learning_rate)
        print(
            f"  {name:9s} lr {float(optimizer.learning_rate):<6g} final train loss {np.mean(losses[-20:]):.3f}  "
            f"test loss {loss:.3f}  test accuracy {accuracy:.3f}  [{seconds:.1f} s]"
        )

    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, (losses, accuracy, lr) in sorted(results.items(), key=lambda kv: -kv[1][1]):
        ax.plot(_common.smooth(losses), lw=1.5, label=f"{name} (lr {float(lr):g}): test acc {accuracy:.3f}")
    steps_per_epoch = len(x) // 128
    for epoch in range(1, epochs):
        ax.axvline(epoch * steps_per_epoch, color="grey", lw=0.5, ls=":")
    ax.set(
        xlabel="step (dotted: epoch boundaries)",
        ylabel="training loss per batch (EMA 0.9)",
        yscale="log",
        title=f"MNIST MLP 784-256-256-10, batch 128, {len(x)} images ({_common.backend_name()} backend)",
    )
    ax.legend(fontsize=8)
    _common.save(fig, args, "mnist_optimizers.png")
    best = max(results, key=lambda k: results[k][1])
    worst = min(results, key=lambda k: results[k][1])
    print(f"Best test accuracy: {best} ({results[best][1]:.3f}); worst: {worst} ({results[worst][1]:.3f}).")


if __name__ == "__main__":
    main()
