"""Typicality: of the likelihood (Nalisnick et al. 2019; batches of M and M = 1) and of the latent z
under the base distribution (the χ² typical set of ``||z||²``, per scale and combined)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowood.errors import ConfigError
from flowood.ood.detectors.base import Detector, DetectorInfo, FitContext, Samples
from flowood.ood.detectors.flowstats import FlowStatistics
from flowood.ood.detectors.shared import FlowPass
from flowood.settings import check, setting


def typicality_batches(n: int, batch_size: int, num_batches: int, seed: int) -> np.ndarray:
    """Index batches for the typicality test: ``num_batches`` rows of ``batch_size`` distinct indices in
    ``range(n)`` (each row drawn without replacement, rows independent; seeded, so fixed across runs).

    Returns:
        int64 ``(num_batches, batch_size)``.
    """
    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"typicality needs batch_size >= 1 and num_batches >= 1, got {batch_size}, {num_batches}")
    if n < batch_size:
        raise ValueError(f"typicality batches of M={batch_size} need at least M samples, got {n}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n, size=batch_size, replace=False) for _ in range(num_batches)]).astype(np.int64)


def typicality_scores(nll: np.ndarray, train_mean_nll: float, batches: np.ndarray) -> np.ndarray:
    """Per-batch score ``-|mean(nll[batch]) - train_mean_nll|`` (higher = more typical = in-distribution).

    ``nll`` is any per-sample negative log-likelihood unit (nats or bits/dim) matching ``train_mean_nll``.
    Non-finite NLLs make their batch's score ``-inf`` (maximally atypical)."""
    v = np.asarray(nll, dtype=np.float64)
    means = v[np.asarray(batches)].mean(axis=1)
    out = -np.abs(means - float(train_mean_nll))
    out[~np.isfinite(out)] = -np.inf
    return out


def _set_seed(key: str) -> int:
    """A batch seed fixed by the set's report key (the same batches on every evaluation)."""
    return 4242 + zlib.crc32(key.encode()) % 100_000


@dataclass(frozen=True)
class TypicalityM1Settings:
    """Settings of ``typicality_m1``: the training samples of the mean-NLL estimate."""

    train_limit: int | None = setting(2000, ge=1, doc="training samples of the mean NLL (null: all)")

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class TypicalitySettings:
    """Settings of ``typicality``: the batch size M, the number of batches, the mean-NLL estimate."""

    m: int = setting(10, ge=1, doc="M, samples per batch")
    batches: int = setting(200, ge=1, doc="batches drawn per set")
    train_limit: int | None = setting(2000, ge=1, doc="training samples of the mean NLL (null: all)")

    def __post_init__(self) -> None:
        check(self)


class _TrainNLL(Detector):
    """Shared fit: the mean bits/dim (NLL) of the run's training data."""

    settings: TypicalitySettings | TypicalityM1Settings

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.train_mean = float("nan")
        self.train_samples = 0

    def fit(self, context: FitContext) -> None:
        train = context.train_samples(self.settings.train_limit)
        nll = np.asarray(train.bpd, dtype=np.float64)
        finite = nll[np.isfinite(nll)]
        if finite.size == 0:
            raise ConfigError(f"{self.info.name}: every training sample has a non-finite likelihood")
        self.train_mean = float(finite.mean())
        self.train_samples = int(nll.size)
        self.fitted = True

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), "train_mean_bits_per_dim": self.train_mean, "train_samples": self.train_samples}


