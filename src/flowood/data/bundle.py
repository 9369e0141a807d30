"""The embedded default bundle: real FashionMNIST and MNIST subsets shipped inside the package.

See ``bundle/README.md`` for provenance and licences and ``scripts/build_bundle.py`` for how it is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.errors import DatasetError

BUNDLE_DIR = Path(__file__).resolve().parent / "bundle"
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
BUNDLE_SPLITS = {"fashionmnist-mini": ("train", "test"), "mnist-mini": ("test", "half-train", "half-test")}


def bundle_path(name: str) -> Path:
    return BUNDLE_DIR / f"{name}.npz"


def load_bundle(name: str, split: str, root: object = None, download: bool = False) -> ArrayDataset:
    """``fashionmnist-mini`` (train 10,000 / test 2,000) or ``mnist-mini`` (test 2,000; half-train/half-test 1,000)."""
    if split not in BUNDLE_SPLITS[name]:
        raise DatasetError(f"{name}: unknown split {split!r}; choose from {', '.join(BUNDLE_SPLITS[name])}")
    path = bundle_path(name)
    if not path.is_file():
        raise DatasetError(
            f"{name}: the embedded bundle file {path} is missing; reinstall flowood or rebuild it "
            "with `python scripts/build_bundle.py`"
        )
    key = "test" if split.startswith("half-") else split
    try:
        with np.load(path, allow_pickle=False) as z:
            x = z[f"x_{key}"]
            y = z[f"y_{key}"].astype(np.int64)
            if split.startswith("half-"):
                sel = z["half_test"] == (1 if split == "half-test" else 0)
                x, y = x[sel], y[sel]
    except Exception as err:
        raise DatasetError(f"cannot read the embedded bundle {path}: {err}") from err
    classes = FASHION_CLASSES if name == "fashionmnist-mini" else [str(i) for i in range(10)]
    return ArrayDataset(
        x[:, None],
        y,
        kind="image",
        name=name,
        split=split,
        source=f"embedded bundle ({path.name})",
        class_names=classes,
    )
