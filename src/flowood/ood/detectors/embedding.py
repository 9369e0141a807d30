"""Scores on pretrained-CNN embeddings: a flow on the features (Kirichenko et al. 2020 §8) and the model-free
full-covariance Gaussian on the same features."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.mixture import GaussianMixture

from flowood.ood.detectors.base import AuxFlow, Detector, DetectorInfo, FitContext, Samples

_FEATURE_DEFAULTS: dict[str, Any] = {
    "extractor": "efficientnet-lite0",
    "embedding_size": 64,
    "embedding_train_limit": 3000,
}


class EmbeddingLikelihood(Detector):
    info = DetectorInfo(
        "embedding_likelihood",
        "log-density of the image's pretrained-CNN embedding under a tabular flow fit to in-distribution embeddings",
        "higher log p(embedding) = more in-distribution; returned as is",
        "nats of the standardised features",
        "one CNN forward pass per image (cached by content) + one flow on embeddings (RUN/embedding-flow/)",
        "Kirichenko et al. 2020, section 8",
        images_only=True,
    )
    defaults: ClassVar[dict[str, Any]] = {**_FEATURE_DEFAULTS, "embedding_test_limit": 1000}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.flow: AuxFlow | None = None

    def fit(self, context: FitContext) -> None:
        s = self.settings
        self.flow = context.embedding_flow(
            s["extractor"], int(s["embedding_size"]), s["embedding_train_limit"], s["embedding_test_limit"]
        )
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.flow is not None
        return np.asarray(self.flow.log_likelihood(samples), dtype=np.float64)

    def facts(self) -> dict[str, Any]:
        return {**(self.flow.describe() if self.flow is not None else {})}


class EmbeddingGaussian(Detector):
    """One full-covariance Gaussian (sklearn ``GaussianMixture(1, "full")``) on the CNN features."""

    info = DetectorInfo(
        "embedding_gaussian",
        "log-density of the image's pretrained-CNN embedding under one full-covariance Gaussian fit to the "
        "in-distribution training embeddings (no flow)",
        "higher log N(embedding) = more in-distribution; returned as is",
        "nats of the raw features",
        "one CNN forward pass per image (cached, shared with embedding_likelihood); a closed-form fit",
        "model-free baseline for embedding_likelihood (a Gaussian density on features, as in Lee et al. 2018)",
        images_only=True,
        needs_flow=False,
    )
    defaults: ClassVar[dict[str, Any]] = {**_FEATURE_DEFAULTS, "gaussian_reg_covar": 1e-4}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.gmm: GaussianMixture | None = None
        self.context: FitContext | None = None
        self.train_count = 0

    def fit(self, context: FitContext) -> None:
        s = self.settings
        feats = context.features(None, s["extractor"], int(s["embedding_size"]), s["embedding_train_limit"])
        self.gmm = GaussianMixture(1, covariance_type="full", reg_covar=float(s["gaussian_reg_covar"]), random_state=0)
        self.gmm.fit(np.asarray(feats, dtype=np.float64))
        self.train_count = int(feats.shape[0])
        self.context = context
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.gmm is not None and self.context is not None
        s = self.settings
        feats = self.context.features(samples, s["extractor"], int(s["embedding_size"]))
        return self.gmm.score_samples(np.asarray(feats, dtype=np.float64))

    def facts(self) -> dict[str, Any]:
        return {**self.settings, "train_samples": self.train_count}