class Typicality(_TrainNLL):
    """The batch test of Nalisnick et al. 2019: one score per batch of M samples."""

    info = DetectorInfo(
        "typicality",
        "typicality test on batches of M samples: |mean NLL of the batch - mean NLL of the training data|",
        "larger distance = more OOD; returned negated; one score per BATCH, not per sample",
        "bits/dim",
        "one scoring pass over (a subset of) the training split to estimate the training NLL",
        "Nalisnick et al. 2019, Detecting Out-of-Distribution Inputs to Deep Generative Models Using Typicality",
        per_batch=True,
    )
    Settings = TypicalitySettings
    settings: TypicalitySettings

    def check(self, context: FitContext, sets: Sequence[Samples]) -> None:
        super().check(context, sets)
        m = self.settings.m
        for samples in sets:
            if len(samples) < m:
                raise ConfigError(
                    f"typicality: {samples.key} has {len(samples)} samples, fewer than M={m}; lower --typicality-m"
                )

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        m = self.settings.m
        if len(samples) < m:
            raise ConfigError(
                f"typicality: {samples.key} has {len(samples)} samples, fewer than M={m}; lower --typicality-m"
            )
        batches = typicality_batches(len(samples), m, self.settings.batches, _set_seed(samples.key))
        return typicality_scores(samples.bpd, self.train_mean, batches)

    def facts(self) -> dict[str, Any]:
        return {
            **super().facts(),
            "M": self.settings.m,
            "num_batches": self.settings.batches,
            "batches": "each set (in-distribution test set and every OOD set): num_batches random batches of M "
            "distinct samples (fixed seeds); one score per batch; metrics compare in-distribution batches "
            "with OOD batches",
        }


class TypicalityM1(_TrainNLL):
    """The same test with M = 1: per sample, ``-|NLL(x) - mean train NLL|``."""

    info = DetectorInfo(
        "typicality_m1",
        "typicality test with M = 1 (per sample): |NLL(x) - mean NLL of the training data|",
        "larger distance = more OOD (too likely as well as too unlikely); returned negated",
        "bits/dim",
        "one scoring pass over (a subset of) the training split (shared with typicality's estimate)",
        "Nalisnick et al. 2019 (M = 1)",
    )
    Settings = TypicalityM1Settings
    settings: TypicalityM1Settings

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        return typicality_scores(samples.bpd, self.train_mean, np.arange(len(samples))[:, None])


def latent_typicality_scores(stats: FlowStatistics) -> tuple[np.ndarray, np.ndarray]:
    """``(combined (N,), per-scale (N, S))`` latent typicality scores (higher = more typical).

    Under the base, ``||z_i||^2 ~ χ²(D_i)`` with mean ``D_i`` and standard deviation ``sqrt(2 D_i)``; the
    standardised deviation is ``t_i = (||z_i||^2 - D_i) / sqrt(2 D_i)``. Per scale the score is ``-|t_i|``,
    combined it is ``-sum_i t_i^2`` (a sum of squared standard scores, like a χ² statistic)."""
    d = stats.scale_dims[None, :]
    t = (stats.scale_sq_norm - d) / np.sqrt(2.0 * d)
    return -(t**2).sum(axis=1), -np.abs(t)


class LatentTypicality(Detector):
    """Is ``z = f(x)`` in the base distribution's typical set? ``||z||^2`` against χ²(D), per scale."""

    info = DetectorInfo(
        "latent_typicality",
        "||z_i||^2 of each scale's latent piece against the chi-square(D_i) typical set of the standard normal "
        "base: t_i = (||z_i||^2 - D_i)/sqrt(2 D_i); combined over scales",
        "larger |t| = more OOD; returned as -sum_i t_i^2 (per scale: -|t_i|, reported as components)",
        "squared standard scores (dimensionless)",
        "one extra pass per sample (shared with dose and per_scale); no fit beyond the flow",
        "Choi et al. 2018 and Nalisnick et al. 2019 (typical sets of the base); per scale as in "
        "Schirrmeister et al. 2020",
    )

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.flow_pass: FlowPass | None = None

    def fit(self, context: FitContext) -> None:
        self.flow_pass = FlowPass.of(context)
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.flow_pass is not None
        return latent_typicality_scores(self.flow_pass(samples))[0]

    def components(self, samples: Samples) -> dict[str, np.ndarray]:
        assert self.flow_pass is not None
        per_scale = latent_typicality_scores(self.flow_pass(samples))[1]
        return {f"scale_{i}": per_scale[:, i] for i in range(per_scale.shape[1])}
