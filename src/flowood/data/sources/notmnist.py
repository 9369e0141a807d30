"""``notmnist``: Yaroslav Bulatov's letter folders, ``<base>/notMNIST_small/{A..J}/*.png`` (28x28 grey).

``test`` is notMNIST_small (the paper's OOD set), ``train`` notMNIST_large when present; labels A=0 ... J=9.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root, find_first, missing_error, probe_paths
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

HOW = (
    "download notMNIST_small.tar.gz (Yaroslav Bulatov's notMNIST dataset) and extract it so that "
    "<root>/notMNIST_small/A/*.png ... <root>/notMNIST_small/J/*.png exist. Offline, 'glyphs' renders a stand-in."
)
LETTERS = "ABCDEFGHIJ"
_FOLDER = {"test": "notMNIST_small", "train": "notMNIST_large"}


def read_letter_folders(folder: Path, name: str, split: str, strict: bool) -> ArrayDataset:
    """Read ``folder/{A..J}/*.png`` (28x28 grey). Unreadable files raise (strict) or are skipped with a warning."""
    from PIL import Image

    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[str] = []
    for label, letter in enumerate(LETTERS):
        sub = folder / letter
        if not sub.is_dir():
            raise DatasetError(f"{name}: {folder} lacks the letter folder {letter}/ (expected A/ ... J/)")
        for p in sorted(sub.iterdir()):
            if p.suffix.lower() != ".png":
                continue
            try:
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("L"), dtype=np.uint8)
            except Exception as err:
                if strict:
                    raise DatasetError(f"cannot read {p}: {err} (corrupt or truncated image)") from err
                skipped.append(str(p))
                continue
            if arr.shape != (28, 28):
                raise DatasetError(f"{p}: expected a 28x28 image, got {arr.shape[1]}x{arr.shape[0]}")
            images.append(arr)
            labels.append(label)
    if skipped:
        warnings.warn(f"{name}: skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:5])}", stacklevel=3)
    if not images:
        raise DatasetError(f"{name}: no readable PNG images under {folder}/A..J")
    data = np.stack(images)[:, None]
    return ArrayDataset(
        data, np.array(labels), kind="image", name=name, split=split, source=str(folder), class_names=list(LETTERS)
    )


def load_notmnist(name: str, split: str, root: Root, download: bool, *, strict: bool = False) -> ArrayDataset:
    """notMNIST: ``test`` is notMNIST_small (the OOD set of the paper), ``train`` is notMNIST_large if present.

    The published notMNIST_small contains a couple of unreadable PNGs, so by default those are skipped with a
    warning naming them; ``strict=True`` raises instead.
    """
    sub = _FOLDER[split]
    folder, looked = find_first(
        root, lambda base: [base / sub, base / "notmnist" / sub, base / "notMNIST" / sub], Path.is_dir
    )
    if folder is None:
        raise missing_error(name, looked, HOW.replace("notMNIST_small", sub))
    return read_letter_folders(folder, name, split, strict)


register(
    Source(
        name="notmnist",
        kind="image",
        shape=(1, 28, 28),
        native=("test", "train"),
        num_classes=10,
        description="notMNIST letters A-J (published folder layout; test = notMNIST_small, train = notMNIST_large)",
        license="free for research (Y. Bulatov)",
        how=HOW,
        loader=load_notmnist,
        probe=probe_paths(["notMNIST_small", "notmnist/notMNIST_small"]),
        options=frozenset({"strict"}),
        carve_val=False,
        order=60,
    )
)
