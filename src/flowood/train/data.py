"""Datasets held as tensors (on the training device when they fit) and batched by seeded permutations.

Holding the data as one tensor avoids DataLoader worker overhead for the small datasets of the paper
and makes the data order a pure function of ``(seed, epoch)``, which is what exact resume needs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.atomic import atomic_write_npy, atomic_write_text
from flowood.data import load_dataset
from flowood.errors import ConfigError
from flowood.train.config import VECTOR_TRANSFORMS, DataConfig

#: Eigenvalue floor of PCA whitening, in units of the mean variance of the features it whitens (for standardised
#: features, whose mean variance is 1: in units of one standardised feature's variance).
WHITEN_EPS = 1e-3


@dataclass
class Standardizer:
    """Vector preprocessing fitted on the in-distribution training split, applied to every split and OOD set.

    ``x (N, D_in) -> z (N, D_out)``, in this order:

    1. ``transform``: ``"none"``, ``"log"`` (``log(max(x, 0) + log_offset)``, elementwise; for non-negative,
       heavy-tailed features such as pooled ReLU activations of a CNN) or ``"l2"`` (each vector divided by its
       Euclidean norm, ``x / max(||x||_2, 1e-12)``: only the direction of a feature vector is kept, as
       cosine-similarity detectors do; its norm, which varies with image contrast and size, is dropped. The
       vectors then lie on a sphere, so use it with ``pca_dim`` < D, which drops the null direction);
    2. ``keep``: drop (near-)constant features (training std ``<= 1e-6 · max(1, median std)``), whose
       standardised values would otherwise be unbounded and whose zero training variance lets the flow's
       log-det grow without limit;
    3. ``(x - mean) / std`` per kept feature (training mean and std, ddof 1). With ``"l2"`` the mean is
       subtracted but ``std`` is 1: dividing each feature by its own spread would distort the angles between
       vectors, which are all that ``"l2"`` keeps (measured in docs/scores.md: on EfficientNet features of
       FashionMNIST it costs a Gaussian 0.07 AUROC against MNIST);
    4. optional PCA whitening ``z @ projection`` with ``projection (D_kept, k) = V_k / sqrt(λ_k + ε·λ̄)``
       (eigenvectors of the training covariance of step 3's output, largest first; ``k`` = ``pca_dim``, or
       all ``D_kept`` components with ``whiten``; ``λ̄`` the mean eigenvalue, 1 for standardised features).
       The floor ``ε = 1e-3`` bounds the amplification of near-null directions to ~32×.

    All statistics come from the in-distribution training split only, so OOD sets are scored in the
    coordinates of the training distribution. The flow's density is that of ``z``: the transform's
    Jacobian is not added (constant for the linear steps, so scores rank the same as raw-space densities
    without ``"log"``).
    """

    mean: Tensor
    std: Tensor
    keep: Tensor | None = None
    projection: Tensor | None = None
    transform: str = "none"
    log_offset: float = 0.01
    in_dim: int | None = None

    TRANSFORMS = VECTOR_TRANSFORMS

    @classmethod
    def fit(
        cls,
        x: Tensor,
        *,
        transform: str = "none",
        log_offset: float = 0.01,
        drop_constant: bool = False,
        pca_dim: int | None = None,
        whiten: bool = False,
    ) -> Standardizer:
        """Fit on training vectors ``x (N, D)``; see the class docstring for the steps."""
        if transform not in cls.TRANSFORMS:
            raise ConfigError(f"data.transform: {transform!r} is not one of {', '.join(cls.TRANSFORMS)}")
        if x.ndim != 2 or x.shape[0] < 2:
            raise ConfigError(f"standardisation needs at least 2 training vectors (N, D), got {tuple(x.shape)}")
        xd = _transform(x.double(), transform, log_offset)
        std = xd.std(0)
        keep: Tensor | None = None
        if drop_constant:
            thresh = 1e-6 * max(1.0, float(std.median()))
            mask = std > thresh
            if not bool(mask.any()):
                raise ConfigError("data.drop_constant: every feature is constant on the training split")
            if not bool(mask.all()):
                keep = torch.nonzero(mask).flatten()
                xd, std = xd[:, keep], std[keep]
        mean, std = xd.mean(0), std.clamp_min(1e-6)
        if transform == "l2":
            std = torch.ones_like(std)
        projection: Tensor | None = None
        if pca_dim is not None or whiten:
            d = xd.shape[1]
            pca_dim = d if pca_dim is None else pca_dim
            if not 1 <= pca_dim <= d:
                raise ConfigError(f"data.pca_dim must be in [1, {d}] (the number of usable features), got {pca_dim}")
            z = (xd - mean) / std
            cov = z.T @ z / (z.shape[0] - 1)
            evals, evecs = torch.linalg.eigh(cov)
            order = torch.argsort(evals, descending=True)[:pca_dim]
            floor = WHITEN_EPS * float(evals.clamp_min(0).mean())
            projection = (evecs[:, order] / (evals[order].clamp_min(0) + floor).sqrt()).float()
        return cls(mean.float(), std.float(), keep, projection, transform, float(log_offset), int(x.shape[1]))

    @classmethod
    def from_config(cls, cfg: DataConfig, x: Tensor) -> Standardizer:
        """Fit with the options of a run's ``data`` section."""
        return cls.fit(
            x,
            transform=cfg.transform,
            log_offset=cfg.log_offset,
            drop_constant=cfg.drop_constant,
            pca_dim=cfg.pca_dim,
            whiten=cfg.whiten,
        )

    @property
    def out_dim(self) -> int:
        """Dimension of the standardised vectors (what the flow models)."""
        if self.projection is not None:
            return int(self.projection.shape[1])
        return int(self.mean.shape[0])

    def __call__(self, x: Tensor) -> Tensor:
        """``x (B, D_in)`` float -> ``z (B, D_out)`` float32 on ``x``'s device."""
        x = _transform(x.float(), self.transform, self.log_offset)
        if self.keep is not None:
            x = x.index_select(1, self.keep.to(x.device))
        z = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.projection is not None:
            z = z @ self.projection.to(x.device)
        return z

    def save(self, path: Path) -> None:
        """``standardize.json`` (plus ``<stem>_projection.npy`` with PCA)."""
        path = Path(path)
        d: dict[str, object] = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.transform != "none":
            d.update(transform=self.transform, log_offset=self.log_offset)
        if self.keep is not None:
            d["keep"] = self.keep.tolist()
        if self.in_dim is not None:
            d["in_dim"] = self.in_dim
        if self.projection is not None:
            proj_file = path.with_name(f"{path.stem}_projection.npy")
            atomic_write_npy(proj_file, self.projection.numpy())
            d["projection"] = proj_file.name
        atomic_write_text(path, json.dumps(d))

    @classmethod
    def load(cls, path: Path) -> Standardizer:
        path = Path(path)
        d = json.loads(path.read_text())
        keep = torch.tensor(d["keep"], dtype=torch.int64) if "keep" in d else None
        proj = torch.from_numpy(np.load(path.with_name(d["projection"]))) if "projection" in d else None
        return cls(
            torch.tensor(d["mean"]),
            torch.tensor(d["std"]),
            keep,
            proj,
            d.get("transform", "none"),
            float(d.get("log_offset", 0.01)),
            d.get("in_dim"),
        )


