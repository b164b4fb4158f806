"""Assertions for a user's own tests: `assert_backends_agree` (backend-switch testing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_adaptive.parity import BACKENDS, DEFAULT_TOLERANCE, ParityReport, run_parity


def assert_backends_agree(
    model: Any,
    data: Any,
    optimizer: str = "adam",
    *,
    steps: int = 50,
    tolerance: float = DEFAULT_TOLERANCE,
    backends: Sequence[str] = BACKENDS,
    **options: Any,
) -> ParityReport:
    """Train `model` from the same weights on the same batches on each of `backends` (one
    process each) and raise AssertionError, with the report, if any pair differs by more
    than `tolerance` (see `keras_adaptive.parity.run_parity`, which takes the same arguments
    and `options`). Returns the report when they agree."""
    report = run_parity(model, data, optimizer, steps=steps, tolerance=tolerance, backends=backends, **options)
    if not report.agree:
        raise AssertionError("the backends disagree beyond the tolerance:\n" + report.text())
    return report
