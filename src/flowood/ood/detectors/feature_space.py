"""Detectors on the evaluation's CNN features without a flow: deep k-nearest neighbours (Sun et al. 2022) and the
Mahalanobis distance to class means with a shared covariance (Lee et al. 2018).

Both read the evaluation's one feature pipeline (:meth:`FitContext.features`): the same extractor (pretrained, or
learnt from the run's training split), input size and reference images as ``embedding_likelihood``, so a table
that lists them beside the embedding flow compares estimators on identical features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowood.errors import ConfigError
from flowood.ood.detectors.base import Detector, DetectorInfo, FitContext, Samples
from flowood.settings import check, setting

KNN_SPACES = ("unit", "flow")
"""Where ``knn`` measures distance: unit-norm raw features (Sun et al.), or the embedding flow's coordinates."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``(N, F)`` rows divided by their Euclidean norm (float32; a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_neighbour_distance(reference: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """``(M,)`` Euclidean distance from each query row to its ``k``-th nearest reference row (``k`` ≥ 1).

    Args:
        reference: ``(N, F)`` reference points, ``N ≥ k``.
        queries: ``(M, F)`` points to score.
        k: which neighbour (1 = the nearest).
        chunk: queries per block (bounds memory at ``chunk × N`` distances).
    """
    ref = np.asarray(reference, dtype=np.float32)
    ref_sq = (ref.astype(np.float64) ** 2).sum(1)
    out = np.empty(len(queries), dtype=np.float64)
    for s in range(0, len(queries), chunk):
        q = np.asarray(queries[s : s + chunk], dtype=np.float32)
        # |q - r|^2 = |q|^2 + |r|^2 - 2 q.r, the product in float32 (BLAS), the sums in float64.
        d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * (q @ ref.T)
        out[s : s + chunk] = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(out, 0.0))


@dataclass(frozen=True)
class KNNSettings:
    """Settings of ``knn``."""

    k: int = setting(10, ge=1, doc="which nearest reference neighbour's distance is the score")
    space: str = setting("unit", choices=KNN_SPACES, doc="unit-norm features, or the embedding flow's coordinates")

    def __post_init__(self) -> None:
        check(self)


class KNN(Detector):
    """Deep nearest neighbours: minus the distance to the k-th nearest reference image's unit-norm features."""

    info = DetectorInfo(
        "knn",
        "minus the Euclidean distance from the image's unit-norm CNN features to the k-th nearest of the reference "
        "(in-distribution training) images' features",
        "the paper's statistic is the distance (higher = OOD); flowood returns minus it",
        "minus the distance between unit vectors (in [-2, 0])",
        "one CNN forward pass per image (cached, shared with every feature detector); one distance per reference image",
        "Sun et al. 2022, Out-of-Distribution Detection with Deep Nearest Neighbors (ICML)",
        images_only=True,
        auxiliary=("features",),
        reads_likelihood=False,
    )
    Settings = KNNSettings
    settings: KNNSettings

    def __init__(self, settings: KNNSettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.reference: np.ndarray | None = None
        self.context: FitContext | None = None
        self.pipeline: dict[str, Any] = {}

    def _points(self, context: FitContext, samples: Samples | None) -> np.ndarray:
        if self.settings.space == "flow":
            return np.asarray(context.feature_coordinates(samples), dtype=np.float32)
        return unit_rows(context.features(samples))

    def fit(self, context: FitContext) -> None:
        self.reference = self._points(context, None)
        if len(self.reference) < self.settings.k:
            raise ConfigError(
                f"knn.k={self.settings.k} exceeds the {len(self.reference)} reference images; lower knn.k or raise "
                "aux.features.train_limit"
            )
        self.context = context
        self.pipeline = context.describe_features()
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.reference is not None and self.context is not None
        return -kth_neighbour_distance(self.reference, self._points(self.context, samples), self.settings.k)

    def facts(self) -> dict[str, Any]:
        n = len(self.reference) if self.reference is not None else 0
        return {**super().facts(), **self.pipeline, "reference_samples": n}


@dataclass(frozen=True)
class MahalanobisSettings:
    """Settings of ``mahalanobis``."""

    class_conditional: bool = setting(True, doc="one mean per class when the run has labels (else one Gaussian)")
    reg_covar: float = setting(1e-6, gt=0, doc="added to the shared covariance's diagonal, in coordinate units²")

    def __post_init__(self) -> None:
        check(self)


class Mahalanobis(Detector):
    """Minus the smallest Mahalanobis distance to a class mean, under one covariance shared by the classes."""

    info = DetectorInfo(
        "mahalanobis",
        "minus the squared Mahalanobis distance of the image's features (the embedding flow's coordinates: unit "
        "norm, top principal components) to the nearest class mean, under the covariance the classes share "
        "(one Gaussian when the run is unlabelled)",
        "the paper's statistic is the distance (higher = OOD); flowood returns minus it",
        "minus a squared distance in whitened coordinates",
        "one CNN forward pass per image (cached, shared); a closed-form fit",
        "Lee et al. 2018, A Simple Unified Framework for Detecting OOD Samples and Adversarial Attacks (NeurIPS)",
        images_only=True,
        auxiliary=("features",),
        reads_likelihood=False,
    )
    Settings = MahalanobisSettings
    settings: MahalanobisSettings

    def __init__(self, settings: MahalanobisSettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.means: np.ndarray | None = None
        self.precision: np.ndarray | None = None
        self.context: FitContext | None = None
        self.classes: list[int] = []
        self.pipeline: dict[str, Any] = {}

    def fit(self, context: FitContext) -> None:
        x = np.asarray(context.feature_coordinates(None), dtype=np.float64)
        labels = context.feature_labels() if self.settings.class_conditional else None
        groups = np.zeros(len(x), dtype=np.int64) if labels is None else np.asarray(labels)
        self.classes = [int(c) for c in np.unique(groups)]
        self.means = np.stack([x[groups == c].mean(0) for c in self.classes])
        centred = x - self.means[np.searchsorted(self.classes, groups)]
        cov = centred.T @ centred / max(1, len(x) - len(self.classes))
        cov[np.diag_indices_from(cov)] += self.settings.reg_covar
        self.precision = np.linalg.inv(cov)
        self.context = context
        self.pipeline = context.describe_features()
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.means is not None and self.precision is not None and self.context is not None
        z = np.asarray(self.context.feature_coordinates(samples), dtype=np.float64)
        best = np.full(len(z), np.inf)
        for mean in self.means:
            d = z - mean
            best = np.minimum(best, ((d @ self.precision) * d).sum(1))
        return -best

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), **self.pipeline, "classes": self.classes}
