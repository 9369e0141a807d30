"""The baseline: the run's own exact likelihood (already computed by the evaluation, no extra pass)."""

from __future__ import annotations

import numpy as np

from flowood.flows.preprocess import log_likelihood_from_bpd
from flowood.ood.detectors.base import Detector, DetectorInfo, FitContext, Samples


class LogLikelihood(Detector):
    """``-bits/dim`` of the run's flow: a positive multiple of ``log p(x)`` plus a constant (same ranking)."""

    info = DetectorInfo(
        "log_likelihood",
        "exact log-likelihood of the 8-bit image (or density of the vector) under the run's flow",
        "higher log p = more in-distribution; returned as -bits/dim (a positive multiple of log p + const)",
        "negated bits/dim (same ranking as nats)",
        "one forward pass per sample (the baseline)",
        "Kirichenko et al. 2020; Nalisnick et al. 2019 (why it fails)",
    )

    def fit(self, context: FitContext) -> None:
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        return -np.asarray(samples.bpd, dtype=np.float64)


class BitsPerDim(LogLikelihood):
    """Bits/dim, the report's unit, negated so that higher = in-distribution (metrics equal log_likelihood's)."""

    info = DetectorInfo(
        "bits_per_dim",
        "bits per dimension, -log2 p(x) / D: the log-likelihood in the units of the report",
        "lower bits/dim = more in-distribution; returned negated (metrics equal log_likelihood's)",
        "negated bits/dim",
        "free given log_likelihood",
        "Theis et al. 2016 (the unit)",
    )


def nats_from_bpd(bpd: np.ndarray, num_dims: int) -> np.ndarray:
    """``log p`` in nats from bits/dim: ``-bpd · D · ln 2``."""
    return log_likelihood_from_bpd(np.asarray(bpd, dtype=np.float64), num_dims)
