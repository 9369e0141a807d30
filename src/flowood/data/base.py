"""Core containers and the post-processing every loader shares.

``ArrayDataset`` holds a whole split in memory: ``uint8 (N, C, H, W)`` for images and ``float32 (N, D)`` for
vectors, with ``int64 (N,)`` labels (``-1`` where unlabeled). The helpers here apply the options of
:func:`flowood.data.load_dataset` in a fixed order: class filter, seeded subset (``limit``), channel conversion,
resize.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from flowood.errors import DatasetError

Kind = Literal["image", "vector"]


class ArrayDataset(Dataset):
    """A split held in memory.

    Attributes:
        data: ``torch.uint8 (N, C, H, W)`` for images (pixel values 0..255), ``torch.float32 (N, D)`` for vectors.
        labels: ``torch.int64 (N,)``; ``-1`` where a sample has no label.
        kind: ``"image"`` or ``"vector"``.
        name, split: what was asked for.
        source: human-readable provenance (a path, ``"embedded bundle"``, ``"rendered from 23 fonts"``...).
        class_names: optional names of the label values ``0..K-1`` (string labels are mapped to these codes).
        conversions: notes of what the loader converted (channels, size, float pixels); the caller says them
            (:meth:`conversion_note`), loading itself prints nothing.
        transform, target_transform: applied by ``ds[i]`` to the sample and to its label, as torchvision
            datasets apply theirs (e.g. pytorch-ood's ``ToUnknown()`` as ``target_transform``); ``None``: none.

    ``ds[i]`` returns ``(x, label)`` with ``x`` float32: ``(C, H, W)`` in ``[0, 1]`` for images, ``(D,)`` for vectors
    (before ``transform``), and ``label`` an int (before ``target_transform``). ``data``, ``as_float()`` and batch
    access by the trainer ignore both transforms: they serve per-sample use through a ``DataLoader``.
    """

    def __init__(
        self,
        data: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | None,
        *,
        kind: Kind,
        name: str,
        split: str,
        source: str,
        class_names: Sequence[str] | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        data_t = torch.as_tensor(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data)
        if kind == "image":
            if data_t.dtype != torch.uint8 or data_t.ndim != 4:
                raise DatasetError(
                    f"{name}: image data must be uint8 (N, C, H, W), got {data_t.dtype} {tuple(data_t.shape)}"
                )
        elif kind == "vector":
            if data_t.ndim != 2:
                raise DatasetError(f"{name}: vector data must be (N, D), got shape {tuple(data_t.shape)}")
            data_t = data_t.to(torch.float32)
        else:  # pragma: no cover - guarded by typing
            raise DatasetError(f"{name}: unknown kind {kind!r}")
        n = data_t.shape[0]
        if labels is None:
            labels_t = torch.full((n,), -1, dtype=torch.int64)
        else:
            labels_t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
            labels_t = labels_t.reshape(-1).to(torch.int64)
            if labels_t.shape[0] != n:
                raise DatasetError(f"{name}: {n} samples but {labels_t.shape[0]} labels (source: {source})")
        self.data: torch.Tensor = data_t
        self.labels: torch.Tensor = labels_t
        self.kind: Kind = kind
        self.name = name
        self.split = split
        self.source = source
        self.class_names: list[str] | None = list(class_names) if class_names is not None else None
        self.conversions: list[str] = []
        """What the loader changed to fit the request, one line each (``"RGB -> grey (ITU-R 601 luma)"``,
        ``"resized 32x32 -> 28x28 (bilinear)"``, ``"float pixels in [0, 1] scaled x255"``); empty when none."""
        self.transform = transform
        self.target_transform = target_transform

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape: ``(C, H, W)`` for images, ``(D,)`` for vectors."""
        return tuple(self.data.shape[1:])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x = self.data[index]
        x = x.to(torch.float32) / 255.0 if self.kind == "image" else x
        y: Any = int(self.labels[index])
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def conversion_note(self) -> str | None:
        """The line a command prints when loading converted this split (``"note: NAME (SPLIT): a; b"``), or
        ``None`` when nothing was converted. Loading returns conversions and never prints them: the caller
        (``flowood.train.data.load_split``, ``flowood.features.embed``) says them, so a library user is not
        written to behind their back."""
        if not self.conversions:
            return None
        return f"note: {self.name} ({self.split}): {'; '.join(self.conversions)}"

    def as_float(self) -> torch.Tensor:
        """All samples as float32: ``(N, C, H, W)`` in ``[0, 1]`` for images, ``(N, D)`` for vectors."""
        if self.kind == "image":
            return self.data.to(torch.float32) / 255.0
        return self.data.clone()

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, shape={self.shape}, "
            f"kind={self.kind!r}, source={self.source!r})"
        )


@dataclass
class DatasetInfo:
    """What the registry knows about one dataset, and whether it can be loaded right now."""

    name: str
    kind: Kind
    shape: tuple[int, ...] | None
    splits: tuple[str, ...]
    num_classes: int | None
    description: str
    locations: list[str] = field(default_factory=list)
    available_now: bool = False
    license: str = ""
    how_to_get: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape) if self.shape is not None else None,
            "splits": list(self.splits),
            "classes": self.num_classes,
            "description": self.description,
            "where_looked": list(self.locations),
            "available_now": self.available_now,
            "license": self.license,
            "how_to_get": self.how_to_get,
        }


