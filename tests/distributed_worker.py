"""Subprocess half of tests/test_distributed.py: trains each representative optimizer on
several simulated CPU devices and on one, and writes the weights (and, under
ModelParallel, the shardings of every weight and slot) to an .npz/.json pair.

It must own its process: JAX reads `XLA_FLAGS` (the simulated device count) at import, and
TensorFlow fixes its logical CPU devices when it initializes. Usage:

    python tests/distributed_worker.py jax|tensorflow DEVICES OUT_PREFIX CASE_ID...

On JAX: DataParallel over DEVICES devices and ModelParallel on a (DEVICES/2, 2) mesh with a
LayoutMap; on TensorFlow: MirroredStrategy over DEVICES logical CPUs. Each against one device.

Run from the repository root (the test passes cwd and PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import sys


def _setup_engine(mode: str, devices: int) -> None:
    """Simulate `devices` CPU devices; must run before keras (and the engine) is imported."""
    if mode == "jax":
        os.environ["KERAS_BACKEND"] = "jax"
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    else:
        os.environ["KERAS_BACKEND"] = "tensorflow"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        # Before anything touches the runtime: split the one physical CPU into logical ones.
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


if __name__ == "__main__":  # imported by the test only for `data` and `initial_weights`
    MODE, DEVICES, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    CASE_IDS = sys.argv[4:]
    _setup_engine(MODE, DEVICES)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.cases import BY_ID  # noqa: E402

GLOBAL_BATCH = 32
STEPS = 8


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(8, 1))) + 0.1 * rng.normal(size=(len(x), 1))).astype("float32")
    return x, y


def initial_weights():
    rng = np.random.default_rng(1)
    return [
        rng.normal(size=(8, 16)).astype("float32") * 0.5,
        rng.normal(size=(16,)).astype("float32") * 0.1,
        rng.normal(size=(16, 1)).astype("float32") * 0.5,
        np.full((1,), 0.05, "float32"),
    ]


def build(case):
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh", name="hidden"), keras.layers.Dense(1, name="out")]
    )
    model.set_weights(initial_weights())
    model.compile(optimizer=case.make(), loss="mse")
    return model


def train(case):
    """Weights after STEPS steps of GLOBAL_BATCH examples, in the current distribution context."""
    x, y = data()
    model = build(case)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return model, iterations


def spec_of(value):
    """The partition spec of a JAX array, normalized to one entry per dimension."""
    sharding = value.sharding
    spec = tuple(getattr(sharding, "spec", ()))
    spec = spec + (None,) * (value.ndim - len(spec))
    return [None if s is None else str(s) for s in spec]


def jax_distributions():
    import jax

    devices = jax.devices()[:DEVICES]
    mesh = keras.distribution.DeviceMesh((DEVICES // 2, 2), ["batch", "model"], devices=devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*hidden/kernel"] = (None, "model")  # LayoutMap keys are full-match regexes of variable paths
    layout_map[".*hidden/bias"] = ("model",)
    layout_map[".*out/kernel"] = ("model", None)
    # out/bias, shape (1,), is left replicated: the slots must follow that too.
    return {
        "data": keras.distribution.DataParallel(devices=devices).scope,
        "model": keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch").scope,
    }


def describe_shardings(model):
    optimizer = model.optimizer
    names = optimizer.slot_names()
    shardings = {}
    for variable in model.trainable_variables:
        slots = optimizer.slots(variable, *names)
        shardings[variable.path] = {
            "weight": spec_of(variable.value),
            "slots": {n: spec_of(s.value) for n, s in zip(names, slots)},
            "equivalent": {
                n: bool(s.value.sharding.is_equivalent_to(variable.value.sharding, variable.ndim))
                for n, s in zip(names, slots)
            },
        }
    return shardings


def main():
    out_arrays, report = {}, {"mode": MODE, "devices": DEVICES, "cases": {}}
    if MODE == "jax":
        import jax

        report["backend_devices"] = len(jax.devices())
        scopes = jax_distributions()
    else:
        import tensorflow as tf

        report["backend_devices"] = len(tf.config.list_logical_devices("CPU"))
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
        report["replicas"] = strategy.num_replicas_in_sync
        scopes = {"mirrored": strategy.scope}

    for case_id in CASE_IDS:
        case = BY_ID[case_id]
        entries = report["cases"][case_id] = {}
        single, iterations = train(case)  # no distribution: one device, the golden run
        entries["single"] = {"iterations": iterations}
        for i, w in enumerate(single.get_weights()):
            out_arrays[f"{case_id}/single/{i}"] = np.asarray(w)
        keras.backend.clear_session()
        for name, scope in scopes.items():
            entry = entries[name] = {}
            try:
                with scope():
                    model, entry["iterations"] = train(case)
                    for i, w in enumerate(model.get_weights()):
                        out_arrays[f"{case_id}/{name}/{i}"] = np.asarray(w)
                    if MODE == "jax":
                        entry["weight_devices"] = [len(v.value.sharding.device_set) for v in model.trainable_variables]
                        entry["shardings"] = describe_shardings(model)
                        entry["optimizer_variables"] = {v.path: spec_of(v.value) for v in model.optimizer.variables}
                    else:
                        entry["weight_replicas"] = [
                            len(getattr(v.value, "values", [v.value])) for v in model.trainable_variables
                        ]
            except Exception as error:  # reported to the test, which fails with the message
                import traceback

                entry["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()[-3000:]}"
            keras.backend.clear_session()
    np.savez(OUT + ".npz", **out_arrays)
    with open(OUT + ".json", "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
