"""A feature extractor learnt from the in-distribution training split itself (``aux.features.extractor=learned``).

A small CNN (three blocks of two 3×3 convolutions with batch norm and ReLU, max-pooled; global average pool; a
linear head) is trained for a fixed number of optimiser steps on the run's own training images:

* ``classify``: cross-entropy on the class labels (supervised; the run must have at least two labels), as the
  classifiers of deep kNN (Sun et al. 2022) and Mahalanobis (Lee et al. 2018) are;
* ``rotation``: each image rotated by 0, 90, 180 or 270 degrees and the rotation predicted (self-supervised,
  Gidaris et al. 2018; the auxiliary task CSI and related label-free detectors build on).

The features are the pooled ``4 × width`` activations before the head (after ReLU), of the network in eval mode,
wrapped as a :class:`~flowood.features.extractors.FeatureExtractor` so that batching and the content cache of
:func:`~flowood.features.extract_features` apply unchanged. Inputs are preprocessed exactly as a pretrained
extractor preprocesses them at the images' own size: ``uint8 / 255``, grey repeated to 3 channels,
``(x - 0.5) / 0.5``; no resize. Everything here is a pure function of the images, labels, settings and seed
(one thread on the CPU gives the same network on every run); saving and reuse are the experiments layer's
(:mod:`flowood.experiments.learned_features`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.errors import ConfigError
from flowood.features.extractors import HALF, ExtractorSpec, FeatureExtractor
from flowood.features.settings import LEARNED, LearnedSettings

ROTATIONS = 4
"""Classes of the rotation task: 0, 90, 180, 270 degrees."""


def resolve_objective(settings: LearnedSettings, labels: np.ndarray) -> str:
    """``classify`` or ``rotation``: ``auto`` is ``classify`` when ``labels`` hold at least two distinct classes.

    Raises:
        ConfigError: ``classify`` asked for on unlabelled (or single-class) training data.
    """
    classes = np.unique(labels[labels >= 0])
    if settings.objective == "classify" and classes.size < 2:
        raise ConfigError(
            "aux.features.learned.objective=classify needs a training split with at least two labels; this run's "
            f"has {classes.size}: use objective=rotation (self-supervised) or auto"
        )
    if settings.objective == "auto":
        return "classify" if classes.size >= 2 else "rotation"
    return settings.objective


def to_input(images: Tensor) -> Tensor:
    """``uint8 (N, C, H, W)`` → the network input ``float32 (N, 3, H, W)``: ``/255``, grey to RGB, ``(x-0.5)/0.5``
    (what :meth:`FeatureExtractor.preprocess` does at the images' own size)."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - 0.5) / 0.5


class Trunk(nn.Module):
    """``(N, 3, H, W)`` → pooled features ``(N, 4 · width)`` (ReLU activations, global average pool)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in (width, 2 * width, 4 * width):
            for k in range(2):
                layers += [nn.Conv2d(c_in if k == 0 else c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            c_in = c
        self.net = nn.Sequential(*layers[:-1])  # no pooling after the last block: the global average pools
        self.feature_dim = 4 * width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).mean((2, 3))


@dataclass(frozen=True)
class TrainedCNN:
    """What :func:`train_cnn` returns: the weights and what the training measured.

    Attributes:
        state: the state dict of ``{"trunk": Trunk, "head": Linear}`` as one flat mapping (``trunk.…``, ``head.…``).
        objective: ``classify`` or ``rotation``.
        num_outputs: classes of the head (the label count, or :data:`ROTATIONS`).
        metrics: ``steps``, ``final_loss`` (mean of the last 50 steps, nats), ``val_accuracy`` (on the held-out
            images, the objective's own task), ``seconds`` (wall), ``cpu_seconds`` (this process).
    """

    state: dict[str, Tensor]
    objective: str
    num_outputs: int
    metrics: dict[str, float]


def _task(objective: str, images: Tensor, labels: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The batch's inputs and targets: the class, or a random rotation of each image and its index."""
    if objective == "classify":
        return to_input(images), labels
    k = torch.randint(0, ROTATIONS, (images.shape[0],), generator=gen)
    rotated = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(images, k, strict=True)])
    return to_input(rotated), k


def _class_index(labels: np.ndarray) -> tuple[Tensor, int]:
    """Labels as indices ``0..K-1`` of the sorted distinct classes (a run holding out class 3 has no index gap)."""
    classes = np.unique(labels)
    return torch.from_numpy(np.searchsorted(classes, labels).astype(np.int64)), int(classes.size)