# ----------------------------------------------------------------------------------------------- subsets / splits


def carve_indices(n: int, fractions: Sequence[float], seed: int, salt: int = 0) -> list[np.ndarray]:
    """Partition ``range(n)`` by a seeded permutation into consecutive pieces of the given fractions.

    The last piece takes the remainder. Each piece is returned sorted (original order preserved).
    """
    rng = np.random.default_rng([seed, salt, 0x5EED])
    perm = rng.permutation(n)
    pieces: list[np.ndarray] = []
    start = 0
    for i, frac in enumerate(fractions):
        stop = n if i == len(fractions) - 1 else start + round(frac * n)
        pieces.append(np.sort(perm[start:stop]))
        start = stop
    return pieces


def subset(ds: ArrayDataset, idx: np.ndarray) -> ArrayDataset:
    """The samples ``idx`` of ``ds`` (same name, split, source, class names; conversions and transforms carried
    over)."""
    t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    out = ArrayDataset(
        ds.data[t],
        ds.labels[t],
        kind=ds.kind,
        name=ds.name,
        split=ds.split,
        source=ds.source,
        class_names=ds.class_names,
        transform=ds.transform,
        target_transform=ds.target_transform,
    )
    out.conversions = list(ds.conversions)
    return out


def balanced_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of size ``min(limit, N)``, as class-balanced as the labels allow.

    Classes get ``limit // K`` each (spare slots round-robin over classes with samples left); unlabeled data
    (all ``-1``) gets a plain seeded sample. Returned sorted so the original order is kept.
    """
    n = labels.shape[0]
    if limit >= n:
        return np.arange(n)
    if limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    rng = np.random.default_rng([seed, 0x11A17])
    classes = np.unique(labels)
    if len(classes) <= 1:
        return np.sort(rng.choice(n, size=limit, replace=False))
    pools = {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    take = {c: 0 for c in pools}
    remaining = limit
    # Water-filling: repeatedly give each class with spare samples an equal share of what is left.
    while remaining > 0:
        open_classes = [c for c in pools if take[c] < len(pools[c])]
        share = max(1, remaining // len(open_classes))
        for c in open_classes:
            add = min(share, len(pools[c]) - take[c], remaining)
            take[c] += add
            remaining -= add
            if remaining == 0:
                break
    chosen = np.concatenate([pools[c][: take[c]] for c in pools])
    return np.sort(chosen)


def filter_classes(data: torch.Tensor, labels: torch.Tensor, classes: Sequence[int] | None, name: str):
    """Keep samples whose label is in ``classes`` (error when that leaves nothing)."""
    if classes is None:
        return data, labels
    wanted = torch.as_tensor(sorted({int(c) for c in classes}), dtype=torch.int64)
    mask = torch.isin(labels, wanted)
    if not bool(mask.any()):
        present = sorted({int(v) for v in labels.unique().tolist()})
        raise DatasetError(
            f"{name}: no samples with classes {wanted.tolist()}; labels present: {present}. Choose classes from "
            "those, or use every sample with data.classes=null (`--set data.classes=null`; unlabelled data has "
            "label 0 only)"
        )
    return data[mask], labels[mask]


def convert_channels(data: torch.Tensor, channels: int | None, name: str) -> torch.Tensor:
    """Grey <-> RGB on uint8 ``(N, C, H, W)``: 1 -> 3 repeats; 3 -> 1 uses ITU-R 601 luma (as PIL's ``"L"``)."""
    if channels is None or data.shape[1] == channels:
        return data
    if channels not in (1, 3):
        raise DatasetError(f"{name}: channels must be 1 or 3, got {channels}")
    if channels == 3 and data.shape[1] == 1:
        return data.repeat(1, 3, 1, 1)
    if channels == 1 and data.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
        grey = (data.to(torch.float32) * w).sum(dim=1, keepdim=True)
        return grey.round().clamp(0, 255).to(torch.uint8)
    raise DatasetError(f"{name}: cannot convert {data.shape[1]} channels to {channels}")


def resize_images(data: torch.Tensor, size: int | None, name: str, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` to ``(N, C, size, size)`` (bilinear, antialiased when shrinking)."""
    if size is None or (data.shape[2] == size and data.shape[3] == size):
        return data
    if size <= 0:
        raise DatasetError(f"{name}: size must be positive, got {size}")
    if data.shape[2] != data.shape[3]:
        raise DatasetError(f"{name}: resize expects square images, got {tuple(data.shape[2:])}; crop them first")
    shrinking = size < data.shape[2]
    out = []
    for start in range(0, data.shape[0], chunk):
        x = data[start : start + chunk].to(torch.float32)
        y = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
        )
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    if not out:
        return torch.empty((0, data.shape[1], size, size), dtype=torch.uint8)
    return torch.cat(out)
