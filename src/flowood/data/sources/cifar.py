"""``cifar10``: the python pickle batches ``<base>/cifar-10-batches-py/{data_batch_1..5,test_batch}``;
``cifar100``: ``<base>/cifar-100-python/{train,test}`` (the same pickles with ``fine_labels``; the 100 fine
classes are the labels, CIFAR-10's near-OOD set).

Read directly rather than through torchvision's dataset class, whose md5 checks reject anything but the exact
published archive; torchvision only *downloads* it (``download=True``), into the same layout.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root, download_target, find_first, missing_error, probe_paths, torchvision_download
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

HOW = (
    "load with download=True on a machine with internet (torchvision fetches cifar-10-python.tar.gz), or extract "
    "that archive so that <root>/cifar-10-batches-py/data_batch_1 ... test_batch exist."
)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOLDER = "cifar-10-batches-py"


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (uint8 (N, 3, 32, 32), int64 (N,)). Errors name the file."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except Exception as err:
        raise DatasetError(f"cannot read CIFAR-10 batch {path}: {err} (corrupt or truncated file)") from err
    if not isinstance(entry, dict) or "data" not in entry or ("labels" not in entry and "fine_labels" not in entry):
        raise DatasetError(f"{path} is not a CIFAR-10 batch (expected a dict with 'data' and 'labels')")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{path}: expected uint8 data (N, 3072) and N labels, got {data.dtype} {data.shape} and "
            f"{labels.shape[0]} labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _folder(name: str, root: Root, download: bool, folder: str, files: list[str], how: str, tv_class: str) -> Path:
    """The first ``<base>/folder`` holding ``files`` (torchvision downloads the archive there when asked), or the
    one-line missing error."""
    found, looked = find_first(root, lambda base: [base / folder], lambda d: all((d / f).is_file() for f in files))
    if found is None and download:
        target = download_target(root)
        looked.append(f"download into {target}")
        torchvision_download(name, looked, how, tv_class, str(target), train=True, download=True)
        found = target / folder
    if found is None:
        raise missing_error(name, looked, how)
    return found


def load_cifar10(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """``train`` = the five data batches, ``test`` = ``test_batch``: uint8 ``(N, 3, 32, 32)``, labels 0..9."""
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    folder = _folder(name, root, download, FOLDER, files, HOW, "CIFAR10")
    parts = [read_cifar_batch(folder / f) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(data, labels, kind="image", name=name, split=split, source=str(folder), class_names=CLASSES)


HOW_100 = (
    "load with download=True on a machine with internet (torchvision fetches cifar-100-python.tar.gz), or extract "
    "that archive so that <root>/cifar-100-python/train and test exist."
)
FOLDER_100 = "cifar-100-python"


def load_cifar100(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """``train`` (50,000) or ``test`` (10,000): uint8 ``(N, 3, 32, 32)``, the 100 fine labels."""
    folder = _folder(name, root, download, FOLDER_100, [split], HOW_100, "CIFAR100")
    data, labels = read_cifar_batch(folder / split)
    return ArrayDataset(data, labels, kind="image", name=name, split=split, source=str(folder))


register(
    Source(
        name="cifar10",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "test"),
        num_classes=10,
        description="CIFAR-10 (50k/10k), python pickle batches",
        license="no formal licence (Krizhevsky 2009; cite the tech report)",
        how=HOW,
        loader=load_cifar10,
        probe=probe_paths([f"{FOLDER}/data_batch_1"]),
        order=30,
    )
)
register(
    Source(
        name="cifar100",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "test"),
        num_classes=100,
        description="CIFAR-100 (50k/10k, 100 fine classes), python pickles; CIFAR-10's near-OOD set",
        license="no formal licence (Krizhevsky 2009; cite the tech report)",
        how=HOW_100,
        loader=load_cifar100,
        probe=probe_paths([f"{FOLDER_100}/train"]),
        order=31,
    )
)
