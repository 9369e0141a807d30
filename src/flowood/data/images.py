"""Image datasets of the paper, read from their published on-disk layouts.

* ``mnist`` / ``fashionmnist``: torchvision's raw layout ``<base>/MNIST/raw/*-ubyte`` (resp. ``FashionMNIST``),
  read by torchvision's idx reader (``torchvision.datasets.mnist.read_image_file``); ``.gz`` files and the Debian
  ``dataset-fashion-mnist`` install are decompressed into the flowood cache first. idx headers and sizes are
  checked before torchvision reads them, so a truncated file gives an error naming it.
* ``cifar10``: ``<base>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickles).
* ``svhn``: ``<base>/svhn/{train,test,extra}_32x32.mat`` (or directly in ``<base>``), ``X (32, 32, 3, N)``,
  ``y (N, 1)`` with 10 meaning digit 0.
* ``celeba``: ``<base>/celeba/img_align_celeba/*.jpg`` with ``list_eval_partition.txt``; each image is
  center-cropped to 148x148 and resized to 32x32 (the paper's resolution), results cached as npz.
* ``notmnist``: ``<base>/notMNIST_small/{A..J}/*.png`` (28x28 grey), labels A=0 ... J=9.
* ``imagenet32`` / ``imagenet64``: downsampled-ImageNet npz batches ``train_data_batch_{1..10}.npz`` and
  ``val_data.npz`` with ``data (N, 3*H*W)`` uint8 (planes R, G, B) and 1-based ``labels``.

CIFAR-10, SVHN and CelebA are read directly (not through torchvision's dataset classes, whose md5 checks
reject anything but the exact published archives); torchvision is used to *download* them when
``download=True``, into the same layout.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from flowood.data.base import ArrayDataset
from flowood.data.locate import (
    DEBIAN_FASHION_MNIST,
    cache_dir,
    gunzip_to,
    is_offline_error,
    missing_error,
    search_roots,
)
from flowood.errors import DatasetError

# ------------------------------------------------------------------------------------------------- idx (MNIST)

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_HOW = {
    "MNIST": (
        "run `python -c \"import flowood.data as d; d.load_dataset('mnist', download=True)\"` on a machine with "
        "internet, or place the four idx files (train-images-idx3-ubyte, ... t10k-labels-idx1-ubyte, optionally "
        ".gz) under <root>/MNIST/raw/. Offline, the embedded 'mnist-mini' (2,000 real digits) always loads."
    ),
    "FashionMNIST": (
        "`apt-get install dataset-fashion-mnist` (Debian; flowood finds /usr/share/datasets/fashion-mnist), or "
        "load with download=True, or place the four idx files under <root>/FashionMNIST/raw/. Offline, the "
        "embedded 'fashionmnist-mini' always loads."
    ),
}


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
    prefix = _IDX_PREFIX[split]
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


def load_idx_family(cls_name: str, name: str, split: str, root: str | Path | None, download: bool) -> ArrayDataset:
    """MNIST / FashionMNIST through torchvision's reader, with the flowood look-up order."""
    from torchvision import datasets as tvd

    if split not in _IDX_PREFIX:
        raise DatasetError(f"{name}: unknown split {split!r}; choose from train, test, val, fit")
    tv_cls = getattr(tvd, cls_name)
    looked: list[str] = []
    found: Path | None = None
    cache_raw = cache_dir() / cls_name / "raw"
    for base in search_roots(root):
        raw = base / cls_name / "raw"
        looked.append(str(raw))
        if all(p.is_file() for p in _idx_files(raw, split)):
            found = base
            break
        if all(p.is_file() for p in _idx_files(raw, split, ".gz")):
            dst = raw if os.access(raw, os.W_OK) else cache_raw
            _stage_gz(raw, dst, split)
            found = dst.parent.parent
            break
    if found is None and cls_name == "FashionMNIST":
        looked.append(f"{DEBIAN_FASHION_MNIST} (Debian package dataset-fashion-mnist)")
        if _stage_gz(DEBIAN_FASHION_MNIST, cache_raw, split):
            found = cache_dir()
    if found is None and download:
        target = Path(root).expanduser() if root is not None else cache_dir()
        looked.append(f"download into {target / cls_name / 'raw'}")
        try:
            tv_cls(str(target), train=(split == "train"), download=True)
        except Exception as err:
            if is_offline_error(err) or isinstance(err, RuntimeError):
                raise missing_error(name, looked, _IDX_HOW[cls_name], f"download failed: {err}") from err
            raise DatasetError(f"{name}: download failed: {err}") from err
        found = target
    if found is None:
        raise missing_error(name, looked, _IDX_HOW[cls_name])

    images, labels = _idx_files(found / cls_name / "raw", split)
    n = check_idx(images, 3)
    check_idx(labels, 1, count=n)
    # torchvision's own idx reader (the dataset class would also insist on the other split's files being present)
    from torchvision.datasets.mnist import read_image_file, read_label_file

    try:
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
        class_names=list(getattr(tv_cls, "classes", [])) or None,
    )


