"""Fakes for detector tests: a :class:`~flowood.ood.detectors.FitContext` with chosen training samples, features
and auxiliary models of known log-likelihood, and sets of images made from chosen latents of a flow whose couplings
are the identity at initialisation (so ``z`` is the logit-space image)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.flows import build_flow
from flowood.ood import detection_metrics
from flowood.ood.detectors import Samples, flow_statistics

SHAPE = (1, 8, 8)
D = 64
LN2 = math.log(2.0)


def auroc(det: Any, in_s: Samples, ood_s: Samples) -> float:
    """AUROC of a fitted detector with ``in_s`` as the positive class."""
    return detection_metrics(det.score(in_s), det.score(ood_s))["auroc"]


@dataclass
class KnownFlow:
    """An auxiliary model with a known log-likelihood in nats: ``nats_by_key[samples.key]``."""

    nats_by_key: dict[str, np.ndarray]

    @property
    def directory(self) -> Path:
        return Path("known")

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        return np.asarray(self.nats_by_key[samples.key], dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"dir": "known"}


@dataclass
class FakeContext:
    """A :class:`~flowood.ood.detectors.FitContext` with chosen training samples, features and auxiliary models;
    it records what a detector asked for."""

    flow: Any = None
    train: Samples | None = None
    background: KnownFlow | None = None
    members: list[KnownFlow] = field(default_factory=list)
    general: KnownFlow | None = None
    embedding: KnownFlow | None = None
    feats: dict[str, np.ndarray] = field(default_factory=dict)
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    calibration: Samples | None = None
    configured: dict[str, Any] = field(default_factory=dict)
    num_dims: int = D
    is_image: bool = True
    in_dataset: str = "in"
    evaluated: list[str] = field(default_factory=lambda: ["ood"])
    batch_size: int = 64
    input_transform: Any = None
    asked: list[Any] = field(default_factory=list)

    def train_samples(self, limit: int | None) -> Samples:
        assert self.train is not None
        return self.train

    def background_flow(self, mutation_rate: float, copies: int) -> KnownFlow:
        self.asked.append(("background", mutation_rate, copies))
        assert self.background is not None
        return self.background

    def ensemble_member(self, index: int) -> KnownFlow:
        self.asked.append(("member", index))
        return self.members[index]

    def general_flow(self, dataset: str) -> KnownFlow:
        self.asked.append(("general", dataset))
        assert self.general is not None
        return self.general

    def embedding_flow(self) -> KnownFlow:
        assert self.embedding is not None
        return self.embedding

    def features(self, samples: Samples | None) -> np.ndarray:
        return self.feats["train" if samples is None else samples.key]

    def feature_labels(self) -> np.ndarray | None:
        return self.labels

    def feature_coordinates(self, samples: Samples | None) -> np.ndarray:
        """``coords`` when given, else the features themselves (an identity transform)."""
        key = "train" if samples is None else samples.key
        return (self.coords or self.feats)[key]

    def calibration_samples(self, limit: int | None) -> Samples:
        self.asked.append(("calibration", limit))
        assert self.calibration is not None
        return self.calibration

    def detector(self, name: str, *, fit: bool = True) -> Any:
        from flowood.ood.detectors import get_detector

        det = self.configured.setdefault(name, get_detector(name))
        if fit and not det.fitted:
            det.fit(self)
        return det

    def describe_features(self) -> dict[str, Any]:
        return {"extractor": "known", "size": 8, "train_limit": None}

    def log(self, message: str) -> None:
        pass


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def near(mean: float, n: int = 200, sd: float = 0.05, seed: int = 0) -> np.ndarray:
    return mean + sd * rng(seed).standard_normal(n)


def samples(key: str, bpd: np.ndarray, data: torch.Tensor | None = None) -> Samples:
    bpd = np.asarray(bpd, dtype=np.float64)
    if data is None:
        data = torch.zeros((len(bpd), *SHAPE), dtype=torch.uint8)
    return Samples(key, data, "image", bpd, noise_seed=3)


def identity_flow():
    """A 2-scale RealNVP whose couplings are the identity at initialisation: z is the logit-space image."""
    torch.manual_seed(0)
    return build_flow("realnvp", SHAPE, num_scales=2, num_blocks=1, mid_channels=4).eval()


def images_from_latent(z: torch.Tensor, alpha: float = 0.9) -> torch.Tensor:
    """8-bit images whose preprocessed (logit-space) value is ``z`` (up to quantisation)."""
    x = (torch.sigmoid(z) - (1 - alpha) / 2) / alpha
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def latent_set(key: str, z: torch.Tensor, flow: Any) -> Samples:
    data = images_from_latent(z)
    st = flow_statistics(flow, data, kind="image", seed=3)
    return Samples(key, data, "image", -st.log_likelihood / (D * LN2), noise_seed=3)


def finest_mask(flow: Any) -> torch.Tensor:
    idx = torch.arange(D, dtype=torch.float32).reshape(1, *SHAPE)
    mask = torch.zeros(D, dtype=torch.bool)
    mask[flow.split_latent(idx)[0].reshape(-1).long()] = True
    return mask.reshape(1, *SHAPE)
