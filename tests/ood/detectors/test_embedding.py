"""``flowood.ood.detectors.embedding``: the flow's nats are the score; the Gaussian is full-covariance and
reports the evaluation's feature pipeline."""

from __future__ import annotations

import numpy as np

from flowood.ood.detectors import get_detector
from tests.ood.detectors.fakes import FakeContext, KnownFlow, auroc, near, samples


def test_embedding_likelihood_is_the_embedding_flows_log_likelihood():
    emb = KnownFlow({"in": near(-100.0, sd=2)})
    det = get_detector("embedding_likelihood")
    det.fit(FakeContext(embedding=emb))
    np.testing.assert_array_equal(det.score(samples("in", near(3))), emb.nats_by_key["in"])


def test_embedding_gaussian_uses_the_full_covariance():
    # Correlated features: OOD points lie off the correlation axis with the same per-feature variance, so a
    # diagonal Gaussian could not separate them; a full-covariance one does.
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    off = rng.standard_normal((200, 2))
    off[:, 1] = -np.sign(off[:, 0]) * np.abs(off[:, 1])
    feats = {"train": rng.multivariate_normal([0, 0], cov, 1000), "in": rng.multivariate_normal([0, 0], cov, 200)}
    det = get_detector("embedding_gaussian", reg_covar=1e-3)
    det.fit(FakeContext(feats={**feats, "ood": off}))
    assert auroc(det, samples("in", near(3)), samples("ood", near(3))) > 0.9
    facts = det.facts()
    assert facts["reg_covar"] == 1e-3 and facts["train_samples"] == 1000 and facts["extractor"] == "known"
