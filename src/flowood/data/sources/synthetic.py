"""``uniform-noise``, ``gaussian-noise``, ``constant-images``: synthetic far-OOD sets, generated (no files).

Grey ``1×28×28`` at the default size; ``size=`` generates at another resolution, and ``channels=3`` repeats
the grey channel:

* ``uniform-noise``: every pixel uniform in ``0..255``, independently.
* ``gaussian-noise``: every pixel ``N(128, 40²)`` rounded and clipped to ``0..255``.
* ``constant-images``: one uniform-random grey level per image.

Each split is a pure function of its name and split (seeded by their CRC-32), so every evaluation sees the
same images. Flipped, inverted and mutated copies of any image dataset are derived names
(``hflip:NAME``...), see :mod:`flowood.data.derived`.
"""

from __future__ import annotations

import zlib

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root
from flowood.data.registry import Source, register

SPLIT_SIZES = {"train": 5000, "test": 2000}
"""Samples per split of the generated sets."""

HOW = "generated on the fly by flowood (no files needed)"


def load_synthetic(
    name: str, split: str, root: Root = None, download: bool = False, size: int | None = None
) -> ArrayDataset:
    """Generate split ``split`` of the synthetic set ``name`` as ``uint8 (N, 1, size, size)`` (size 28 default)."""
    n, s = SPLIT_SIZES[split], int(size or 28)
    rng = np.random.default_rng(zlib.crc32(f"{name}/{split}".encode()))
    if name == "uniform-noise":
        data = rng.integers(0, 256, size=(n, 1, s, s), dtype=np.uint8)
    elif name == "gaussian-noise":
        data = np.clip(np.rint(rng.normal(128.0, 40.0, size=(n, 1, s, s))), 0, 255).astype(np.uint8)
    else:
        levels = rng.integers(0, 256, size=(n, 1, 1, 1), dtype=np.uint8)
        data = np.broadcast_to(levels, (n, 1, s, s)).copy()
    return ArrayDataset(data, None, kind="image", name=name, split=split, source=f"generated ({__name__})")


def _no_files(root: Root) -> tuple[list[str], bool]:
    return ["generated"], True


for _order, (_name, _what) in enumerate(
    (
        ("uniform-noise", "i.i.d. uniform 8-bit pixels"),
        ("gaussian-noise", "i.i.d. N(128, 40^2) pixels, clipped"),
        ("constant-images", "one random grey level per image"),
    )
):
    register(
        Source(
            name=_name,
            kind="image",
            shape=(1, 28, 28),
            native=("train", "test"),
            num_classes=None,
            description=f"synthetic far-OOD set: {_what} (5k/2k, seeded); hflip:/vflip:/invert:NAME derive sets "
            "from any image dataset",
            license="generated (no licence needed)",
            how=HOW,
            loader=load_synthetic,
            probe=_no_files,
            takes=frozenset({"size"}),
            order=180 + 10 * _order,
        )
    )
