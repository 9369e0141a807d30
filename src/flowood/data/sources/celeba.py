"""``celeba``: aligned faces, ``<base>/celeba/img_align_celeba/*.jpg`` with ``list_eval_partition.txt``.

Each image is center-cropped to 148x148 and resized to 32x32 (the paper's resolution; ``size=`` and ``crop=``
change it); the processed split is cached as an npz in the flowood cache, keyed by split, crop and size and
checked against the source folder and image count. Read directly (torchvision's class checks md5 sums of the
exact archives); torchvision only downloads (``download=True``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from flowood.atomic import atomic_write_npz
from flowood.data.base import ArrayDataset
from flowood.data.locate import (
    Root,
    cache_dir,
    download_target,
    find_first,
    missing_error,
    probe_paths,
    torchvision_download,
)
from flowood.data.registry import Source, register
from flowood.errors import DatasetError, RunWriteError

HOW = (
    "download 'img_align_celeba.zip' and 'list_eval_partition.txt' from the CelebA project page (Google Drive) "
    "and extract them so that <root>/celeba/img_align_celeba/000001.jpg and <root>/celeba/list_eval_partition.txt "
    "exist (download=True tries torchvision's Google-Drive download)."
)
PARTITION = "list_eval_partition.txt"
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2, "all": None}


def read_partition(path: Path) -> list[tuple[str, int]]:
    """``list_eval_partition.txt`` -> ``[(file name, 0 train | 1 val | 2 test), ...]``; errors name the line."""
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


def _read_image(path: Path, crop: int, size: int) -> np.ndarray:
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


def _has_layout(folder: Path) -> bool:
    return (folder / "img_align_celeba").is_dir() and (folder / PARTITION).is_file()


def _cached(cache_file: Path, folder: Path, count: int) -> np.ndarray | None:
    """The processed images of an earlier load of the same folder, split, crop and size; ``None`` when absent
    or stale (a bad cache is rebuilt, never fatal)."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file) as z:
            if str(z["source"]) == str(folder.resolve()) and int(z["images"].shape[0]) == count:
                return np.asarray(z["images"])
    except Exception:
        pass
    return None


def load_celeba(
    name: str, split: str, root: Root, download: bool, *, size: int | None = None, crop: int = 148
) -> ArrayDataset:
    """CelebA aligned faces, center crop ``crop`` px, resized to ``size`` (default 32) -> uint8 (N, 3, s, s),
    unlabelled. ``all`` is every image in partition order."""
    size = 32 if size is None else int(size)
    folder, looked = find_first(root, lambda base: [base / "celeba", base], _has_layout)
    if folder is None and download:
        target = download_target(root)
        looked.append(f"download into {target / 'celeba'}")
        torchvision_download(name, looked, HOW, "CelebA", str(target), split="all", target_type=[], download=True)
        folder = target / "celeba"
    if folder is None:
        raise missing_error(name, [f"{p}/img_align_celeba + {PARTITION}" for p in looked], HOW)
    want = _SPLIT_CODE[split]
    files = [f for f, s in read_partition(folder / PARTITION) if want is None or s == want]

    cache_file = cache_dir() / "celeba" / f"processed-{split}-crop{crop}-{size}px.npz"
    images = _cached(cache_file, folder, len(files))
    if images is not None:
        source = f"{folder} (cached {cache_file})"
        return ArrayDataset(images, None, kind="image", name=name, split=split, source=source)
    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    img_dir = folder / "img_align_celeba"
    for i, f in enumerate(files):
        p = img_dir / f
        if not p.is_file():
            raise DatasetError(f"{name}: {p} is listed in {folder / PARTITION} but missing")
        images[i] = _read_image(p, crop, size)
    with contextlib.suppress(RunWriteError):  # a read-only or full cache costs the next load its decoding time
        atomic_write_npz(cache_file, {"images": images, "source": np.array(str(folder.resolve()))})
    return ArrayDataset(images, None, kind="image", name=name, split=split, source=str(folder))


register(
    Source(
        name="celeba",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "val", "test", "all"),
        num_classes=None,
        description="CelebA aligned faces, center crop 148 + resize to 32x32 (the paper's setting; size= changes it)",
        license="non-commercial research (CelebA agreement)",
        how=HOW,
        loader=load_celeba,
        probe=probe_paths(["celeba/img_align_celeba"]),
        options=frozenset({"crop"}),
        takes=frozenset({"size"}),
        order=50,
    )
)
