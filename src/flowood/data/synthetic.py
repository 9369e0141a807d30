"""Synthetic far-OOD sets: noise, constant images, and flipped / inverted copies of any image dataset.

Registered names (grey ``1×28×28`` at the default size; ``size=`` generates at another resolution, and
``channels=3`` repeats the grey channel):

* ``uniform-noise``: every pixel uniform in ``0..255``, independently.
* ``gaussian-noise``: every pixel ``N(128, 40²)`` rounded and clipped to ``0..255``.
* ``constant-images``: one uniform-random grey level per image.

Derived sets, ``OP:NAME`` for any image dataset ``NAME`` (same split, limit and seed as ``NAME``):
``hflip:`` (left-right mirror), ``vflip:`` (upside down), ``invert:`` (``255 - x``).

Each split is a pure function of its name (seeded), so every evaluation sees the same images.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.errors import DatasetError

SPLIT_SIZES = {"train": 5000, "test": 2000}
"""Samples per split of the generated sets."""

GENERATED = ("uniform-noise", "gaussian-noise", "constant-images")
DERIVED_OPS = ("hflip", "vflip", "invert")
HOW = "generated on the fly by flowood (no files needed)"


def load_synthetic(
    key: str, split: str, root: str | Path | None = None, download: bool = False, size: int | None = None
) -> ArrayDataset:
    """Generate split ``split`` of synthetic set ``key`` as ``uint8 (N, 1, size, size)``."""
    if key not in GENERATED:
        raise DatasetError(f"unknown synthetic set {key!r}; available: {', '.join(GENERATED)}")
    if split not in SPLIT_SIZES:
        raise DatasetError(f"{key}: unknown split {split!r}; available: {', '.join(SPLIT_SIZES)}")
    n, s = SPLIT_SIZES[split], int(size or 28)
    rng = np.random.default_rng(zlib.crc32(f"{key}/{split}".encode()))
    if key == "uniform-noise":
        data = rng.integers(0, 256, size=(n, 1, s, s), dtype=np.uint8)
    elif key == "gaussian-noise":
        data = np.clip(np.rint(rng.normal(128.0, 40.0, size=(n, 1, s, s))), 0, 255).astype(np.uint8)
    else:
        levels = rng.integers(0, 256, size=(n, 1, 1, 1), dtype=np.uint8)
        data = np.broadcast_to(levels, (n, 1, s, s)).copy()
    return ArrayDataset(data, None, kind="image", name=key, split=split, source="generated (flowood.data.synthetic)")


def split_derived(name: str) -> tuple[str, str] | None:
    """``"invert:mnist"`` → ``("invert", "mnist")``; ``None`` for names that are not derived sets."""
    op, sep, base = name.partition(":")
    if sep and op.strip().lower() in DERIVED_OPS and base:
        return op.strip().lower(), base
    return None


def derive(op: str, ds: ArrayDataset, name: str) -> ArrayDataset:
    """Apply ``op`` to every image of ``ds`` (labels kept)."""
    if ds.kind != "image":
        raise DatasetError(f"{name}: {op} applies to image datasets, {ds.name} holds vectors")
    x = ds.data
    if op == "hflip":
        x = x.flip(-1)
    elif op == "vflip":
        x = x.flip(-2)
    elif op == "invert":
        x = 255 - x
    else:
        raise DatasetError(f"unknown derived set {op!r}; available: {', '.join(DERIVED_OPS)}")
    return ArrayDataset(
        x.contiguous(), ds.labels, kind="image", name=name, split=ds.split, source=f"{op} of {ds.source}"
    )
