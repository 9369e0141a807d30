"""``mnist`` and ``fashionmnist``: idx files in torchvision's raw layout.

Files: ``<base>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (resp. ``FashionMNIST``), optionally
``.gz``. They are read by torchvision's idx reader (``torchvision.datasets.mnist.read_image_file``); ``.gz``
files and the Debian ``dataset-fashion-mnist`` install are decompressed into the flowood cache first. idx
headers and sizes are checked before torchvision reads them, so a truncated file gives an error naming it.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import (
    Probe,
    Root,
    cache_dir,
    download_target,
    gunzip_to,
    missing_error,
    probe_paths,
    search_roots,
    torchvision_download,
)
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

#: Directory of Debian's ``dataset-fashion-mnist`` package (the four original idx ``.gz`` files).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_PREFIX = {"train": "train", "test": "t10k"}
MNIST_HOW = (
    "run `python -c \"import flowood.data as d; d.load_dataset('mnist', download=True)\"` on a machine with "
    "internet, or place the four idx files (train-images-idx3-ubyte, ... t10k-labels-idx1-ubyte, optionally "
    ".gz) under <root>/MNIST/raw/. Offline, the embedded 'mnist-mini' (2,000 real digits) always loads."
)
FASHION_HOW = (
    "`apt-get install dataset-fashion-mnist` (Debian; flowood finds /usr/share/datasets/fashion-mnist), or "
    "load with download=True, or place the four idx files under <root>/FashionMNIST/raw/. Offline, the "
    "embedded 'fashionmnist-mini' always loads."
)


def check_idx(path: Path, ndim: int, count: int | None = None) -> int:
    """Validate an idx file's header and size; returns N. Errors name the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    if len(header) < 4 + 4 * ndim:
        raise DatasetError(f"{path} is truncated: {size} bytes, shorter than an idx header")
    magic = int.from_bytes(header[:4], "big")
    if magic != 0x0800 + ndim:
        raise DatasetError(
            f"{path} is not an idx uint8 file with {ndim} dimension(s) (magic 0x{magic:08x}, expected "
            f"0x{0x0800 + ndim:08x}); the file is corrupt or of the wrong kind"
        )
    dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if size != expected:
        raise DatasetError(f"{path} is truncated or corrupt: {size} bytes, header {dims} implies {expected}")
    if count is not None and dims[0] != count:
        raise DatasetError(f"{path} holds {dims[0]} items but its companion file holds {count}")
    return dims[0]


def _idx_files(folder: Path, split: str, suffix: str = "") -> tuple[Path, Path]:
    prefix = _PREFIX[split]
    return folder / f"{prefix}-images-idx3-ubyte{suffix}", folder / f"{prefix}-labels-idx1-ubyte{suffix}"


def _stage_gz(src_dir: Path, dst_dir: Path, split: str) -> bool:
    """Decompress a split's two idx ``.gz`` files from ``src_dir`` into ``dst_dir``; False if not there."""
    gz = _idx_files(src_dir, split, ".gz")
    if not all(p.is_file() for p in gz):
        return False
    for src, dst in zip(gz, _idx_files(dst_dir, split), strict=True):
        if not dst.is_file():
            gunzip_to(src, dst)
    return True


def _find_raw(name: str, cls_name: str, split: str, root: Root, download: bool, how: str) -> Path:
    """The ``raw`` folder holding the split's two uncompressed idx files, staging ``.gz`` files (or the Debian
    install, or a download) first; the one-line missing error otherwise."""
    looked: list[str] = []
    cache_raw = cache_dir() / cls_name / "raw"
    for base in search_roots(root):
        raw = base / cls_name / "raw"
        looked.append(str(raw))
        if all(p.is_file() for p in _idx_files(raw, split)):
            return raw
        if all(p.is_file() for p in _idx_files(raw, split, ".gz")):
            dst = raw if os.access(raw, os.W_OK) else cache_raw  # a read-only root is staged into the cache
            _stage_gz(raw, dst, split)
            return dst
    if cls_name == "FashionMNIST":
        looked.append(f"{DEBIAN_FASHION_MNIST} (Debian package dataset-fashion-mnist)")
        if _stage_gz(DEBIAN_FASHION_MNIST, cache_raw, split):
            return cache_raw
    if download:
        target = download_target(root)
        looked.append(f"download into {target / cls_name / 'raw'}")
        torchvision_download(name, looked, how, cls_name, str(target), train=(split == "train"), download=True)
        return target / cls_name / "raw"
    raise missing_error(name, looked, how)


def load_idx_family(cls_name: str, how: str, name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """One split of MNIST / FashionMNIST (``cls_name`` as torchvision spells it): uint8 ``(N, 1, 28, 28)``."""
    from torchvision import datasets as tvd
    from torchvision.datasets.mnist import read_image_file, read_label_file

    images, labels = _idx_files(_find_raw(name, cls_name, split, root, download, how), split)
    n = check_idx(images, 3)
    check_idx(labels, 1, count=n)
    try:  # torchvision's own reader (its dataset class would also insist on the other split's files)
        data = read_image_file(str(images))
        targets = read_label_file(str(labels))
    except Exception as err:  # anything torchvision objects to is reported with the files it was reading
        raise DatasetError(f"{name}: torchvision could not read {images} / {labels}: {err}") from err
    return ArrayDataset(
        data.unsqueeze(1).contiguous(),
        targets,
        kind="image",
        name=name,
        split=split,
        source=str(images.parent),
        class_names=list(getattr(getattr(tvd, cls_name), "classes", [])) or None,
    )


def _probe(cls_name: str, *system: Path) -> Probe:
    raw = f"{cls_name}/raw/train-images-idx3-ubyte"
    return probe_paths([raw, raw + ".gz"], [p / "train-images-idx3-ubyte.gz" for p in system])


MNIST_LICENSE = "CC BY-SA 3.0 (Y. LeCun, C. Cortes)"
FASHION_LICENSE = "MIT (Zalando SE)"

register(
    Source(
        name="mnist",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="MNIST handwritten digits (60k/10k), torchvision",
        license=MNIST_LICENSE,
        how=MNIST_HOW,
        loader=partial(load_idx_family, "MNIST", MNIST_HOW),
        probe=_probe("MNIST"),
        order=10,
    )
)
register(
    Source(
        name="fashionmnist",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="Fashion-MNIST clothing images (60k/10k), torchvision; Debian dataset-fashion-mnist found "
        "automatically",
        license=FASHION_LICENSE,
        how=FASHION_HOW,
        loader=partial(load_idx_family, "FashionMNIST", FASHION_HOW),
        # DEBIAN_FASHION_MNIST is read at each probe (not bound here), so a test can point it elsewhere.
        probe=lambda root: _probe("FashionMNIST", DEBIAN_FASHION_MNIST)(root),
        order=20,
    )
)
