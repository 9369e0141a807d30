"""Provenance of a number: which code computed it (flowood version, git commit), from which command line, on which
exact arrays (SHA-256 fingerprints), so that two numbers can be compared only when they were computed on the same
samples. Every ``report.json`` (:class:`flowood.evaluation.Provenance`) and every leaderboard cell carries it.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from flowood.evaluation import Provenance


def fingerprint(*arrays: np.ndarray | torch.Tensor) -> str:
    """SHA-256 (hex) of the arrays' dtypes, shapes and bytes, in order: equal exactly when the arrays are."""
    digest = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        digest.update(f"{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout flowood is imported from (``+dirty`` with uncommitted changes to tracked files),
    or ``None`` for an installed package outside a git checkout (or without git)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def command_line() -> str:
    """This process's command line, shell-quoted (``flowood benchmark ...``, or the Python script that called)."""
    argv = list(sys.argv) or ["python"]
    if argv and argv[0].endswith(("/flowood", "flowood")):
        argv[0] = "flowood"
    return shlex.join(argv)


def current() -> Provenance:
    """The provenance of numbers computed now by this process."""
    from flowood.version import __version__

    return Provenance(flowood_version=__version__, git_commit=git_commit(), command_line=command_line())
