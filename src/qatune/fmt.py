"""How a value reads in a table: one rule for the terminal (`qatune sweep show`) and the study report."""

from __future__ import annotations

from typing import Any


def cell(value: Any) -> str:
    """None as '-', floats with 4 significant decimals (tiny or huge ones in g-notation), the rest as str."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)
