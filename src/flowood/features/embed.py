"""Embed a whole dataset (several splits) with a pretrained extractor into one ``.npz`` bundle.

File format (``numpy.savez``, readable with ``np.load(path)``, no pickles):

=========================  ==========================  ==============================================
key                        dtype, shape                meaning
=========================  ==========================  ==============================================
``<split>_embeddings``     float32 (N_split, F)        pooled features of every image of the split
``<split>_labels``         int64 (N_split,)            the dataset's class labels, same order
``embeddings``             float32 (N_first, F)        copy of the first split's embeddings (the key
                                                       the original code read)
``labels``                 int64 (N_first,)            copy of the first split's labels
``splits``                 str (S,)                    split names, in order (first = ``embeddings``)
``dataset``                str ()                      dataset name
``extractor``              str ()                      extractor name (``flowood.features`` registry)
``size``                   int64 ()                    extractor input resolution in pixels
``feature_dim``            int64 ()                    F
``weights``                str ()                      identity of the weights used
``metadata``               str ()                      JSON: all of the above plus preprocessing,
                                                       normalisation, limit, seed, flowood version
=========================  ==========================  ==============================================

Features are the raw pooled activations (not standardised): standardise with in-distribution training
statistics before fitting a flow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.atomic import atomic_write_npz
from flowood.data import load_dataset
from flowood.errors import ConfigError, DatasetError
from flowood.features.extract import cached_features, extract_features, resolve_device
from flowood.features.extractors import FeatureExtractor, resolve_extractor

FORMAT_VERSION = 1


def _load_split(
    name: str,
    split: str,
    *,
    root: str | os.PathLike[str] | None,
    limit: int | None,
    seed: int,
    classes: Sequence[int] | None,
) -> Any:
    ds = load_dataset(name, split, root=None if root is None else Path(root), limit=limit, seed=seed, classes=classes)
    if (note := ds.conversion_note()) is not None:  # loading returns what it converted; the command says it
        print(note, file=sys.stderr)
    return ds


@dataclass
class EmbeddingBundle:
    """Contents of an embedding ``.npz`` (see the module docstring for the format).

    Attributes:
        embeddings: split → float32 (N, F).
        labels: split → int64 (N,).
        metadata: the decoded JSON metadata.
    """

    embeddings: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.embeddings)


def read_embeddings(path: str | os.PathLike[str]) -> EmbeddingBundle:
    """Read a bundle written by :func:`embed_dataset` (or any npz with ``embeddings``/``labels``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"embedding file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if "splits" in files:
                splits = [str(s) for s in npz["splits"]]
            else:
                splits = [k[: -len("_embeddings")] for k in npz.files if k.endswith("_embeddings")]
            embeddings = {s: npz[f"{s}_embeddings"] for s in splits}
            labels = {s: npz[f"{s}_labels"] for s in splits if f"{s}_labels" in files}
            if not embeddings and "embeddings" in files:
                embeddings = {"train": npz["embeddings"]}
                if "labels" in files:
                    labels = {"train": npz["labels"]}
            metadata = json.loads(str(npz["metadata"])) if "metadata" in files else {}
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"cannot read embedding file {path}: {err}") from err
    if not embeddings:
        raise DatasetError(f"{path} holds no embeddings (expected keys 'embeddings' or '<split>_embeddings')")
    return EmbeddingBundle(embeddings, labels, metadata)


def _parse_splits(splits: str | Sequence[str]) -> list[str]:
    items = splits.split(",") if isinstance(splits, str) else list(splits)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise ConfigError("give at least one split, e.g. train,test")
    if len(set(items)) != len(items):
        raise ConfigError(f"duplicate split in {items}")
    return items


