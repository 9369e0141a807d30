"""Batched feature extraction with a content-keyed on-disk cache.

Cache: one ``<key>.npy`` file (float32, shape (N, F)) per (data, extractor) pair in
:func:`feature_cache_dir` (``$FLOWOOD_CACHE/features`` when ``FLOWOOD_CACHE`` is set, otherwise
``~/.cache/flowood/features``). The key is the SHA-256 of the image bytes together with their dtype and
shape, the extractor name, the input size, the identity of the weights and the preprocessing version; so
the same images embedded with the same extractor are computed once, and any change recomputes. Files are
written atomically; delete the directory to clear the cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from flowood.atomic import atomic_write_npy
from flowood.devices import resolve_device
from flowood.errors import ConfigError, DatasetError, FlowoodError
from flowood.features.extractors import ExtractorConfig, FeatureExtractor, resolve_extractor


class ImageDataset(Protocol):
    """What :func:`extract_features` needs from a dataset (``flowood.data.ArrayDataset`` fits)."""

    data: np.ndarray
    kind: str


def feature_cache_dir() -> Path:
    """Directory of cached features: ``$FLOWOOD_CACHE/features`` or ``~/.cache/flowood/features``."""
    root = os.environ.get("FLOWOOD_CACHE")
    if root:
        return Path(root).expanduser() / "features"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "flowood" / "features"


def _as_images(data: Any) -> np.ndarray | torch.Tensor:
    """Validate and return the (N, C, H, W) image array of a dataset, numpy array or tensor."""
    if hasattr(data, "data") and hasattr(data, "kind"):
        if data.kind != "image":
            name = getattr(data, "name", "dataset")
            raise DatasetError(f"{name} is a {data.kind} dataset; feature extractors need images")
        data = data.data
    if isinstance(data, torch.Tensor):
        images: np.ndarray | torch.Tensor = data.detach().cpu()
    elif isinstance(data, np.ndarray):
        images = data
    else:
        raise DatasetError(f"expected an image dataset, numpy array or tensor, got {type(data).__name__}")
    if images.ndim == 3:  # (N, H, W) grey
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DatasetError(f"expected images of shape (N, 1|3, H, W), got {tuple(images.shape)}")
    is_uint8 = images.dtype == (torch.uint8 if isinstance(images, torch.Tensor) else np.uint8)
    if not is_uint8:
        if not (images.dtype.is_floating_point if isinstance(images, torch.Tensor) else images.dtype.kind == "f"):
            raise DatasetError(f"images must be uint8 in [0, 255] or floats in [0, 1], got dtype {images.dtype}")
        if len(images) and (float(images.min()) < -1e-3 or float(images.max()) > 1 + 1e-3):
            raise DatasetError("float images must lie in [0, 1] (divide uint8 pixels by 255)")
    return images


def content_key(images: np.ndarray | torch.Tensor, extractor_id: str) -> str:
    """Cache key: SHA-256 over the image bytes, their dtype and shape, and the extractor identity."""
    arr = images.numpy() if isinstance(images, torch.Tensor) else images
    arr = np.ascontiguousarray(arr)
    digest = hashlib.sha256()
    digest.update(f"{arr.dtype.str}|{arr.shape}|{extractor_id}|".encode())
    digest.update(arr.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def _cache_load(path: Path, n: int) -> np.ndarray | None:
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if feats.ndim != 2 or feats.shape[0] != n or feats.dtype != np.float32:
        return None
    return feats


def _cache_save(path: Path, feats: np.ndarray) -> None:
    atomic_write_npy(path, feats)


def _cache_path(
    images: np.ndarray | torch.Tensor, extractor_id: str, cache: bool | str | os.PathLike[str]
) -> Path | None:
    if cache is False:
        return None
    cache_dir = feature_cache_dir() if cache is True else Path(cache).expanduser()
    return cache_dir / f"{content_key(images, extractor_id)}.npy"


def cached_features(
    data: ImageDataset | np.ndarray | torch.Tensor,
    extractor: ExtractorConfig | FeatureExtractor,
    cache: bool | str | os.PathLike[str] = True,
) -> np.ndarray | None:
    """The cached (N, F) float32 features of ``data`` under ``extractor``, or None when not cached."""
    images = _as_images(data)
    path = _cache_path(images, extractor.cache_id, cache)
    if path is None or not path.is_file():
        return None
    return _cache_load(path, int(images.shape[0]))


class LogProgress:
    """Plain progress lines for a redirected stderr (logs, nohup, SLURM), where tqdm draws nothing: one at
    the start, then one every ``every`` seconds with the rate and the time left."""

    def __init__(self, label: str, total: int, every: float = 60.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.start = self.last = time.monotonic()
        print(f"{label}: {total} images", file=sys.stderr, flush=True)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        print(
            f"{self.label}: {done}/{self.total} images, {rate:.1f} img/s, {left / 60:.1f} min left",
            file=sys.stderr,
            flush=True,
        )


def extract_features(
    data: ImageDataset | np.ndarray | torch.Tensor,
    extractor: str | ExtractorConfig | FeatureExtractor = "efficientnet-lite0",
    *,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = True,
    size: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache: bool | str | os.PathLike[str] = True,
    desc: str | None = None,
) -> np.ndarray:
    """Pooled classifier features of every image, computed in batches (cached by content).

    Args:
        data: an image dataset (``.data`` uint8 (N, C, H, W), ``.kind == "image"``), or an array/tensor
            (N, C, H, W) / (N, H, W) of uint8 pixels or floats in [0, 1]; C is 1 (grey) or 3 (RGB).
        extractor: a registry name (with ``size``/``weights``/``download`` as in
            :func:`~flowood.features.resolve_extractor`), a resolved config, or a built extractor.
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` … (a built extractor is moved there).
        progress: show a tqdm progress bar (images/s) on stderr when it is a terminal.
        size, weights, download: only used when ``extractor`` is a name.
        cache: True for :func:`feature_cache_dir`, a directory path, or False to always recompute.
        desc: progress-bar label.

    Returns:
        float32 array (N, F), F the extractor's feature dimension. The network is only loaded when the
        features are not in the cache.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    images = _as_images(data)
    n = int(images.shape[0])
    if isinstance(extractor, str):
        extractor = resolve_extractor(extractor, size=size, weights=weights, download=download)

    cache_path = _cache_path(images, extractor.cache_id, cache)
    if cache_path is not None:
        hit = _cache_load(cache_path, n) if cache_path.is_file() else None
        if hit is not None:
            return hit

    dev = resolve_device(device)
    model = extractor.build() if isinstance(extractor, ExtractorConfig) else extractor
    model = model.to(dev).eval()
    out = np.empty((n, model.feature_dim), dtype=np.float32)
    bar = tqdm(
        total=n,
        unit="img",
        desc=desc or f"embed {model.name}@{model.size}px",
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    label = desc or f"embed {model.name}@{model.size}px"
    log = LogProgress(label, n) if progress and not sys.stderr.isatty() else None
    with torch.inference_mode(), bar:
        for start in range(0, n, batch_size):
            chunk = images[start : start + batch_size]
            batch = chunk.to(dev) if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
            feats = model(model.preprocess(batch.to(dev, non_blocking=True)))
            out[start : start + len(chunk)] = feats.float().cpu().numpy()
            bar.update(len(chunk))
            if log is not None:
                log.update(start + len(chunk))
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise FlowoodError(f"{model.name} produced non-finite features for {bad} of {n} images")
    if cache_path is not None:
        _cache_save(cache_path, out)
    return out
