"""Datasets held as tensors (on the training device when they fit) and batched by seeded permutations.

Holding the data as one tensor avoids DataLoader worker overhead for the small datasets of the paper
and makes the data order a pure function of ``(seed, epoch)``, which is what exact resume needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from flowood.data import load_dataset
from flowood.train.config import DataConfig


@dataclass
class Standardizer:
    """Per-feature ``(x - mean) / std`` with statistics of the in-distribution training split."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> Standardizer:
        return cls(x.mean(0), x.std(0).clamp_min(1e-6))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}))

    @classmethod
    def load(cls, path: Path) -> Standardizer:
        d = json.loads(Path(path).read_text())
        return cls(torch.tensor(d["mean"]), torch.tensor(d["std"]))


class TensorBatches:
    """Mini-batches of a dataset stored as a single tensor.

    Images stay uint8 on the device and are converted to floats in ``[0, 1]`` per batch; vectors are
    float32 (already standardised).
    """

    def __init__(self, data: Tensor, kind: str, device: torch.device) -> None:
        self.kind = kind
        self.data = data.to(device)
        self.device = device

    def __len__(self) -> int:
        return self.data.shape[0]

    def _convert(self, batch: Tensor) -> Tensor:
        return batch.float() / 255.0 if self.kind == "image" else batch.float()

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch(self, batch_size: int, seed: int, epoch: int, skip: int = 0) -> Iterator[Tensor]:
        """Shuffled batches for ``epoch`` (a pure function of ``seed`` and ``epoch``), skipping ``skip``."""
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(self), generator=gen).to(self.device)
        for b in range(skip, self.num_batches(batch_size)):
            yield self._convert(self.data[order[b * batch_size : (b + 1) * batch_size]])

    def random_batch(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """A batch drawn uniformly with replacement (OOD batches of negative training)."""
        idx = torch.randint(len(self), (batch_size,), generator=generator).to(self.device)
        return self._convert(self.data[idx])

    def sequential(self, batch_size: int) -> Iterator[Tensor]:
        for start in range(0, len(self), batch_size):
            yield self._convert(self.data[start : start + batch_size])

    def first(self, n: int) -> Tensor:
        return self._convert(self.data[:n])


def pick_split(name: str, preferred: str) -> str:
    """``preferred`` if dataset ``name`` has it, else its first split (e.g. ``mnist-mini`` has only ``test``)."""
    from flowood.data import dataset_info

    try:
        splits = list(dataset_info(name).splits)
    except Exception:
        return preferred
    if preferred in splits or not splits:
        return preferred
    for alt in ("half-train", "train") if preferred == "train" else ("half-test", "test"):
        if alt in splits:
            return alt
    return splits[0]


def load_split(
    cfg: DataConfig,
    split: str,
    *,
    name: str | None = None,
    limit: int | None = None,
    classes: list[int] | None = None,
    seed: int = 0,
    like_shape: tuple[int, ...] | None = None,
):
    """Load one split through :func:`flowood.data.load_dataset`, matched to ``like_shape`` if given
    (grey↔RGB and resize for OOD image sets scored by a model trained at another shape)."""
    kwargs = {}
    if like_shape is not None and len(like_shape) == 3:
        kwargs = {"channels": like_shape[0], "size": like_shape[1]}
    return load_dataset(name or cfg.dataset, split, root=cfg.root, limit=limit, classes=classes, seed=seed, **kwargs)
