"""Subprocess half of tests/test_checkpoints.py: a training run that checkpoints as it goes.

    python tests/checkpoint_worker.py BACKEND WORKDIR STEPS EVERY HOLD_AT CASE_ID...

Trains one small MLP per case, all cases interleaved step by step, to STEPS steps. The
batch of step s is a function of s alone, so a run resumed at step k sees the same data as
one that never stopped. Every EVERY steps each model is saved as
WORKDIR/<case>/ckpt-<step>.keras (written to a temporary name, then renamed, so that a kill
while saving leaves the previous checkpoint intact). At start, each case resumes from the
latest checkpoint in its directory, if any. (No checkpoint at the last step: final.npz.) With HOLD_AT > 0 the worker writes
"hold <step>" to WORKDIR/progress after that step and waits to be killed (the test sends
SIGKILL). At the end it writes WORKDIR/<case>/final.npz (weights and optimizer variables)
and WORKDIR/<case>/start.npz
(a case whose training raises writes WORKDIR/<case>/error.txt instead of final.npz) (the optimizer variables it resumed with) and start.json.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import time

BACKEND, WORKDIR, STEPS, EVERY, HOLD_AT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
CASE_IDS = sys.argv[6:]
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.cases import BY_ID  # noqa: E402

BATCH = 32


def batch(step: int):
    """The data of step `step` (from 0): a function of the step only."""
    rng = np.random.default_rng([2024, step])
    x = rng.normal(size=(BATCH, 8)).astype("float32")
    y = (np.tanh(x[:, :1] - 0.5 * x[:, 1:2]) + 0.1 * rng.normal(size=(BATCH, 1))).astype("float32")
    return x, y


def initial_weights():
    rng = np.random.default_rng(7)
    return [
        rng.normal(size=(8, 16)).astype("float32") * 0.5,
        np.zeros(16, "float32"),
        rng.normal(size=(16, 1)).astype("float32") * 0.5,
        np.zeros(1, "float32"),
    ]


def fresh_model(case):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights(initial_weights())
    model.compile(optimizer=case.make(), loss="mse")
    return model


def latest_checkpoint(directory: str):
    found = [
        (int(re.search(r"ckpt-(\d+)\.keras$", p).group(1)), p)
        for p in glob.glob(os.path.join(directory, "ckpt-*.keras"))
    ]
    return max(found) if found else (0, None)


def optimizer_state(model) -> dict:
    """By position: auto-generated layer names (dense_3...) depend on what else the process built."""
    return {f"opt/{i}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(model.optimizer.variables)}


def main():
    models, starts = {}, {}
    for case_id in CASE_IDS:
        directory = os.path.join(WORKDIR, case_id)
        os.makedirs(directory, exist_ok=True)
        step, path = latest_checkpoint(directory)
        model = fresh_model(BY_ID[case_id]) if path is None else keras.models.load_model(path)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        assert iterations == step, f"{case_id}: checkpoint of step {step} has iterations={iterations}"
        models[case_id], starts[case_id] = model, step
        np.savez(os.path.join(directory, "start.npz"), **optimizer_state(model))
        with open(os.path.join(directory, "start.json"), "w") as f:
            json.dump(
                {
                    "step": step,
                    "backend": keras.backend.backend(),
                    "optimizer": type(model.optimizer).__name__,
                    "config": {k: repr(v) for k, v in model.optimizer.get_config().items()},
                },
                f,
            )
    progress = open(os.path.join(WORKDIR, "progress"), "a")
    for step in range(min(starts.values()), STEPS):
        x, y = batch(step)
        for case_id, model in list(models.items()):
            if step < starts[case_id]:
                continue
            try:
                model.train_on_batch(x, y)
            except Exception as error:  # one case's failure is reported, the others go on
                with open(os.path.join(WORKDIR, case_id, "error.txt"), "w") as f:
                    f.write(f"step {step + 1} on {BACKEND}: {type(error).__name__}: {str(error)[:3000]}")
                del models[case_id]
                continue
            if (step + 1) % EVERY == 0 and step + 1 < STEPS:  # the end is written as final.npz
                directory = os.path.join(WORKDIR, case_id)
                temporary = os.path.join(directory, f"saving-{step + 1}.keras")
                model.save(temporary)
                os.replace(temporary, os.path.join(directory, f"ckpt-{step + 1:05d}.keras"))
        progress.write(f"step {step + 1}\n")
        progress.flush()
        if step + 1 == HOLD_AT:
            progress.write(f"hold {step + 1}\n")
            progress.flush()
            while True:  # wait for the SIGKILL
                time.sleep(1)
    for case_id, model in models.items():
        final = {f"weight/{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(os.path.join(WORKDIR, case_id, "final.npz"), **final, **optimizer_state(model))
    progress.write("done\n")
    progress.flush()


if __name__ == "__main__":
    main()
