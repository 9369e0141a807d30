"""Density of States Estimation (Morningstar et al. 2021): a density on the flow's summary statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from flowood.errors import ConfigError
from flowood.ood.detectors.base import Detector, DetectorInfo, FitContext, Samples
from flowood.ood.detectors.flowstats import FlowStatistics
from flowood.ood.detectors.shared import FlowPass
from flowood.settings import check, setting

BANDWIDTHS = tuple(float(b) for b in np.logspace(-1.3, 0.7, 13))
"""Candidate KDE bandwidths on the standardised statistics (unit variance per statistic)."""

DOSE_ESTIMATORS = ("kde", "ocsvm")
"""The densities DoSE can fit to the statistics: Gaussian KDE or one-class SVM."""


def dose_statistics(stats: FlowStatistics) -> np.ndarray:
    """``(N, 2 + 2S)`` statistics per sample: base log-density of z, total log-det (flow + preprocessing),
    each scale's bits/dim contribution, each scale's ``||z_i||^2``."""
    return np.column_stack(
        [
            stats.base_log_density,
            stats.flow_logdet + stats.preprocess_logdet,
            stats.scale_bits_per_dim(),
            stats.scale_sq_norm,
        ]
    )


@dataclass(frozen=True)
class DoSESettings:
    """Settings of ``dose``: the training statistics and the density fitted to them."""

    train_limit: int | None = setting(2000, ge=1, doc="training samples whose statistics are fitted (null: all)")
    estimator: str = setting("kde", choices=DOSE_ESTIMATORS, doc="Gaussian KDE or one-class SVM")
    cv_folds: int = setting(5, ge=2, doc="cross-validation folds of the KDE bandwidth")

    def __post_init__(self) -> None:
        check(self)


class DoSE(Detector):
    """KDE (cross-validated bandwidth) or one-class SVM on the statistics of the **training** set."""

    info = DetectorInfo(
        "dose",
        "density of the flow's per-sample statistics (log N(z), log-det, per-scale bits/dim and ||z_i||^2) "
        "estimated on the training set's statistics (KDE, cross-validated bandwidth; or a one-class SVM)",
        "higher density of states = more in-distribution; returned as is",
        "log-density of the standardised statistics (KDE) or the SVM decision value",
        "one pass over dose_train_limit training samples + the KDE fit (fit); one extra pass per sample "
        "(shared with per_scale and latent_typicality)",
        "Morningstar et al. 2021, Density of States Estimation for Out-of-Distribution Detection (AISTATS)",
    )
    Settings = DoSESettings
    settings: DoSESettings

    def __init__(self, settings: DoSESettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.flow_pass: FlowPass | None = None
        self.scaler: StandardScaler | None = None
        self.model: KernelDensity | OneClassSVM | None = None
        self.bandwidth: float | None = None
        self.train_count = 0

    def fit(self, context: FitContext) -> None:
        self.flow_pass = FlowPass.of(context)
        train = context.train_samples(self.settings.train_limit)
        stats = dose_statistics(self.flow_pass(train))
        stats = stats[np.isfinite(stats).all(axis=1)]
        folds = self.settings.cv_folds
        if len(stats) < max(2 * folds, 10):
            raise ConfigError(f"dose needs at least {max(2 * folds, 10)} training samples with finite statistics")
        self.scaler = StandardScaler().fit(stats)
        x = self.scaler.transform(stats)
        if self.settings.estimator == "kde":
            search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": list(BANDWIDTHS)}, cv=folds)
            search.fit(x)
            self.model = search.best_estimator_
            self.bandwidth = float(search.best_params_["bandwidth"])
        else:
            self.model = OneClassSVM(kernel="rbf", gamma="scale", nu=0.05).fit(x)
        self.train_count = len(stats)
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.flow_pass is not None and self.scaler is not None and self.model is not None
        stats = dose_statistics(self.flow_pass(samples))
        ok = np.isfinite(stats).all(axis=1)
        out = np.full(len(stats), -np.inf)
        if ok.any():
            x = self.scaler.transform(stats[ok])
            if isinstance(self.model, KernelDensity):
                out[ok] = self.model.score_samples(x)
            else:
                out[ok] = self.model.decision_function(x)
        return out

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), "bandwidth": self.bandwidth, "train_samples": self.train_count}
