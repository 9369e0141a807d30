"""``fashionmnist-mini`` and ``mnist-mini``: real FashionMNIST and MNIST subsets shipped inside the package.

The files are ``flowood/data/bundle/{fashionmnist-mini,mnist-mini}.npz`` (``x_<split>`` uint8 ``(N, 28, 28)``,
``y_<split>``; ``mnist-mini`` also ``half_test``, the flag that halves its test split). See
``bundle/README.md`` for provenance and licences and ``scripts/build_bundle.py`` for how it is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Probe, Root
from flowood.data.registry import Source, register
from flowood.data.sources.mnist import FASHION_LICENSE, MNIST_LICENSE
from flowood.errors import DatasetError

#: ``flowood/data/bundle/``: the package data (pyproject's package-data), beside this package.
BUNDLE_DIR = Path(__file__).resolve().parents[1] / "bundle"
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


def load_bundle(name: str, split: str, root: Root = None, download: bool = False) -> ArrayDataset:
    """``fashionmnist-mini`` (train 10,000 / test 2,000) or ``mnist-mini`` (test 2,000; half-train/half-test 1,000)."""
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


def _probe(name: str) -> Probe:
    return lambda root: ([str(bundle_path(name))], bundle_path(name).is_file())


register(
    Source(
        name="fashionmnist-mini",
        kind="image",
        shape=(1, 28, 28),
        native=BUNDLE_SPLITS["fashionmnist-mini"],
        num_classes=10,
        description="Embedded real FashionMNIST subset, class-balanced: 10,000 train / 2,000 test (offline, < 1 s)",
        license=FASHION_LICENSE,
        how="ships with flowood",
        loader=load_bundle,
        probe=_probe("fashionmnist-mini"),
        order=100,
    )
)
register(
    Source(
        name="mnist-mini",
        kind="image",
        shape=(1, 28, 28),
        native=BUNDLE_SPLITS["mnist-mini"],
        num_classes=10,
        description="Embedded real MNIST digits: test = 2,000 (200 per digit); half-train / half-test = disjoint "
        "1,000 halves",
        license=MNIST_LICENSE,
        how="ships with flowood",
        loader=load_bundle,
        probe=_probe("mnist-mini"),
        carve_val=False,
        order=110,
    )
)
