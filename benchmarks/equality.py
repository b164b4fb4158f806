"""Quick numeric check of the torch fast paths against the portable path, on every registry case.

    KERAS_BACKEND=torch python -m benchmarks.equality

For each case of `tests/cases.py` (plain, and with a schedule, clipping, weight decay and
gradient accumulation), runs `multi_tensor=True` and `multi_tensor=False` for 25 steps and
prints which path the fast run took, the largest difference between the two, and each
one's largest error against the NumPy float64 reference. PyTorch's fused kernels round
differently (FMA, `lerp`), so the two float32 paths differ by a few units in the last
place of the weights' magnitude; what must hold is that the fast path is as close to
the float64 truth as the portable one. Exit code 1 if it is not, or if the difference
exceeds 16 float32 ulps of the largest weight.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_adaptive.backend import torch_fused  # noqa: E402
from tests.cases import CASES  # noqa: E402
from tests.problem import make_problem, run_keras, run_reference  # noqa: E402

ULP = float(np.finfo(np.float32).eps)


def _max_abs(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def main() -> int:
    assert keras.backend.backend() == "torch"
    bad = 0
    problem = make_problem(steps=25)
    for case in CASES:
        for extra_name, extra in (("", {}), ("+sched/clip/wd/accum", None)):
            if extra is None:
                schedule = keras.optimizers.schedules.ExponentialDecay(case.kwargs["learning_rate"], 4, 0.7)
                extra = dict(learning_rate=schedule, clipnorm=2.0, gradient_accumulation_steps=2, weight_decay=0.01)
            fast_opt = case.make(multi_tensor=True, **extra)
            fast_w, fast_s = run_keras(fast_opt, problem)
            port_w, port_s = run_keras(case.make(multi_tensor=False, **extra), problem)
            diff = _max_abs(fast_w, port_w)
            diff_slots = max((_max_abs([f[n]], [p[n]]) for f, p in zip(fast_s, port_s) for n in p), default=0.0)
            scale = max(float(np.max(np.abs(w))) for w in port_w)
            line = f"{case.id + extra_name:55s} {torch_fused.describe(fast_opt):17s} |fast-portable| {diff:.1e} (slots {diff_slots:.1e})"
            ok = diff <= 16 * ULP * scale
            if not extra_name:
                ref_w, _ = run_reference(case, problem)
                e_fast, e_port = _max_abs(fast_w, ref_w), _max_abs(port_w, ref_w)
                line += f"  error vs float64: fast {e_fast:.1e}, portable {e_port:.1e}"
                ok = ok and e_fast <= 2 * e_port + 4 * ULP * scale
            print(("   " if ok else "!! ") + line)
            bad += not ok
    print(f"{bad} case(s) out of tolerance")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
