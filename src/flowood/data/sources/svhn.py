"""``svhn``: the cropped-digits files ``<base>/svhn/{train,test,extra}_32x32.mat`` (or directly in ``<base>``).

Each holds ``X (32, 32, 3, N)`` uint8 and ``y (N, 1)`` with 10 meaning digit 0. Read with scipy; torchvision
only downloads (``download=True``), into the same layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root, download_target, find_first, missing_error, probe_paths, torchvision_download
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

HOW = (
    "load with download=True on a machine with internet (torchvision fetches {split}_32x32.mat), or place the "
    "cropped-digits files train_32x32.mat / test_32x32.mat / extra_32x32.mat in <root>/svhn/."
)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN cropped-digits ``.mat`` -> (uint8 (N, 3, 32, 32), int64 (N,)) with label 10 mapped to 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:
        raise DatasetError(f"cannot read SVHN file {path}: {err} (corrupt or truncated .mat)") from err
    if "X" not in mat or "y" not in mat:
        raise DatasetError(f"{path} is not an SVHN cropped-digits file (needs variables X and y)")
    x = np.asarray(mat["X"])
    y = np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise DatasetError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, got {x.shape} / {y.shape}")
    y = np.where(y == 10, 0, y)
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y


def load_svhn(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """One of ``train`` / ``test`` / ``extra``: uint8 ``(N, 3, 32, 32)``, labels 0..9."""
    fname = f"{split}_32x32.mat"
    how = HOW.format(split=split)
    path, looked = find_first(root, lambda base: [base / "svhn" / fname, base / "SVHN" / fname, base / fname])
    if path is None and download:
        target = download_target(root) / "svhn"
        looked.append(f"download into {target}")
        torchvision_download(name, looked, how, "SVHN", str(target), split=split, download=True)
        path = target / fname
    if path is None:
        raise missing_error(name, looked, how)
    data, labels = read_svhn_mat(path)
    return ArrayDataset(
        data, labels, kind="image", name=name, split=split, source=str(path), class_names=[str(i) for i in range(10)]
    )


register(
    Source(
        name="svhn",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "test", "extra"),
        num_classes=10,
        description="SVHN cropped digits (73k/26k/531k), .mat",
        license="non-commercial use (Netzer et al. 2011)",
        how=HOW.format(split="train"),
        loader=load_svhn,
        probe=probe_paths(["svhn/train_32x32.mat", "svhn/test_32x32.mat", "train_32x32.mat", "test_32x32.mat"]),
        order=40,
    )
)
