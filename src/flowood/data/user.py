"""User data by name: the ``folder:``, ``npz:``, ``table:`` and ``embeddings:`` schemes and plain paths.

Names (the file formats are :mod:`flowood.data.user_files`):

* ``folder:/path`` - images in ImageFolder layout (``/path/<class>/<image>``, or ``/path/<split>/<class>/``).
* ``npz:/path.npz`` - images in an ``.npz`` (or a folder of ``<split>.npz``).
* ``table:/path.csv?label=col`` - a CSV table whose column ``col`` holds the labels (``label="col"`` as a
  keyword does the same), or ``table:/path.npz``.
* ``embeddings:/path.npz`` - feature vectors (the registered name ``embeddings`` with ``path=`` reads the same
  files, :mod:`flowood.data.sources.embeddings`).
* a plain existing path (with a ``/`` or ``:``, or starting with ``.``): a directory is read as ``folder:``, a
  ``.csv`` as ``table:``, an ``.npz`` as ``npz:`` when it holds images, ``embeddings:`` when it holds
  ``embeddings``, else as ``table:``.

``?key=value&...`` after a path are options (keywords given explicitly win). **Splits of a single source.** A
file or folder without split structure has the native split ``all`` (everything); ``train`` / ``val`` /
``test`` are a seeded :data:`USER_FRACTIONS` partition of it (the load ``seed``).

:func:`parse_scheme` and :func:`parse_path` serve the resolver (:mod:`flowood.data.resolve`), :func:`load`
reads one split, :func:`ood_split`, :func:`info` and :func:`scheme_infos` serve split picking, ``dataset_info``
and ``list_datasets``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from flowood.data.base import ArrayDataset, DatasetInfo, Kind, carve_indices, subset
from flowood.data.user_files import (
    SPLIT_NAMES,
    load_embeddings_file,
    load_image_folder,
    load_images_npz,
    load_table,
    native_splits,
    open_npz,
)
from flowood.errors import DatasetError

USER_SCHEMES = ("folder", "npz", "table", "embeddings")
#: Fractions used to carve ``train`` / ``val`` / ``test`` from a single user source (native split ``all``).
USER_FRACTIONS = (0.8, 0.1, 0.1)
_OPTIONS = {"folder": {"strict"}, "table": {"label"}, "npz": set(), "embeddings": set()}
# What `flowood datasets` says about each scheme (``embeddings`` is listed as its registered source instead).
_SCHEME_DOC: dict[str, tuple[Kind, str]] = {
    "folder": ("image", "user images in ImageFolder layout: folder:/path/<class>/<image> (or /path/<split>/<class>/)"),
    "npz": ("image", "user images in an .npz: npz:/path.npz with 'images' or 'x' (uint8 NHWC/NCHW), 'labels'/'y'"),
    "table": ("vector", "user table: table:/path.csv?label=col (header row) or table:/path.npz with 'x' and 'y'"),
}
_EMBEDDINGS_DOC = "embedding vectors: embeddings:/path.npz with 'embeddings' (N, D) and 'labels' (N,)"

UserName = tuple[str, Path, dict[str, str]]
"""``(scheme, path, options from "?key=value")``: what a user-data name says."""


def parse_scheme(name: str) -> UserName | None:
    """``scheme:/path[?key=value&...]`` with a user scheme (case-insensitive) -> ``(scheme, path, options)``;
    ``None`` for any other name. The path is not checked here (loading says when it is missing)."""
    scheme, sep, rest = name.strip().partition(":")
    if not (sep and scheme.lower() in USER_SCHEMES and rest):
        return None
    rest, _, query = rest.partition("?")
    options = {}
    for item in query.split("&") if query else ():
        key, _, value = item.partition("=")
        if key:
            options[key] = value
    return scheme.lower(), Path(rest).expanduser(), options


def parse_path(name: str) -> UserName | None:
    """A plain existing path (it has a ``/`` or ``:``, or starts with ``.``, so that no registered name is
    taken for a file of the same name) -> the scheme its contents call for; ``None`` otherwise.

    Raises:
        DatasetError: an ``.npz`` that cannot be read (to tell images from tables).
    """
    name = name.strip()
    path = Path(name).expanduser()
    if not ((":" in name or "/" in name or name.startswith(".")) and path.exists()):
        return None
    if path.is_dir():
        return "folder", path, {}
    if path.suffix.lower() == ".csv":
        return "table", path, {}
    if path.suffix.lower() != ".npz":
        return None
    with open_npz(path) as z:
        try:
            holds_images = any(k in z.files or f"{k}_train" in z.files for k in ("images", "x")) and any(
                np.asarray(z[k]).ndim >= 3 for k in z.files if k.startswith(("images", "x"))
            )
        except ValueError as err:  # an object array (allow_pickle=False) or a damaged member
            raise DatasetError(f"cannot read {path}: {err}; save its arrays as numbers or strings") from None
        scheme = "npz" if holds_images else ("embeddings" if "embeddings" in z.files else "table")
    return scheme, path, {}


def load(
    scheme: str,
    path: Path,
    split: str,
    options: dict[str, Any],
    *,
    seed: int = 0,
    size: int | None = None,
    channels: int | None = None,
) -> ArrayDataset:
    """One split of user data. A source without split structure (native split ``all``) gives ``train`` /
    ``val`` / ``test`` as a seeded :data:`USER_FRACTIONS` partition of it.

    Args:
        scheme, path: as :func:`parse_scheme` / :func:`parse_path` return them.
        options: the scheme's options (``strict`` for folders, ``label`` for tables).
        seed: seeds the partition; ``size``/``channels``: resize and convert while reading a folder.

    Raises:
        DatasetError: missing path, unknown option or split, or whatever the reader finds wrong.
    """
    if not path.exists():
        raise DatasetError(f"{scheme}: {path} does not exist")
    name = f"{scheme}:{path}"
    allowed = _OPTIONS[scheme]
    unknown = set(options) - allowed
    if unknown:
        raise DatasetError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(allowed) or 'none'}")
    native = native_splits(path, scheme)
    wanted = split
    if split not in native:
        if native == ("all",) and split in SPLIT_NAMES:
            wanted = "all"
        else:
            raise DatasetError(
                f"{name}: unknown split {split!r}; available: {', '.join(native)}"
                + (", train, val, test (carved 80/10/10)" if native == ("all",) else "")
            )
    if scheme == "folder":
        strict = str(options.get("strict", True)).lower() not in ("0", "false")
        ds = load_image_folder(name, wanted, path, size=size, channels=channels, strict=strict)
    elif scheme == "npz":
        ds = load_images_npz(name, wanted, path)
    elif scheme == "table":
        ds = load_table(name, wanted, path, label=options.get("label"))
    else:
        ds = load_embeddings_file(name, wanted, path)
    if len(ds) == 0:
        raise DatasetError(f"{name}: {ds.source} holds no samples (its arrays are empty); give a file with data")
    if wanted != split:
        pieces = carve_indices(len(ds), USER_FRACTIONS, seed, salt=zlib.crc32(b"user"))
        ds = subset(ds, pieces[SPLIT_NAMES.index(split)])
    return ds


def ood_split(scheme: str, path: Path) -> str:
    """The split to score when this source is an OOD set: ``all`` for a single source (scored whole), else
    ``test`` if it has one, else its first split; ``test`` when the source cannot be read (loading says why)."""
    try:
        native = native_splits(path, scheme)
    except DatasetError:
        return "test"
    return "all" if native == ("all",) else ("test" if "test" in native else native[0])


def _scheme_info(name: str, kind: Kind, description: str, locations: list[str], available: bool) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        kind=kind,
        shape=None,
        splits=("all", *SPLIT_NAMES),
        num_classes=None,
        description=description,
        locations=locations,
        available_now=available,
        license="the user's",
        how_to_get="your own files",
    )


def info(name: str, scheme: str, path: Path) -> DatasetInfo:
    """What is known of the user data ``name`` (read as ``scheme`` from ``path``) before reading it."""
    kind, description = _SCHEME_DOC.get(scheme, ("vector", _EMBEDDINGS_DOC))
    return _scheme_info(name, kind, description, [str(path)], path.exists())


def scheme_infos() -> list[DatasetInfo]:
    """One entry per user-data scheme, for listings (``folder:<path>``...)."""
    return [_scheme_info(f"{s}:<path>", k, d, ["the path given"], False) for s, (k, d) in _SCHEME_DOC.items()]
