"""Atomic file writes: every file flowood writes (checkpoints, weights, metrics, configs, reports, caches).

A file is written beside its destination under a hidden ``.<name>.*.tmp`` name and renamed over it, so a
crash, a kill or a full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flowood.errors import RunWriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def describe_write_error(err: BaseException) -> str | None:
    """A short reason (``"no space left on device"``…) when ``err`` is a failed file write, else None.

    ``torch.save`` reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc] ...
    file write failed``; plain ``OSError`` carries an errno.
    """
    if isinstance(err, OSError):
        if err.errno == errno.ENOSPC:
            return "no space left on device (disk full)"
        if err.errno == errno.EDQUOT:
            return "disk quota exceeded"
        if err.errno == errno.EROFS:
            return "read-only file system"
        if err.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        return err.strerror or str(err)
    text = str(err)
    if isinstance(err, RuntimeError) and any(
        s in text for s in ("write failed", "PytorchStreamWriter", "unexpected pos")
    ):
        # "unexpected pos 64 vs 0": torch.save's zip writer after a write that the full disk cut short.
        return "the write failed (disk full?)"
    return None


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then atomically move the result to ``path`` (usual permissions, fsynced).

    Raises:
        RunWriteError: the file could not be written (disk full, read-only, no permission); ``path``
            still holds its previous content.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise RunWriteError(f"cannot write {path}: {describe_write_error(err)}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        reason = describe_write_error(err) if isinstance(err, Exception) else None
        if reason is None:
            raise
        raise RunWriteError(f"cannot write {path}: {reason}; the previous version is kept") from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text file."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """:func:`atomic_write` of an ``.npz`` of ``arrays`` (uncompressed, as ``np.savez``)."""
    import numpy as np  # only writers of arrays need it

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    atomic_write(path, write)


def atomic_write_npy(path: str | os.PathLike[str], array: Any) -> None:
    """:func:`atomic_write` of one array as ``.npy`` (no pickles)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a name
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)