def embed_dataset(
    name: str,
    extractor: str = "efficientnet-lite0",
    splits: str | Sequence[str] = ("train", "test"),
    out: str | os.PathLike[str] = "embeddings.npz",
    *,
    size: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    limit: int | None = None,
    data_root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    classes: Sequence[int] | None = None,
    weights: str | os.PathLike[str] | None = None,
    download: bool = False,
    progress: bool = True,
    cache: bool | str | os.PathLike[str] = True,
) -> Path:
    """Embed every requested split of a dataset and write one ``.npz`` bundle (format: module docstring).

    Args:
        name: dataset name for :func:`flowood.data.load_dataset` (e.g. ``"fashionmnist-mini"``).
        extractor: extractor name (:func:`~flowood.features.available_extractors`).
        splits: split names, a list or a comma-separated string; the first one is also stored as
            ``embeddings``/``labels``.
        out: output path (parent directories are created; written atomically).
        size: extractor input resolution in pixels (default: the extractor's native size).
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        limit: keep at most this many images per split (passed to ``load_dataset``).
        data_root: dataset root directory (passed to ``load_dataset``).
        seed: subsampling seed (passed to ``load_dataset``).
        classes: keep only these class labels (passed to ``load_dataset``).
        weights, download: see :func:`~flowood.features.resolve_extractor`.
        progress: show progress bars.
        cache: feature cache (see :func:`~flowood.features.extract_features`).

    Returns:
        The path written.
    """
    split_list = _parse_splits(splits)
    out_path = Path(out).expanduser()
    cfg = resolve_extractor(extractor, size=size, weights=weights, download=download)
    dev = resolve_device(device)
    model: FeatureExtractor | None = None
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    dataset_name = name
    start = time.perf_counter()
    for split in split_list:
        ds = _load_split(name, split, root=data_root, limit=limit, seed=seed, classes=classes)
        dataset_name = str(getattr(ds, "name", name))
        feats = cached_features(ds, cfg, cache)
        if feats is None:
            if model is None:
                model = cfg.build().to(dev)
            feats = extract_features(
                ds,
                model,
                batch_size=batch_size,
                device=dev,
                progress=progress,
                cache=cache,
                desc=f"{dataset_name}/{split} {cfg.spec.name}@{cfg.size}px",
            )
        labels = np.asarray(ds.labels, dtype=np.int64)
        if labels.shape != (feats.shape[0],):
            raise DatasetError(f"{dataset_name}/{split}: {feats.shape[0]} images but labels of shape {labels.shape}")
        arrays[f"{split}_embeddings"] = feats
        arrays[f"{split}_labels"] = labels
        counts[split] = int(feats.shape[0])

    first = split_list[0]
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset_name,
        "extractor": cfg.spec.name,
        "size": cfg.size,
        "feature_dim": cfg.spec.feature_dim,
        "weights": cfg.weights_id,
        "splits": split_list,
        "counts": counts,
        "limit": limit,
        "seed": seed,
        "classes": list(classes) if classes is not None else None,
        "preprocessing": (
            "uint8/255 -> bilinear antialiased resize to size x size -> grey repeated to 3 channels -> "
            "(x - mean) / std; features = global average pool of the last feature map"
        ),
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "seconds": round(time.perf_counter() - start, 3),
        "flowood_version": _version(),
    }
    arrays["embeddings"] = arrays[f"{first}_embeddings"]
    arrays["labels"] = arrays[f"{first}_labels"]
    arrays["splits"] = np.array(split_list)
    arrays["dataset"] = np.array(dataset_name)
    arrays["extractor"] = np.array(cfg.spec.name)
    arrays["size"] = np.array(cfg.size, dtype=np.int64)
    arrays["feature_dim"] = np.array(cfg.spec.feature_dim, dtype=np.int64)
    arrays["weights"] = np.array(cfg.weights_id)
    arrays["metadata"] = np.array(json.dumps(meta))
    atomic_write_npz(out_path, arrays)
    return out_path


def write_embedding_split(
    path: str | os.PathLike[str], split: str, features: np.ndarray, labels: np.ndarray, metadata: dict[str, Any]
) -> Path:
    """One split's features as an embedding file in this module's format (one ``split``; ``metadata`` says how they
    were computed), written atomically; what an evaluation's feature pipeline hands its embedding flow."""
    feats = np.ascontiguousarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise DatasetError(f"{path}: features {feats.shape} and labels {labels.shape} do not pair up")
    meta = {"format_version": FORMAT_VERSION, "splits": [split], "flowood_version": _version(), **metadata}
    arrays: dict[str, Any] = {
        f"{split}_embeddings": feats,
        f"{split}_labels": labels,
        "embeddings": feats,
        "labels": labels,
        "splits": np.array([split]),
        "feature_dim": np.array(feats.shape[1], dtype=np.int64),
        "metadata": np.array(json.dumps(meta)),
    }
    out = Path(path).expanduser()
    atomic_write_npz(out, arrays)
    return out


def _version() -> str:
    from flowood.version import __version__

    return __version__
