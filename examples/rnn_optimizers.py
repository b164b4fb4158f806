"""Row-by-row MNIST with a GRU: the MNIST example's optimizers on a recurrent network.

Each 28x28 image is read as a sequence of 28 rows of 28 pixels by a GRU(64) whose last
state feeds a 10-way softmax. Recurrent networks have gradients of very different sizes
across weights and steps, where adaptive methods usually pull ahead of plain SGD.

    python examples/rnn_optimizers.py             # 3 epochs on 6,000 images
    python examples/rnn_optimizers.py --short
"""

from __future__ import annotations

import _common
import numpy as np


def gru_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((28, 28)), keras.layers.GRU(64, name="gru"), keras.layers.Dense(10, name="logits")], name="rnn"
    )


def main():
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    epochs, train_size = (1, 512) if args.short else (args.epochs, args.train_size)
    x, y, x_test, y_test, source = _common.load_mnist(args, flat=False, train_size=train_size)
    if args.short:
        x_test, y_test = x_test[:500], y_test[:500]
    print(f"{source}; GRU(64) over 28 rows, {len(x)} images, {epochs} epochs, backend {_common.backend_name()}")

    results = {}
    for name, make in _common.optimizer_set(args.short).items():
        optimizer = make()
        model = _common.compile_classifier(gru_model(args.seed), optimizer)
        losses, seconds = _common.fit_with_batch_losses(model, x, y, 128, epochs, shuffle=False)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0, batch_size=500)
        results[name] = (losses, accuracy, optimizer.learning_rate)
        print(
            f"  {name:9s} final train loss {np.mean(losses[-20:]):.3f}  test accuracy {accuracy:.3f}  [{seconds:.1f} s]"
        )

    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, (losses, accuracy, lr) in sorted(results.items(), key=lambda kv: -kv[1][1]):
        ax.plot(_common.smooth(losses), lw=1.5, label=f"{name} (lr {float(lr):g}): test acc {accuracy:.3f}")
    ax.set(
        xlabel="step",
        ylabel="training loss per batch (EMA 0.9)",
        yscale="log",
        title=f"Row-by-row MNIST, GRU(64), batch 128, {len(x)} images ({_common.backend_name()} backend)",
    )
    ax.legend(fontsize=8)
    _common.save(fig, args, "rnn_optimizers.png")
    ranking = sorted(results, key=lambda k: -results[k][1])
    print("Test accuracy ranking: " + ", ".join(f"{k} {results[k][1]:.3f}" for k in ranking))


if __name__ == "__main__":
    main()
