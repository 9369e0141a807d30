"""Per-scale likelihood contributions of a multi-scale flow (in the spirit of Schirrmeister et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flowood.errors import ConfigError
from flowood.ood.detectors.base import Detector, DetectorInfo, FitContext, Samples
from flowood.ood.detectors.flowstats import FlowStatistics
from flowood.ood.detectors.shared import FlowPass


def coarse_minus_finest(stats: FlowStatistics) -> np.ndarray:
    """``bpd_finest - bpd_coarsest`` per sample: the coarsest scale's log-likelihood per dimension minus the
    finest scale's, in bits/dim (higher = more in-distribution)."""
    bpd = stats.scale_bits_per_dim()
    return bpd[:, 0] - bpd[:, -1]


class PerScale(Detector):
    info = DetectorInfo(
        "per_scale",
        "each scale's share of the log-likelihood (its layers' log-det + log N of its latent piece, per dim); "
        "score = coarsest scale minus finest scale",
        "higher = more in-distribution: the finest scale carries the local pixel statistics that make every "
        "structured image likely, the coarse scale what is specific to the data; components: each scale's "
        "-bits/dim",
        "bits/dim (bpd_finest - bpd_coarsest)",
        "one extra pass per sample (shared with dose and latent_typicality); multi-scale flows only",
        "Schirrmeister et al. 2020, Understanding Anomaly Detection with Deep Invertible Networks through "
        "Hierarchies of Distributions and Features (NeurIPS)",
    )

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.flow_pass: FlowPass | None = None

    def check(self, context: FitContext, sets: Sequence[Samples]) -> None:
        super().check(context, sets)
        if not getattr(context.flow, "latent_keeps", None):
            raise ConfigError(f"per_scale needs a multi-scale flow (realnvp, glow); {context.flow.name} has one scale")

    def fit(self, context: FitContext) -> None:
        self.flow_pass = FlowPass.of(context)
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.flow_pass is not None
        return coarse_minus_finest(self.flow_pass(samples))

    def components(self, samples: Samples) -> dict[str, np.ndarray]:
        assert self.flow_pass is not None
        bpd = self.flow_pass(samples).scale_bits_per_dim()
        return {f"scale_{i}": -bpd[:, i] for i in range(bpd.shape[1])}
