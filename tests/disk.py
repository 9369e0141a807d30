"""A disk that fills up: every file opened for writing below a folder takes half of what is written to it and
then fails with ``ENOSPC``, as a real full disk does in the middle of a write (``torch.save`` fails as it does
then). Tests use it to show that a command loses nothing and says so in one line."""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch


class _FillingFile:
    """A writable file that accepts half of the first write and then reports a full disk."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, data: Any) -> int:
        self._fh.write(data[: max(1, len(data) // 2)])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fh)


@contextmanager
def disk_full_below(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    *,
    only: str | None = None,
    spare: tuple[str, ...] = (".flowood.lock",),
):
    """Writes below ``folder`` fail with ``ENOSPC`` after half their bytes (files named in ``spare`` still
    write: the run's lock file exists before the disk fills). With ``only``, just the files whose name contains
    it (their temporary files included): the disk fills at that file, after the command's other writes."""
    root = Path(folder).resolve()
    real_open, real_save = builtins.open, torch.save

    def below(path: Any) -> bool:
        if isinstance(path, int) or not isinstance(path, (str, os.PathLike)):
            return False
        p = Path(os.fspath(path)).resolve()
        hit = only is None or only in p.name
        return hit and p.name not in spare and (p == root or root in p.parents)

    def filling_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(file, mode, *args, **kwargs)
        return _FillingFile(fh) if any(c in mode for c in "wax+") and below(file) else fh

    def filling_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if below(f):
            # What torch.save's zip writer says when the disk fills in the middle of a checkpoint.
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
        real_save(obj, f, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", filling_open)
        m.setattr(io, "open", filling_open)
        m.setattr(torch, "save", filling_save)
        yield


def files_below(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (the lock file aside: it names whoever held it last)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file() and p.name != ".flowood.lock"
    }


@contextmanager
def read_only_below(monkeypatch: pytest.MonkeyPatch, folder: Path):
    """Every file below ``folder`` can be read but not written or created (``EROFS``), as on a read-only mount
    (permission bits would not do: the suite may run as root)."""
    root = Path(folder).resolve()
    real_open = builtins.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike)):
            p = Path(os.fspath(file)).resolve()
            if p == root or root in p.parents:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(p))
        return real_open(file, mode, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", guarded_open)
        m.setattr(io, "open", guarded_open)
        yield