def _transform(x: Tensor, transform: str, log_offset: float) -> Tensor:
    if transform == "log":
        return torch.log(x.clamp_min(0) + log_offset)
    if transform == "l2":
        return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)
    return x


#: Largest share of the GPU's free memory a dataset may take to be held on the GPU.
MAX_DEVICE_FRACTION = 0.5


def fits_on_device(nbytes: int, device: torch.device, max_fraction: float = MAX_DEVICE_FRACTION) -> bool:
    """Whether ``nbytes`` of data should live on ``device``: always on the CPU; on CUDA when it takes at most
    ``max_fraction`` of the free memory (the rest is for the model, activations and the optimiser)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= max_fraction * free


class TensorBatches:
    """Mini-batches of a dataset stored as a single tensor.

    Images stay uint8 and are converted to floats in ``[0, 1]`` per batch; vectors are float32 (already
    standardised). The tensor is held on ``device`` when it fits (:func:`fits_on_device`), so batches
    are gathered without host→device copies; a dataset too large for the GPU stays in host memory and each
    gathered batch is pinned and copied asynchronously (pinning the whole set up front would cost seconds
    of start-up and page-locked memory for no gain: a gathered batch is a new tensor anyway).
    """

    def __init__(self, data: Tensor, kind: str, device: torch.device) -> None:
        self.kind = kind
        self.device = device
        self.on_device = fits_on_device(data.nbytes, device)
        self.data = data.to(device) if self.on_device else data.cpu()

    def __len__(self) -> int:
        return self.data.shape[0]

    def _convert(self, batch: Tensor) -> Tensor:
        if not self.on_device:
            if torch.cuda.is_available():
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
        return batch.float() / 255.0 if self.kind == "image" else batch.float()

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch(
        self, batch_size: int, seed: int, epoch: int, skip: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Tensor]:
        """Shuffled batches for ``epoch`` (a pure function of ``seed`` and ``epoch``), skipping ``skip``.

        ``batch_size`` is the global batch; with ``shard=(rank, world_size)`` this process yields slice
        ``rank`` of each global batch (``batch_size / world_size`` samples), so shards are disjoint.
        """
        rank, world = shard
        local = batch_size // world
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(self), generator=gen).to(self.data.device)
        for b in range(skip, self.num_batches(batch_size)):
            start = b * batch_size + rank * local
            yield self._convert(self.data[order[start : start + local]])

    def random_batch(self, batch_size: int, generator: torch.Generator, shard: tuple[int, int] = (0, 1)) -> Tensor:
        """A batch drawn uniformly with replacement (OOD batches of negative training); with ``shard``,
        this rank's slice of the global batch."""
        rank, world = shard
        local = batch_size // world
        idx = torch.randint(len(self), (batch_size,), generator=generator)[rank * local : (rank + 1) * local]
        return self._convert(self.data[idx.to(self.data.device)])

    def sequential(self, batch_size: int) -> Iterator[Tensor]:
        for start in range(0, len(self), batch_size):
            yield self._convert(self.data[start : start + batch_size])

    def first(self, n: int) -> Tensor:
        return self._convert(self.data[:n])


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
    (grey↔RGB and resize for OOD image sets scored by a model trained at another shape). ``cfg.options``
    (dataset options such as ``in_class``) apply when the dataset is ``cfg.dataset`` itself. What loading
    converted is said on stderr (``note: NAME (SPLIT): ...``): a set scored at another shape than its own is
    never silent."""
    kwargs: dict[str, Any] = {}
    if like_shape is not None and len(like_shape) == 3:
        kwargs = {"channels": like_shape[0], "size": like_shape[1]}
    if name is None or name == cfg.dataset:
        kwargs.update(cfg.options)  # dataset options (e.g. in_class=1) apply to the in-distribution dataset
    ds = load_dataset(name or cfg.dataset, split, root=cfg.root, limit=limit, classes=classes, seed=seed, **kwargs)
    if (note := ds.conversion_note()) is not None:
        print(note, file=sys.stderr)
    return ds


def split_validation(data: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Hold out ``round(fraction · N)`` (at least 1) samples of ``data (N, ...)`` for validation.

    Returns ``(train, val)``, a seeded random partition (``seed``) with both parts in their original order,
    so the split is the same on every run and every resume of a run.
    """
    n = data.shape[0]
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ConfigError(
            f"train.early_stopping.val_fraction={fraction:g} leaves no training samples out of {n}; lower it"
        )
    gen = torch.Generator().manual_seed(seed * 100_003 + 7919)
    held = torch.zeros(n, dtype=torch.bool)
    held[torch.randperm(n, generator=gen)[:n_val]] = True
    return data[~held], data[held]