# ------------------------------------------------------------------------------------------------------ CIFAR-10

CIFAR_HOW = (
    "load with download=True on a machine with internet (torchvision fetches cifar-10-python.tar.gz), or extract "
    "that archive so that <root>/cifar-10-batches-py/data_batch_1 ... test_batch exist."
)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


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


def load_cifar10(name: str, split: str, root: str | Path | None, download: bool) -> ArrayDataset:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if split not in ("train", "test"):
        raise DatasetError(f"{name}: unknown split {split!r}; choose from train, test, val, fit")
    looked: list[str] = []
    folder: Path | None = None
    for base in search_roots(root):
        cand = base / "cifar-10-batches-py"
        looked.append(str(cand))
        if all((cand / f).is_file() for f in files):
            folder = cand
            break
    if folder is None and download:
        target = Path(root).expanduser() if root is not None else cache_dir()
        looked.append(f"download into {target}")
        _tv_download(name, looked, CIFAR_HOW, "CIFAR10", str(target), train=True, download=True)
        folder = target / "cifar-10-batches-py"
    if folder is None:
        raise missing_error(name, looked, CIFAR_HOW)
    parts = [read_cifar_batch(folder / f) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(
        data, labels, kind="image", name=name, split=split, source=str(folder), class_names=CIFAR_CLASSES
    )


def _tv_download(name: str, looked: list[str], how: str, cls_name: str, *args: object, **kwargs: object) -> None:
    """Run a torchvision dataset constructor for its download side effect; failures become DatasetErrors."""
    from torchvision import datasets as tvd

    try:
        getattr(tvd, cls_name)(*args, **kwargs)
    except Exception as err:
        raise missing_error(name, looked, how, f"download failed: {type(err).__name__}: {err}") from err


# ---------------------------------------------------------------------------------------------------------- SVHN

SVHN_HOW = (
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


def load_svhn(name: str, split: str, root: str | Path | None, download: bool) -> ArrayDataset:
    if split not in ("train", "test", "extra"):
        raise DatasetError(f"{name}: unknown split {split!r}; choose from train, test, extra, val, fit")
    fname = f"{split}_32x32.mat"
    looked: list[str] = []
    path: Path | None = None
    for base in search_roots(root):
        for cand in (base / "svhn" / fname, base / "SVHN" / fname, base / fname):
            looked.append(str(cand))
            if cand.is_file():
                path = cand
                break
        if path is not None:
            break
    if path is None and download:
        target = (Path(root).expanduser() if root is not None else cache_dir()) / "svhn"
        looked.append(f"download into {target}")
        _tv_download(name, looked, SVHN_HOW.format(split=split), "SVHN", str(target), split=split, download=True)
        path = target / fname
    if path is None:
        raise missing_error(name, looked, SVHN_HOW.format(split=split))
    data, labels = read_svhn_mat(path)
    return ArrayDataset(
        data, labels, kind="image", name=name, split=split, source=str(path), class_names=[str(i) for i in range(10)]
    )


# -------------------------------------------------------------------------------------------------------- CelebA

CELEBA_HOW = (
    "download 'img_align_celeba.zip' and 'list_eval_partition.txt' from the CelebA project page (Google Drive) "
    "and extract them so that <root>/celeba/img_align_celeba/000001.jpg and <root>/celeba/list_eval_partition.txt "
    "exist (download=True tries torchvision's Google-Drive download)."
)
_CELEBA_SPLIT = {"train": 0, "val": 1, "valid": 1, "test": 2, "all": None}


def _celeba_partition(path: Path) -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}:{lineno}: expected '<file>.jpg <0|1|2>', got {line.strip()!r}")
        rows.append((parts[0], int(parts[1])))
    return rows


def _celeba_image(path: Path, crop: int, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as src:
            im = src.convert("RGB")
            w, h = im.size
            c = min(crop, w, h)
            left, top = (w - c) // 2, (h - c) // 2
            im = im.crop((left, top, left + c, top + c)).resize(
                (size, size), Image.Resampling.BILINEAR, reducing_gap=None
            )
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except Exception as err:
        raise DatasetError(f"cannot read CelebA image {path}: {err} (corrupt or truncated file)") from err


def load_celeba(
    name: str, split: str, root: str | Path | None, download: bool, *, size: int | None = None, crop: int = 148
) -> ArrayDataset:
    """CelebA aligned faces, center crop ``crop`` px, resized to ``size`` (default 32) -> uint8 (N, 3, s, s)."""
    if split not in _CELEBA_SPLIT:
        raise DatasetError(f"{name}: unknown split {split!r}; choose from train, val, test, all")
    size = 32 if size is None else int(size)
    looked: list[str] = []
    folder: Path | None = None
    for base in search_roots(root):
        for cand in (base / "celeba", base):
            looked.append(str(cand / "img_align_celeba") + " + list_eval_partition.txt")
            if (cand / "img_align_celeba").is_dir() and (cand / "list_eval_partition.txt").is_file():
                folder = cand
                break
        if folder is not None:
            break
    if folder is None and download:
        target = Path(root).expanduser() if root is not None else cache_dir()
        looked.append(f"download into {target / 'celeba'}")
        _tv_download(name, looked, CELEBA_HOW, "CelebA", str(target), split="all", target_type=[], download=True)
        folder = target / "celeba"
    if folder is None:
        raise missing_error(name, looked, CELEBA_HOW)
    partition = _celeba_partition(folder / "list_eval_partition.txt")
    want = _CELEBA_SPLIT[split]
    files = [f for f, s in partition if want is None or s == want]

    cache_file = cache_dir() / "celeba" / f"processed-{split}-crop{crop}-{size}px.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file) as z:
                if str(z["source"]) == str(folder.resolve()) and int(z["images"].shape[0]) == len(files):
                    return ArrayDataset(
                        z["images"],
                        None,
                        kind="image",
                        name=name,
                        split=split,
                        source=f"{folder} (cached {cache_file})",
                    )
        except Exception:  # a bad cache is rebuilt, never fatal
            pass
    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    img_dir = folder / "img_align_celeba"
    for i, f in enumerate(files):
        p = img_dir / f
        if not p.is_file():
            raise DatasetError(f"{name}: {p} is listed in {folder / 'list_eval_partition.txt'} but missing")
        images[i] = _celeba_image(p, crop, size)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache_file, images=images, source=np.array(str(folder.resolve())))
    except OSError:
        pass
    return ArrayDataset(images, None, kind="image", name=name, split=split, source=str(folder))


# ------------------------------------------------------------------------------------------------------ notMNIST

NOTMNIST_HOW = (
    "download notMNIST_small.tar.gz (Yaroslav Bulatov's notMNIST dataset) and extract it so that "
    "<root>/notMNIST_small/A/*.png ... <root>/notMNIST_small/J/*.png exist. Offline, 'glyphs' renders a stand-in."
)
LETTERS = "ABCDEFGHIJ"


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


def load_notmnist(
    name: str, split: str, root: str | Path | None, download: bool, *, strict: bool = False
) -> ArrayDataset:
    """notMNIST: ``test`` is notMNIST_small (the OOD set of the paper), ``train`` is notMNIST_large if present.

    The published notMNIST_small contains a couple of unreadable PNGs, so by default those are skipped with a
    warning naming them; ``strict=True`` raises instead.
    """
    sub = {"test": "notMNIST_small", "train": "notMNIST_large"}.get(split)
    if sub is None:
        raise DatasetError(f"{name}: unknown split {split!r}; choose from test (notMNIST_small), train (large)")
    looked: list[str] = []
    folder: Path | None = None
    for base in search_roots(root):
        for cand in (base / sub, base / "notmnist" / sub, base / "notMNIST" / sub):
            looked.append(str(cand))
            if cand.is_dir():
                folder = cand
                break
        if folder is not None:
            break
    if folder is None:
        raise missing_error(name, looked, NOTMNIST_HOW.replace("notMNIST_small", sub))
    return read_letter_folders(folder, name, split, strict)


# -------------------------------------------------------------------------------------------- downsampled ImageNet

IMAGENET_HOW = (
    "log in to the ImageNet website, download the 'Downsampled ImageNet {r}x{r}' npz archives "
    "(Imagenet{r}_train_npz, Imagenet{r}_val_npz) and unzip them under <root>/imagenet{r}/ so that "
    "train_data_batch_1.npz ... train_data_batch_10.npz and val_data.npz are in one of the folders listed."
)


def read_imagenet_npz(path: Path, res: int) -> tuple[np.ndarray, np.ndarray]:
    """One downsampled-ImageNet batch -> (uint8 (N, 3, res, res), int64 (N,) zero-based labels)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "data" not in z.files or "labels" not in z.files:
                raise DatasetError(f"{path}: expected arrays 'data' and 'labels', found {z.files}")
            data = np.asarray(z["data"])
            labels = np.asarray(z["labels"]).astype(np.int64).reshape(-1)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read {path}: {err} (corrupt or truncated npz)") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * res * res or data.shape[0] != len(labels):
        raise DatasetError(
            f"{path}: expected uint8 data (N, {3 * res * res}) for {res}x{res} images and N labels, got "
            f"{data.dtype} {data.shape} and {len(labels)} labels"
        )
    if labels.size and labels.min() < 1:
        raise DatasetError(f"{path}: labels must be 1-based (1..1000), found {labels.min()}")
    return data.reshape(-1, 3, res, res), labels - 1


def _imagenet_dirs(base: Path, res: int) -> list[Path]:
    sub = [f"imagenet{res}", f"Imagenet{res}", f"ImageNet{res}"]
    parts = [
        f"Imagenet{res}_train_npz",
        f"Imagenet{res}_val_npz",
        f"Imagenet{res}_train",
        f"Imagenet{res}_val",
        f"Imagenet{res}_train_part1_npz",
        f"Imagenet{res}_train_part2_npz",
    ]
    dirs = [base, *(base / s for s in sub)]
    out: list[Path] = []
    for d in dirs:
        out.append(d)
        out.extend(d / p for p in parts)
    return out


def load_imagenet(
    name: str,
    split: str,
    root: str | Path | None,
    download: bool,
    *,
    res: int,
    batches: Sequence[int] | None = None,
) -> ArrayDataset:
    """Downsampled ImageNet at ``res`` px: ``train`` = batches 1..10 (or ``batches``), ``test`` = ``val_data``."""
    if split not in ("train", "test"):
        raise DatasetError(f"{name}: unknown split {split!r}; choose from train, test (the official val_data), val")
    wanted = ["val_data.npz"] if split == "test" else [f"train_data_batch_{i}.npz" for i in (batches or range(1, 11))]
    looked: list[str] = []
    found: dict[str, Path] = {}
    for base in search_roots(root):
        for d in _imagenet_dirs(base, res):
            looked.append(str(d))
            for f in wanted:
                if f not in found and (d / f).is_file():
                    found[f] = d / f
    how = IMAGENET_HOW.format(r=res)
    if not found:
        more = " ..." if len(wanted) > 2 else ""
        raise missing_error(name, looked, how, f"(looked for {', '.join(wanted[:2])}{more})")
    missing = [f for f in wanted if f not in found]
    if missing:
        raise missing_error(
            name,
            looked,
            how,
            f"found {len(found)} of the {len(wanted)} files; missing: "
            f"{', '.join(missing)} (pass batches=[...] to load a subset of the training batches)",
        )
    parts = [read_imagenet_npz(found[f], res) for f in wanted]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    src = sorted({str(p.parent) for p in found.values()})
    return ArrayDataset(torch.from_numpy(data), labels, kind="image", name=name, split=split, source=", ".join(src))
