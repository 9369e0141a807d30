"""Checks of options several commands share (one-line errors before any work starts)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from flowood.errors import ConfigError


def check_data_root(data_root: str | os.PathLike[str] | None) -> None:
    """``--data-root`` must name an existing directory: a typo would otherwise be ignored silently (the
    datasets are then looked for in their default places only)."""
    if data_root is None:
        return
    path = Path(data_root).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise ConfigError(f"--data-root {data_root}: {what}; give the folder that holds the dataset files")


def invoked_as() -> str:
    """How the user runs flowood, for "Next:" lines they can paste: ``flowood`` when that is on ``PATH`` (and is
    this program), else the path they typed (``.venv/bin/flowood`` after ``make``), or ``python -m flowood``."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("flowood")
    if argv0.name != "flowood":
        return "python -m flowood"
    found = shutil.which("flowood")
    if found is not None and Path(found).resolve() == argv0.resolve():
        return "flowood"
    return str(argv0) if argv0.parent != Path() else f"./{argv0}"


def split_names(values: list[str], flag: str, what: str) -> list[str]:
    """``--flag a --flag b`` and ``--flag a,b`` as ``[a, b]``; a flag given with nothing in it (``--ood ''``) is
    an error rather than silently the default."""
    names = [n.strip() for item in values for n in item.split(",") if n.strip()]
    if values and not names:
        raise ConfigError(
            f"{flag} {values[0]!r} names no {what}; give NAME[,NAME], or leave {flag} out for the default"
        )
    return names


def print_table(table: Any, wrap: tuple[str, ...] = ()) -> None:
    """Print a rich ``Table`` whose cells are never cut ("realnvp-fas…"): the names users copy into commands
    stay whole. Only the columns named in ``wrap`` (descriptions) wrap to fit the terminal (80 columns when output
    is piped); where the rest needs more, the table is printed wider than that."""
    from rich.console import Console
    from rich.text import Text

    def width(cell: Any) -> int:
        text = cell if isinstance(cell, Text) else Text.from_markup(str(cell))
        return max((Text(line).cell_len for line in text.plain.splitlines()), default=0)

    needed = 1
    for column in table.columns:
        if str(column.header) in wrap:
            needed += 3 + 12  # a wrapped column still gets a readable width
            continue
        column.no_wrap = True
        column.min_width = max([width(column.header), *(width(c) for c in column._cells)])
        needed += 3 + column.min_width  # padding and border
    console = Console()
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)
