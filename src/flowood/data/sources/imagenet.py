"""``imagenet32`` / ``imagenet64``: the downsampled-ImageNet npz batches (Chrabaszcz et al. 2017).

Files ``train_data_batch_{1..10}.npz`` and ``val_data.npz``, each with ``data (N, 3*H*W)`` uint8 (planes R, G,
B) and 1-based ``labels``, found in any of the folders the published archives unpack to (``imagenet32/``,
``Imagenet32_train_npz/``, ...). ``test`` is the official ``val_data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root, missing_error, probe_paths, search_roots
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

HOW = (
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


def _folders(base: Path, res: int) -> list[Path]:
    """Every folder under ``base`` where the published archives' files may sit, in preference order."""
    parts = [
        f"Imagenet{res}_train_npz",
        f"Imagenet{res}_val_npz",
        f"Imagenet{res}_train",
        f"Imagenet{res}_val",
        f"Imagenet{res}_train_part1_npz",
        f"Imagenet{res}_train_part2_npz",
    ]
    out: list[Path] = []
    for d in (base, base / f"imagenet{res}", base / f"Imagenet{res}", base / f"ImageNet{res}"):
        out.append(d)
        out.extend(d / p for p in parts)
    return out


def load_imagenet(
    name: str, split: str, root: Root, download: bool, *, res: int, batches: Sequence[int] | None = None
) -> ArrayDataset:
    """Downsampled ImageNet at ``res`` px: ``train`` = batches 1..10 (or ``batches``), ``test`` = ``val_data``.

    The files of one split may be spread over several folders (the training archive comes in parts), so every
    folder is searched for each file rather than stopping at the first folder that has one.
    """
    wanted = ["val_data.npz"] if split == "test" else [f"train_data_batch_{i}.npz" for i in (batches or range(1, 11))]
    looked: list[str] = []
    found: dict[str, Path] = {}
    for base in search_roots(root):
        for d in _folders(base, res):
            looked.append(str(d))
            for f in wanted:
                if f not in found and (d / f).is_file():
                    found[f] = d / f
    how = HOW.format(r=res)
    if not found:
        more = " ..." if len(wanted) > 2 else ""
        raise missing_error(name, looked, how, f"looked for {', '.join(wanted[:2])}{more}")
    missing = [f for f in wanted if f not in found]
    if missing:
        raise missing_error(
            name,
            looked,
            how,
            f"found {len(found)} of the {len(wanted)} files; missing: "
            f"{', '.join(missing)}; pass batches=[...] to load a subset of the training batches",
        )
    parts = [read_imagenet_npz(found[f], res) for f in wanted]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    src = sorted({str(p.parent) for p in found.values()})
    return ArrayDataset(torch.from_numpy(data), labels, kind="image", name=name, split=split, source=", ".join(src))


for _res in (32, 64):
    _probe_dirs = (
        f"imagenet{_res}",
        f"imagenet{_res}/Imagenet{_res}_val_npz",
        f"imagenet{_res}/Imagenet{_res}_train_npz",
        f"Imagenet{_res}_val_npz",
    )
    register(
        Source(
            name=f"imagenet{_res}",
            kind="image",
            shape=(3, _res, _res),
            native=("train", "test"),
            num_classes=1000,
            description=f"Downsampled ImageNet {_res}x{_res} npz batches (train 1.28M; test = official val_data 50k)",
            license="ImageNet terms of access (non-commercial research)",
            how=HOW.format(r=_res),
            loader=partial(load_imagenet, res=_res),
            probe=probe_paths([f"{d}/{f}" for d in _probe_dirs for f in ("val_data.npz", "train_data_batch_1.npz")]),
            options=frozenset({"batches"}),
            order=70 if _res == 32 else 80,
        )
    )
