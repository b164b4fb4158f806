"""Argument checks: each raises `ValueError` naming the argument, its value and what is allowed."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any


def _require_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` must be a real number, got {value!r} ({type(value).__name__}).")
    if value != value:  # NaN compares unequal to itself
        raise ValueError(f"Argument `{name}` must be a real number, got {value!r}.")
    return float(value)


def check_learning_rate(value: Any) -> None:
    """A float must be positive and finite; a schedule or a callable is checked when it is called."""
    if callable(value):
        return
    if hasattr(value, "shape") and getattr(value, "shape", None) == () and hasattr(value, "dtype"):
        value = float(value)  # a 0-d tensor or NumPy scalar
    number = _require_number("learning_rate", value)
    if not 0.0 < number < float("inf"):
        raise ValueError(
            f"Argument `learning_rate` must be a positive finite number, a LearningRateSchedule or a "
            f"callable, got {value!r}."
        )


def check_unit_interval(name: str, value: Any) -> None:
    """Decay rates (`rho`, `beta_1`, `beta_2`, `momentum`) live in [0, 1)."""
    number = _require_number(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"Argument `{name}` must be in [0, 1), got {value!r}.")


def check_non_negative(name: str, value: Any) -> None:
    number = _require_number(name, value)
    if not 0.0 <= number < float("inf"):
        raise ValueError(f"Argument `{name}` must be a finite number >= 0, got {value!r}.")


def check_positive(name: str, value: Any) -> None:
    number = _require_number(name, value)
    if not 0.0 < number < float("inf"):
        raise ValueError(f"Argument `{name}` must be a finite number > 0, got {value!r}.")


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"Argument `{name}` must be one of {allowed}, got {value!r}.")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be True or False, got {value!r} ({type(value).__name__}).")