def train_cnn(
    images: Tensor,
    labels: np.ndarray,
    settings: LearnedSettings,
    *,
    seed: int,
    val: tuple[Tensor, np.ndarray] | None = None,
) -> TrainedCNN:
    """Train the extractor's CNN for ``settings.steps`` optimiser steps (Adam, batches of seeded permutations).

    Args:
        images: ``uint8 (N, C, H, W)`` training images (C = 1 or 3; H, W ≥ 8).
        labels: ``(N,)`` int labels (``-1`` unlabelled), used by ``classify``.
        settings: the budget and the network's width.
        seed: seeds the initialisation, the batch order and the rotations.
        val: held-out ``(images, labels)`` on which the objective's accuracy is measured (not trained on).

    Raises:
        ConfigError: fewer images than one batch, images smaller than 8 pixels, or ``classify`` without labels.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"the learned extractor takes uint8 images (N, 1|3, H, W), got {tuple(images.shape)}")
    if min(images.shape[2:]) < 8:
        raise ConfigError(f"the learned extractor needs images of at least 8x8 pixels, got {tuple(images.shape[2:])}")
    if images.shape[0] < settings.batch_size:
        raise ConfigError(
            f"aux.features.learned.batch_size={settings.batch_size} exceeds the {images.shape[0]} training images"
        )
    objective = resolve_objective(settings, labels)
    if objective == "rotation" and images.shape[2] != images.shape[3]:
        raise ConfigError(f"the rotation objective needs square images, got {tuple(images.shape[2:])}")
    targets, num_outputs = _class_index(labels) if objective == "classify" else (torch.zeros(0), ROTATIONS)
    torch.manual_seed(seed)
    trunk = Trunk(settings.width)
    head = nn.Linear(trunk.feature_dim, num_outputs)
    model = nn.Sequential(trunk, head).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    gen = torch.Generator().manual_seed(seed * 100_003 + 17)
    start, cpu = time.perf_counter(), time.process_time()
    losses: list[float] = []
    order = torch.randperm(images.shape[0], generator=gen)
    pos = 0
    for _ in range(settings.steps):
        if pos + settings.batch_size > order.numel():
            order, pos = torch.randperm(images.shape[0], generator=gen), 0
        idx = order[pos : pos + settings.batch_size]
        pos += settings.batch_size
        x, y = _task(objective, images[idx], targets[idx] if objective == "classify" else targets, gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    metrics = {
        "steps": float(settings.steps),
        "final_loss": float(np.mean(losses[-50:])),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }
    if val is not None and len(val[0]):
        metrics["val_accuracy"] = _accuracy(model, objective, val, labels, seed)
    state = {f"trunk.{k}": v for k, v in trunk.state_dict().items()}
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    return TrainedCNN(state, objective, num_outputs, metrics)


@torch.no_grad()
def _accuracy(
    model: nn.Module, objective: str, val: tuple[Tensor, np.ndarray], train_labels: np.ndarray, seed: int
) -> float:
    images, labels = val
    if objective == "classify":
        classes = np.unique(train_labels)
        known = np.isin(labels, classes)  # a class the network never saw cannot be predicted
        images, labels = images[torch.from_numpy(known)], labels[known]
        targets = torch.from_numpy(np.searchsorted(classes, labels).astype(np.int64))
    else:
        targets = torch.zeros(0)
    gen = torch.Generator().manual_seed(seed + 1)
    correct = 0
    for s in range(0, images.shape[0], 512):
        x, y = _task(objective, images[s : s + 512], targets[s : s + 512] if objective == "classify" else targets, gen)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, images.shape[0])


def extractor_from_state(
    state: dict[str, Tensor], settings: LearnedSettings, size: int, weights_id: str
) -> FeatureExtractor:
    """The trained trunk as a frozen :class:`FeatureExtractor` at the images' own ``size`` (``name`` ``learned``;
    ``weights_id``, e.g. the weights file's SHA-256, keys the feature cache)."""
    trunk = Trunk(settings.width)
    trunk.load_state_dict({k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")})
    spec = ExtractorSpec(LEARNED, LEARNED, trunk.feature_dim, size, "small CNN learnt from the run's training split")
    return FeatureExtractor(spec, trunk, size=size, mean=HALF, std=HALF, weights_id=weights_id)
