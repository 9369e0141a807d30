""":func:`load_dataset`: resolve a name, read the split, then apply the shared options in a fixed order.

The order: the reader's split (native, or ``val``/``fit`` carved from ``train``), class filter, seeded subset
(``limit``), channel conversion, resize; a derived set applies its operation to the result. What was converted
to fit the request is returned in ``ArrayDataset.conversions``, never printed: the command that loads says it
(``ArrayDataset.conversion_note``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from flowood.data import user
from flowood.data.base import (
    ArrayDataset,
    balanced_subset,
    carve_indices,
    convert_channels,
    filter_classes,
    resize_images,
    subset,
)
from flowood.data.derived import derive
from flowood.data.locate import Root
from flowood.data.registry import Source
from flowood.data.resolve import DatasetRef, DerivedRef, UserRef, resolve
from flowood.errors import DatasetError

#: Fraction of ``train`` carved as ``val`` (the rest is ``fit``) for a dataset without a validation split.
VAL_FRACTION = 0.1
_COLOUR = {1: "grey", 3: "RGB"}


@dataclass(frozen=True)
class _Request:
    """The arguments of one :func:`load_dataset` call that every part of a (derived) name is loaded with."""

    split: str
    root: Root
    download: bool
    classes: Sequence[int] | None
    limit: int | None
    seed: int
    channels: int | None
    size: int | None


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: Root = None,
    download: bool = False,
    classes: Sequence[int] | None = None,
    limit: int | None = None,
    seed: int = 0,
    channels: int | None = None,
    size: int | None = None,
    transform: Callable[[torch.Tensor], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    **options: Any,
) -> ArrayDataset:
    """Load one split of a dataset into memory.

    Args:
        name: any name :func:`flowood.data.resolve.resolve` accepts: registered (see :func:`list_datasets`),
            derived (``hflip:NAME``, ``mutate-0.2:NAME``...), user data (``folder:/path``, ``npz:/path.npz``,
            ``table:/path.csv?label=col``, ``embeddings:/path.npz``) or a plain existing path.
        split: ``"train"``, ``"test"``, ...; ``"val"`` / ``"fit"`` are a seeded 10 % / 90 % partition of
            ``"train"`` for datasets without a validation split (``"train"`` itself stays the full official split).
        root: a directory searched first (then the flowood cache, then system installs).
        download: allow torchvision to download when the files are nowhere to be found.
        classes: keep only samples with these labels.
        limit: keep a seeded subset of at most this many samples, class-balanced as far as labels allow.
        seed: seeds ``limit``, carved splits and mutations; the same seed gives the same samples.
        channels: 1 or 3, explicit grey <-> RGB conversion (RGB -> grey by ITU-R 601 luma).
        size: explicit square resize of images to ``size x size`` (for CelebA: the processing resolution).
        transform, target_transform: set on the result, applied by ``ds[i]`` (as torchvision datasets do).
        **options: dataset-specific (``in_class`` for miniboone/hepmass, ``path`` for embeddings, ``label`` for
            CSV tables, ``count``/``system_fonts`` for glyphs, ``batches`` for ImageNet, ``crop`` for CelebA,
            ``strict`` for notMNIST and folders).

    Returns:
        an :class:`ArrayDataset`: ``data`` uint8 ``(N, C, H, W)`` for images or float32 ``(N, D)`` for vectors,
        ``labels`` int64 ``(N,)`` (``-1`` where unlabeled), ``conversions`` what was converted (not printed).

    Raises:
        DatasetError: unknown name or split, files missing (one line naming every place looked and how to get
            them), corrupt / truncated / wrongly shaped files (names the file).
    """
    if channels is not None and channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    request = _Request(split, root, download, classes, limit, seed, channels, size)
    ds = _load(resolve(name), request, dict(options))
    ds.transform, ds.target_transform = transform, target_transform
    return ds


def _load(ref: DatasetRef, request: _Request, options: dict[str, Any]) -> ArrayDataset:
    if isinstance(ref, DerivedRef):  # the base with the same arguments, then the operation
        base = _load(ref.base, request, options)
        return derive(ref.derivation, base, ref.name, base_name=ref.base.name, seed=request.seed)
    if isinstance(ref, UserRef):
        merged = {**dict(ref.options), **options}  # a keyword given explicitly wins over the name's "?key=value"
        ds = user.load(
            ref.scheme, ref.path, request.split, merged, seed=request.seed, size=request.size, channels=request.channels
        )
        return _fit_request(ds, request, resized=ref.scheme == "folder")  # folders are resized as they are read
    return _fit_request(_read(ref.source, request, options), request, resized="size" in ref.source.takes)


def _read(source: Source, request: _Request, options: dict[str, Any]) -> ArrayDataset:
    """One split of a registered source: its options and split checked, carved splits cut from ``train``."""
    unknown = set(options) - source.options
    if unknown:
        raise DatasetError(
            f"{source.name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(source.options) or 'none'}"
        )
    if request.split not in source.splits:
        raise DatasetError(f"{source.name}: unknown split {request.split!r}; available: {', '.join(source.splits)}")
    kwargs = {**options, **{arg: getattr(request, arg) for arg in source.takes}}
    if request.split in source.native:
        return source.loader(source.name, request.split, request.root, request.download, **kwargs)
    full = source.loader(source.name, "train", request.root, request.download, **kwargs)
    salt = zlib.crc32(source.name.encode())
    fit, val = carve_indices(len(full), (1 - VAL_FRACTION, VAL_FRACTION), request.seed, salt=salt)
    return subset(full, val if request.split == "val" else fit)


def _fit_request(ds: ArrayDataset, request: _Request, *, resized: bool) -> ArrayDataset:
    """Class filter, seeded subset, channel conversion and (unless the reader did it) resize, in that order;
    each conversion is noted in ``ds.conversions``."""
    ds.split = request.split
    data, labels = filter_classes(ds.data, ds.labels, request.classes, ds.name)
    if request.limit is not None and request.limit < data.shape[0]:
        idx = torch.as_tensor(balanced_subset(labels.numpy(), int(request.limit), request.seed).astype(np.int64))
        data, labels = data[idx], labels[idx]
    if ds.kind == "image":
        before = tuple(data.shape[1:])
        data = convert_channels(data, request.channels, ds.name)
        if data.shape[1] != before[0]:
            ds.conversions.append(f"{_COLOUR[before[0]]} -> {_COLOUR[int(data.shape[1])]}")
        if not resized:
            data = resize_images(data, request.size, ds.name)
            if tuple(data.shape[2:]) != before[1:]:
                ds.conversions.append(f"resized {before[1]}x{before[2]} -> {data.shape[2]}x{data.shape[3]} (bilinear)")
    elif request.channels is not None or request.size is not None:
        raise DatasetError(
            f"{ds.name} is a {ds.kind} dataset: it cannot be converted to images (channels=/size=); a flow "
            "trained on images scores image datasets only (see `flowood datasets`)"
        )
    ds.data, ds.labels = data, labels
    return ds
