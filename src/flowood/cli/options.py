"""Checks of options several commands share (one-line errors before any work starts)."""

from __future__ import annotations

import os
from pathlib import Path

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
