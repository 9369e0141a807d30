"""Scores on CNN embeddings: a flow on the features (Kirichenko et al. 2020 §8) and the model-free
full-covariance Gaussian in the flow's own coordinates (and on the raw features).

Both read the evaluation's one feature pipeline (:meth:`FitContext.features`: extractor, input size and the
training images embedded are settings of the evaluation, not of a detector), so every feature detector of a
run sees the same features, extracted once per image (cached by content).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture

from flowood.ood.detectors.base import AuxFlow, Detector, DetectorInfo, FitContext, Samples
from flowood.settings import check, setting


class EmbeddingLikelihood(Detector):
    info = DetectorInfo(
        "embedding_likelihood",
        "log-density of the image's pretrained-CNN embedding under a tabular flow fit to in-distribution embeddings",
        "higher log p(embedding) = more in-distribution; returned as is",
        "nats of the standardised features",
        "one CNN forward pass per image (cached by content) + one flow on embeddings (RUN/embedding-flow/)",
        "Kirichenko et al. 2020, section 8",
        images_only=True,
        auxiliary=("features", "embedding_flow"),
        reads_likelihood=False,
    )

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.flow: AuxFlow | None = None

    def fit(self, context: FitContext) -> None:
        self.flow = context.embedding_flow()
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.flow is not None
        return np.asarray(self.flow.log_likelihood(samples), dtype=np.float64)

    def facts(self) -> dict[str, Any]:
        return {**(self.flow.describe() if self.flow is not None else {})}


@dataclass(frozen=True)
class EmbeddingGaussianSettings:
    """Settings of ``embedding_gaussian`` and ``embedding_gaussian_raw``."""

    reg_covar: float = setting(1e-4, gt=0, doc="added to the covariance's diagonal, in squared feature units")

    def __post_init__(self) -> None:
        check(self)


class EmbeddingGaussian(Detector):
    """One full-covariance Gaussian (sklearn ``GaussianMixture(1, "full")``) in the embedding flow's coordinates:
    the density the flow starts from, so what the flow adds is its AUROC minus this one's."""

    info = DetectorInfo(
        "embedding_gaussian",
        "log-density of the image's CNN embedding, in the embedding flow's own coordinates (unit norm, centred, "
        "top principal components, whitened), under one full-covariance Gaussian fit to the reference "
        "embeddings (no flow: the fair baseline of embedding_likelihood)",
        "higher log N(embedding) = more in-distribution; returned as is",
        "nats of the flow's coordinates",
        "one CNN forward pass per image (cached, shared with every feature detector); a closed-form fit",
        "model-free baseline for embedding_likelihood (a Gaussian density on features, as in Lee et al. 2018)",
        images_only=True,
        auxiliary=("features",),
        reads_likelihood=False,
    )
    Settings = EmbeddingGaussianSettings
    settings: EmbeddingGaussianSettings

    def __init__(self, settings: EmbeddingGaussianSettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.gmm: GaussianMixture | None = None
        self.context: FitContext | None = None
        self.train_count = 0
        self.pipeline: dict[str, Any] = {}

    def _points(self, context: FitContext, samples: Samples | None) -> np.ndarray:
        return np.asarray(context.feature_coordinates(samples), dtype=np.float64)

    def fit(self, context: FitContext) -> None:
        feats = self._points(context, None)
        self.gmm = GaussianMixture(1, covariance_type="full", reg_covar=self.settings.reg_covar, random_state=0)
        self.gmm.fit(feats)
        self.train_count = int(feats.shape[0])
        self.pipeline = context.describe_features()
        self.context = context
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.gmm is not None and self.context is not None
        return self.gmm.score_samples(self._points(self.context, samples))

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), **self.pipeline, "train_samples": self.train_count}


class EmbeddingGaussianRaw(EmbeddingGaussian):
    """The same Gaussian on the raw CNN features (no unit norm, no projection): ``embedding_gaussian`` up to 0.2."""

    info = DetectorInfo(
        "embedding_gaussian_raw",
        "log-density of the image's raw CNN embedding under one full-covariance Gaussian fit to the reference "
        "embeddings (no flow, no unit norm, no projection)",
        "higher log N(embedding) = more in-distribution; returned as is",
        "nats of the raw features",
        "one CNN forward pass per image (cached, shared with every feature detector); a closed-form fit",
        "model-free baseline (what embedding_gaussian computed until flowood 0.2)",
        images_only=True,
        auxiliary=("features",),
        reads_likelihood=False,
    )

    def _points(self, context: FitContext, samples: Samples | None) -> np.ndarray:
        return np.asarray(context.features(samples), dtype=np.float64)
