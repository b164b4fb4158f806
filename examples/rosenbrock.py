"""Optimizer paths on the Rosenbrock function from (-1, 1.5), drawn over its contours.

f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 has its minimum at (1, 1) at the end of a long,
curved, flat-bottomed valley. Each optimizer starts at (-1, 1.5) and takes the same
number of steps with the exact gradient; the figure shows where each one goes.

    python examples/rosenbrock.py            # 2000 steps
    python examples/rosenbrock.py --short    # 150 steps
"""

from __future__ import annotations

import time

import _common
import numpy as np

START = (-1.0, 1.5)


def optimizers():
    import keras_adaptive as ka

    # Learning rates picked by hand so that each method shows its typical path; SGD's
    # is near the largest stable step on the valley walls (curvature ~1000).
    return {
        "SGD (lr 1e-3)": lambda: ka.SGD(learning_rate=1e-3),
        "Momentum (lr 1e-3, 0.9)": lambda: ka.SGD(learning_rate=1e-3, momentum=0.9),
        "AdaGrad (lr 0.3)": lambda: ka.AdaGrad(learning_rate=0.3),
        "RMSProp (lr 1e-2)": lambda: ka.RMSProp(learning_rate=1e-2),
        "AdaDelta (lr 1)": lambda: ka.AdaDelta(),
        "Adam (lr 2e-2)": lambda: ka.Adam(learning_rate=2e-2),
    }


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def run(optimizer, steps: int) -> np.ndarray:
    """The path of `optimizer` from START: `steps` steps of `model.fit` on a model whose
    only weight is the point (x, y) and whose loss is f(x, y) (gradient by autodiff)."""
    import keras
    from keras import ops

    class Point(keras.layers.Layer):
        def build(self, input_shape):
            self.xy = self.add_weight(shape=(2,), initializer=keras.initializers.Constant(START), name="xy")

        def call(self, inputs):
            x, y = self.xy[0], self.xy[1]
            return ops.zeros_like(inputs) + (1 - x) ** 2 + 100 * (y - x * x) ** 2

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            path.append(ops.convert_to_numpy(self.model.layers[0].xy).astype(float))

    path = [np.array(START)]
    model = keras.Sequential([keras.Input((1,)), Point()])
    model.compile(optimizer=optimizer, loss=lambda y_true, y_pred: ops.mean(y_pred))
    zeros = np.zeros((steps, 1), dtype="float32")
    model.fit(zeros, zeros, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[Recorder()])
    return np.array(path)


def main():
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    args = p.parse_args()
    steps = 150 if args.short else args.steps
    plt = _common.pyplot()
    print(f"Rosenbrock from {START}, {steps} steps, backend {_common.backend_name()}")

    paths = {}
    for name, make in optimizers().items():
        start = time.perf_counter()
        paths[name] = run(make(), steps)
        x, y = paths[name][-1]
        dist = np.hypot(x - 1, y - 1)
        print(
            f"  {name:26s} ends at ({x:+.4f}, {y:+.4f}), f = {rosenbrock(x, y):.2e}, "
            f"distance to (1, 1) = {dist:.2e}  [{time.perf_counter() - start:.1f} s]"
        )

    # One small panel per optimizer (the paths share the valley and would hide each
    # other on one plot), and f along every path on the right.
    fig = plt.figure(figsize=(17, 7.5))
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 1.3])
    gx, gy = np.meshgrid(np.linspace(-1.6, 1.6, 300), np.linspace(-0.6, 2.2, 300))
    gf = rosenbrock(gx, gy)
    ticks = max(1, steps // 10)
    ax_f = fig.add_subplot(grid[:, 3])
    for i, (name, path) in enumerate(paths.items()):
        ax = fig.add_subplot(grid[i // 3, i % 3])
        color = f"C{i}"
        ax.contour(gx, gy, gf, levels=np.logspace(-1, 3.2, 14), colors="0.75", linewidths=0.5)
        ax.plot(path[:, 0], path[:, 1], "-", lw=1.5, color=color)
        ax.plot(path[::ticks, 0], path[::ticks, 1], "o", ms=3.5, color=color)
        ax.plot(*START, "ks", ms=6)
        ax.plot(1, 1, "r*", ms=12)
        ax.plot(*path[-1], "o", ms=8, mec="k", color=color)
        ax.set(xlim=(-1.6, 1.6), ylim=(-0.6, 2.2), title=name)
        ax.tick_params(labelsize=8)
        values = rosenbrock(path[:, 0], path[:, 1])
        ax_f.plot(np.arange(1, len(values)), values[1:], lw=1.6, color=color, label=name)
    ax_f.set(xscale="log", yscale="log", xlabel="step", ylabel="f(x, y)", title="f along each path")
    ax_f.grid(alpha=0.3)
    ax_f.legend(fontsize=8)
    fig.suptitle(
        f"Rosenbrock function: {steps} steps from (-1, 1.5) (black square) towards the minimum (1, 1) (red star); "
        f"dots every {ticks} steps, big dot at the end ({_common.backend_name()} backend)",
        fontsize=11,
    )
    fig.tight_layout()
    _common.save(fig, args, "rosenbrock.png")


if __name__ == "__main__":
    main()
