"""Markdown tables: the one writer of the tables that evaluate, compare, prepare and scripts/gpu_paper.py print."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[object], rows: Iterable[Iterable[object]]) -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        header: sequence of str. The column titles.
        rows: iterable of sequences, each as long as `header`; cells are written with `str` (format numbers
            first). A "|" inside a cell is escaped, so a cell never splits into two columns.

    Returns:
        str, the table's lines without a trailing newline.

    Raises:
        ValueError: a row whose length differs from the header's.

    Example:
    >>> print(markdown_table(["model", "Dice"], [["unet", "0.8123"]]))
    | model | Dice |
    | --- | --- |
    | unet | 0.8123 |
    """
    lines = [markdown_row(header), "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns: {row}")
        lines.append(markdown_row(row))
    return "\n".join(lines)


def markdown_row(cells: Iterable[object]) -> str:
    """One line of a Markdown table (for a table written row by row)."""
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def number(value: float | None, digits: int, missing: str = "-") -> str:
    """`value` with `digits` decimals; `missing` for None or NaN (an undefined metric)."""
    if value is None or value != value:
        return missing
    return f"{value:.{digits}f}"
