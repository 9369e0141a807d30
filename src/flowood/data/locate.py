"""Where a registered dataset's files are looked for, and the error raised when they are not there.

(How a *name* is understood — registered, derived, user data or a path — is :mod:`flowood.data.resolve`.)
Look-up order for the files of every registered dataset:

1. the explicit ``root`` given to :func:`flowood.data.load_dataset` (CLI ``--data-root``);
2. the flowood cache, ``$FLOWOOD_DATA`` or else ``~/.cache/flowood`` (files staged from system installs and
   downloads land here);
3. known system installs, which a source names itself (the Debian package ``dataset-fashion-mnist`` under
   ``/usr/share/datasets``, :mod:`flowood.data.sources.mnist`), copied and decompressed into the cache on
   first use;
4. a download through torchvision, only when ``download=True``.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from flowood.errors import DatasetError

Root = str | Path | None
"""The ``root`` argument of :func:`flowood.data.load_dataset` (``--data-root``), ``None`` for none."""
Probe = Callable[[Root], tuple[list[str], bool]]
"""``probe(root) -> (places looked, available now)``: what ``flowood datasets`` shows, without reading data."""


def cache_dir() -> Path:
    """The flowood data cache: ``$FLOWOOD_DATA`` if set, else ``~/.cache/flowood`` (not created here)."""
    env = os.environ.get("FLOWOOD_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "flowood"


def search_roots(root: str | Path | None) -> list[Path]:
    """Base directories in look-up order: explicit ``root`` (if given), then the cache."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    cache = cache_dir()
    if cache not in roots:
        roots.append(cache)
    return roots


def missing_error(name: str, looked: Sequence[str | Path], how: str, extra: str = "") -> DatasetError:
    """A one-line :class:`DatasetError` naming the dataset, every place looked (once each, in order) and how to
    obtain it; ``extra`` adds what was found wanting (``"found 3 of the 10 files; missing: ..."``)."""
    places = ", ".join(dict.fromkeys(str(p) for p in looked))
    msg = f"dataset {name!r} not found; looked in: {places}. To obtain it: {how}"
    if extra:
        msg += f" ({' '.join(extra.split())})"  # a quoted exception may span lines (torchvision's do)
    return DatasetError(msg)


def find_first(
    root: Root, candidates: Callable[[Path], Iterable[Path]], present: Callable[[Path], bool] = Path.is_file
) -> tuple[Path | None, list[str]]:
    """The first candidate, in look-up order, for which ``present`` holds, and every place looked until then.

    Args:
        root: the explicit root (searched first), as :func:`search_roots` takes it.
        candidates: ``base -> paths`` to try under one base directory, in preference order (a layout's
            variants: ``svhn/test_32x32.mat``, ``test_32x32.mat``...).
        present: whether a candidate holds the data (default: it is a file).

    Returns:
        ``(path, looked)``: ``path`` is ``None`` when no candidate is present; ``looked`` lists every candidate
        tried, for :func:`missing_error`.
    """
    looked: list[str] = []
    for base in search_roots(root):
        for cand in candidates(base):
            looked.append(str(cand))
            if present(cand):
                return cand, looked
    return None, looked


def probe_paths(rel: Sequence[str], extra: Sequence[Path] = ()) -> Probe:
    """A probe that looks for any of the relative paths ``rel`` under each search root (then the absolute
    ``extra`` paths, e.g. a system install): cheap ``exists`` checks, no file is read."""

    def probe(root: Root) -> tuple[list[str], bool]:
        cands = [base / r for base in search_roots(root) for r in rel] + list(extra)
        return [str(c) for c in cands], any(c.exists() for c in cands)

    return probe


def download_target(root: Root) -> Path:
    """Where ``download=True`` puts a dataset: the explicit root if given, else the flowood cache."""
    return Path(root).expanduser() if root is not None else cache_dir()


def torchvision_download(
    name: str, looked: list[str], how: str, cls_name: str, *args: object, **kwargs: object
) -> None:
    """Run torchvision's dataset class ``cls_name`` for its download side effect (the files land in the
    published layout flowood reads); any failure, offline or not, becomes a :func:`missing_error`."""
    from torchvision import datasets as tvd

    try:
        getattr(tvd, cls_name)(*args, **kwargs)
    except Exception as err:
        raise missing_error(name, looked, how, f"download failed: {type(err).__name__}: {err}") from err


def gunzip_to(src: Path, dst: Path) -> None:
    """Decompress ``src`` (gzip) to ``dst`` atomically; a corrupt archive raises a DatasetError naming ``src``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    try:
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"cannot decompress {src}: {err} (the file is corrupt or truncated)") from err
    tmp.replace(dst)


def is_offline_error(err: BaseException) -> bool:
    """True for errors that mean 'the network is not reachable' (URLError, socket errors, HTTP failures)."""
    import urllib.error

    return isinstance(err, (urllib.error.URLError, OSError, ConnectionError, TimeoutError))
