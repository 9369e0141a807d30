"""Where datasets are looked for, and the errors raised when they are not there.

Look-up order for every named dataset:

1. the explicit ``root`` given to :func:`flowood.data.load_dataset` (CLI ``--data-root``);
2. the flowood cache, ``$FLOWOOD_DATA`` or else ``~/.cache/flowood`` (files staged from system installs and
   downloads land here);
3. known system installs (the Debian package ``dataset-fashion-mnist`` under ``/usr/share/datasets``), copied
   and decompressed into the cache on first use;
4. a download through torchvision, only when ``download=True``.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from flowood.errors import DatasetError

#: Directory of Debian's ``dataset-fashion-mnist`` package (the four original idx ``.gz`` files).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


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
    """A :class:`DatasetError` naming the dataset, every place looked and how to obtain it."""
    places = "\n".join(f"  - {p}" for p in dict.fromkeys(str(p) for p in looked))
    msg = f"dataset {name!r} not found. Looked in:\n{places}\nTo obtain it: {how}"
    if extra:
        msg += f"\n{extra}"
    return DatasetError(msg)


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
