"""Plain text for a terminal: sentences that wrap and tables that fit in WIDTH columns.

Every verb's default output fits 80 columns, the width of a terminal nobody has resized: a table
too wide for it takes its long headers on two lines and wraps the words of one column (a
description, a label), and long sentences wrap at spaces. `--wide` passes width None: the old one
line per row, however long. A word longer than the width (a path) is never broken: it runs over.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Container, Sequence

WIDTH = 80  # columns of default output; None (--wide) lets a line be as long as it needs


def wrap(text: str, width: int | None = WIDTH, first: str = "", indent: str = "") -> list[str]:
    """`text` as lines of at most `width` columns, the first after `first`, the others after
    `indent`; width None gives one line. Words (paths, 1x1-conv, nin_fast-fashion-mnist-...)
    are never broken, at hyphens or anywhere."""
    if width is None:
        return [first + text]
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [first]  # fmt: skip


def fill(text: str, width: int | None = WIDTH, first: str = "", indent: str = "") -> str:
    """`wrap` joined into one string."""
    return "\n".join(wrap(text, width, first, indent))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Container[int] = (),
    width: int | None = WIDTH,
    wrap_column: int | None = None,
    rule: bool = False,
) -> list[str]:
    """Cells as aligned lines, two spaces between columns, the columns in `right` right-aligned,
    a line of dashes under the header when `rule`. Wider than `width`, a header of several words
    takes two lines, and the cells of column `wrap_column` wrap to the room that is left (at
    least 12 columns; a first column's continuation indented by 2); other cells are never cut."""
    head = [tuple(header)]
    rows = [tuple(r) for r in rows]
    if width is not None and _total(_widths(head + rows)) > width:
        head = _two_line_header(header, rows)
        if wrap_column is not None:
            others = _widths(head + rows)
            others[wrap_column] = 0
            room = max(width - _total(others), 12)
            rows = [line for r in rows for line in _wrap_cell(r, wrap_column, room)]
    widths = _widths(head + rows)
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in head + rows
    ]
    if rule:
        lines.insert(len(head), "-" * max(len(line) for line in lines[: len(head)]))
    return lines


def _widths(rows: list[tuple]) -> list[int]:
    return [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]


def _total(widths: list[int]) -> int:
    return sum(widths) + 2 * (len(widths) - 1)


def _two_line_header(header: Sequence[str], rows: list[tuple]) -> list[tuple]:
    """The header as two rows: a name of several words wider than its column's cells is split
    at the space that leaves the shorter longest half ("weights saved": "weights" over
    "saved"); a name of one line sits on the lower row, beside the second halves."""
    top, bottom = [], []
    for i, name in enumerate(header):
        cells = max((len(r[i]) for r in rows), default=0)
        spaces = [k for k, ch in enumerate(name) if ch == " "]
        if len(name) <= cells or not spaces:
            top.append("")
            bottom.append(name)
            continue
        k = min(spaces, key=lambda k: max(k, len(name) - k - 1))
        top.append(name[:k])
        bottom.append(name[k + 1 :])
    return [tuple(top), tuple(bottom)] if any(top) else [tuple(bottom)]


def _wrap_cell(row: tuple, column: int, room: int) -> list[tuple]:
    """The row as one line or more: the cell of `column` wrapped to `room`, the others on the
    first line only."""
    indent = "  " if column == 0 else ""
    blank = ("",) * len(row)
    return [
        (row if k == 0 else blank)[:column] + (part,) + (row if k == 0 else blank)[column + 1 :]
        for k, part in enumerate(wrap(row[column], room, indent=indent))
    ]


def first_of(items, most: int) -> str:
    """The first `most` items, comma-separated, and how many there are in all when that is more:
    "a, b, ... (7 in all)"."""
    shown = ", ".join(map(str, items[:most]))
    return shown if len(items) <= most else f"{shown}, ... ({len(items)} in all)"


def wrapping(log: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """A log function that wraps each line of a message at WIDTH, continuations indented by 2
    (None stays None: no log)."""
    if log is None:
        return None
    return lambda message: log("\n".join(fill(line, indent="  ") for line in message.splitlines()))
