"""WAIC over an ensemble of independently trained flows (Choi et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowood.ood.detectors.base import AuxFlow, Detector, DetectorInfo, FitContext, Samples
from flowood.settings import check, setting


def waic(log_probs: np.ndarray) -> np.ndarray:
    """WAIC per sample from ``(K, N)`` member log-likelihoods: ``mean_k - var_k`` (population variance, ddof 0).

    Needs K >= 2 for a variance term; with K = 1 it is the member's log-likelihood. Higher = in-distribution.
    The log-likelihoods must be in nats (or any positive multiple of log p): on bits/dim the sign of the mean
    term flips."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] < 1:
        raise ValueError(f"waic expects (K, N) member log-likelihoods, got shape {lp.shape}")
    return lp.mean(axis=0) - lp.var(axis=0)


@dataclass(frozen=True)
class WAICSettings:
    """Settings of ``waic``."""

    ensemble_size: int = setting(3, ge=2, doc="K, the number of flows (the variance term needs K >= 2)")

    def __post_init__(self) -> None:
        check(self)


class WAIC(Detector):
    info = DetectorInfo(
        "waic",
        "WAIC = mean_k log p_k(x) - var_k log p_k(x) over K independently trained flows",
        "higher WAIC = more in-distribution (high likelihood that the members agree on); returned as is",
        "nats (mean - population variance over members)",
        "trains K flows (cached in RUN/ensemble/), K forward passes per sample",
        "Choi et al. 2018, WAIC, but Why? Generative Ensembles for Robust Anomaly Detection",
        auxiliary=("ensemble",),
    )
    Settings = WAICSettings
    settings: WAICSettings

    def __init__(self, settings: WAICSettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.members: list[AuxFlow] = []

    def fit(self, context: FitContext) -> None:
        self.members = [context.ensemble_member(i) for i in range(self.settings.ensemble_size)]
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        return waic(np.stack([m.log_likelihood(samples) for m in self.members]))

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), "members": [str(m.directory) for m in self.members]}
