"""Figures measured by tests, printed in pytest's end-of-run summary."""

from __future__ import annotations

MEASUREMENTS: list[str] = []


def measure(line: str) -> None:
    """Record a figure for the end-of-run summary (throughput, AUC, ...)."""
    MEASUREMENTS.append(line)
