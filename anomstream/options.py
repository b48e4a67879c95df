"""Command-line values that need parsing beyond what typer does."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import typer

from models.detectors import is_deep


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["hidden=[32, 8]", "l2=1e-5", "activation=tanh"]`` -> values parsed as JSON, else strings.

    >>> parse_assignments(["hidden=[32, 8]", "activation=tanh"])
    {'hidden': [32, 8], 'activation': 'tanh'}
    """
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            parsed[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key.strip()] = text
    return parsed


def epoch_override(detector: str, epochs: int | None) -> dict[str, Any]:
    """``{"epochs": epochs}`` for deep (Keras) detectors, nothing for the others.

    Any value given is passed on, 0 and negatives too, so training refuses them with a clear error
    instead of silently training with the default.
    """
    return {"epochs": epochs} if epochs is not None and is_deep(detector) else {}


def finite_non_negative(value: float | None) -> float | None:
    """typer callback: a rate, duration or gap must be a finite number >= 0 (NaN compares false to
    every bound, so range checks alone let it through)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value} is not a finite number >= 0")
    return value


def one_of(*allowed: str) -> Callable[[str | None], str | None]:
    """typer callback: the value must be one of ``allowed`` (None passes: the option was not given)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check
