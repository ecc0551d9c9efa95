"""Markdown and number formatting shared by the report's text modules."""

from __future__ import annotations

from collections.abc import Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Returns a Markdown table's lines; cells are flattened to one line with `|` escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]


def cell(value: str) -> str:
    """Flattens a value to one line for a Markdown table cell, `|` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def number(value: float | None) -> str:
    """A number to 4 decimals, '' for None."""
    return "" if value is None else f"{value:.4f}"


def plain(value: float | None) -> str:
    """A number as Python prints it (full precision, for CSV), '' for None."""
    return "" if value is None else str(value)
