"""The learning-rate range test on the page's MNIST MLP (784-64-10), with Adam and with SGD.

`keras_adaptive.find_learning_rate` ramps the learning rate from 1e-7 to 10 over 100 batches,
stops when the smoothed loss passes 4x its best, and suggests a rate by three rules (valley,
steepest, minimum/10). Then each optimizer trains 300 batches from the same weights at its
valley suggestion, and at 10x it, to see that the suggestion trains. Writes
`lr_finder.png` (each curve with its suggestions marked).

    KERAS_BACKEND=jax python examples/lr_finder.py
"""

import _common
import numpy as np


def build(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((784,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(h), name="mnist_mlp")


def train(weights, optimizer, x, y, steps: int, batch_size: int, seed: int) -> float:
    """Mean loss of the last 50 of `steps` batches, from `weights`."""
    import keras

    model = build(seed)
    model.set_weights(weights)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        batch = rng.integers(0, len(x), batch_size)
        model.reset_metrics()  # this batch's loss, not the running mean (Keras 3.10 keeps it across calls)
        losses.append(float(model.train_on_batch(x[batch], y[batch])))
    return float(np.mean(losses[-50:]))


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_mnist_arguments(p)
    p.add_argument("--steps", type=int, default=100, help="batches of the range test (default 100)")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    import keras

    import keras_adaptive

    x, y, _, _, source = _common.load_mnist(args, flat=True)
    steps = 30 if args.short else args.steps
    print(f"backend {_common.backend_name()}, {source}, {len(x)} training images, {steps} steps")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    start = build(args.seed).get_weights()
    optimizers = {"Adam": keras_adaptive.Adam, "SGD": keras_adaptive.SGD}
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, len(optimizers), figsize=(12, 4.5))
    for ax, (name, cls) in zip(axes, optimizers.items()):
        model = build(args.seed)
        model.set_weights(start)
        result = keras_adaptive.find_learning_rate(
            model, (x, y), optimizer=cls(), loss=loss, steps=steps, batch_size=args.batch_size, seed=args.seed
        )
        result.plot(ax, title=f"{name} on the MNIST MLP ({_common.backend_name()})")
        found = ", ".join(f"{rule} {lr:.3g}" for rule, lr in result.suggestions.items() if lr is not None)
        stop = f"stopped at step {result.stopped_at + 1}: {result.stop_reason}" if result.stopped_at is not None else ""
        print(f"{name}: {found}; {stop}")
        if not args.short and result.suggestion is not None:
            at = train(start, cls(learning_rate=result.suggestion), x, y, 300, args.batch_size, args.seed)
            above = train(start, cls(learning_rate=10 * result.suggestion), x, y, 300, args.batch_size, args.seed)
            print(
                f"  300 batches at the suggestion {result.suggestion:.3g}: loss {at:.3f}; "
                f"at 10x it ({10 * result.suggestion:.3g}): {above:.3f}"
            )
    fig.tight_layout()
    _common.save(fig, args, "lr_finder.png")


if __name__ == "__main__":
    main()
