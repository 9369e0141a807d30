"""``combined``: one score from other detectors' outputs, by a rule fitted on in-distribution data only.

The rule (:class:`Combined`), for inputs ``d_1 … d_I`` (default: the pixel flow's ``log_likelihood`` and ``knn``
on the CNN features):

1. **Calibration.** Each input detector — the very instance the evaluation reports, fitted once and shared — scores
   the *calibration* images: in-distribution training images that no feature model was fitted on
   (:meth:`FitContext.calibration_samples`, the training split's ``val`` part). Never an OOD image, never the
   in-distribution test set.
2. **Normal scores.** Each input's values are mapped through their calibration distribution to standard normal
   quantiles, ``u_i(x) = Φ⁻¹(F̂_i(s_i(x)))`` (``F̂_i`` the calibration values' empirical CDF, interpolated; beyond
   the calibration range the map continues linearly with slope ``1 / std_i``, so no value is clipped and the
   order of every input is kept). On calibration data each ``u_i`` is standard normal whatever the input's units.
3. **Rule** ``density`` (default): the score is ``log N(u(x); μ, Σ)``, a full-covariance Gaussian fitted to the
   calibration images' ``u`` (a Gaussian copula of the inputs: correlated inputs are not counted twice). An image
   is out of distribution when the *combination* of its values is unlike the in-distribution ones: a pixel
   likelihood that is too high (the paper's failure) is as unlikely as one that is too low, so the raw likelihood
   can enter without being inverted. Rule ``rank``: the mean of the ``u_i`` (rank averaging: each input
   one-sided, higher = in-distribution).

Per-sample components are the ``u_i`` (each input's calibrated value), reported with their own AUROCs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from flowood.errors import ConfigError, FieldError
from flowood.ood.detectors.base import DETECTORS, Detector, DetectorInfo, FitContext, Samples, shared_score
from flowood.settings import check, setting

COMBINED = "combined"
RULES = ("density", "rank")
"""How the calibrated inputs are combined: a Gaussian density over them, or their mean (rank averaging)."""


def _inputs() -> list[str]:
    return [n for n in DETECTORS if n != COMBINED]


@dataclass(frozen=True)
class CombinedSettings:
    """Settings of ``combined``."""

    inputs: tuple[str, ...] = setting(("log_likelihood", "knn"), choices=_inputs, doc="the detectors combined")
    rule: str = setting("density", choices=RULES, doc="Gaussian density over the calibrated inputs, or their mean")
    calibration_limit: int | None = setting(2000, ge=10, doc="calibration images (null: every one there is)")

    def __post_init__(self) -> None:
        check(self)
        if not self.inputs:
            raise FieldError("inputs", "{name} must name at least one detector")
        if len(set(self.inputs)) != len(self.inputs):
            raise FieldError("inputs", f"{{name}} names a detector twice: {', '.join(self.inputs)}")


@dataclass(frozen=True)
class NormalScores:
    """The map of one input's values to standard normal quantiles of its calibration distribution (module doc)."""

    sorted_values: np.ndarray
    quantiles: np.ndarray
    slope: float

    @classmethod
    def fit(cls, values: np.ndarray) -> NormalScores:
        v = np.sort(np.asarray(values, dtype=np.float64))
        n = v.size
        # Mid-rank plotting positions; ties share the mean position of their group (np.interp needs x ascending).
        unique, first, counts = np.unique(v, return_index=True, return_counts=True)
        positions = (first + (counts - 1) / 2.0 + 0.5) / n
        std = float(v.std())
        return cls(unique, norm.ppf(positions), 1.0 / std if std > 0 else 1.0)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        lo, hi = self.sorted_values[0], self.sorted_values[-1]
        u = np.interp(x, self.sorted_values, self.quantiles)
        u = np.where(x < lo, self.quantiles[0] + (x - lo) * self.slope, u)
        return np.where(x > hi, self.quantiles[-1] + (x - hi) * self.slope, u)


class Combined(Detector):
    """A documented rule over other detectors' outputs, fitted on in-distribution calibration images only."""

    info = DetectorInfo(
        COMBINED,
        "Gaussian density (or mean) of the input detectors' values, each mapped to standard normal quantiles of its "
        "values on held-out in-distribution training images (calibration); default inputs: the pixel flow's "
        "log-likelihood and knn on the CNN features",
        "higher = the combination of values is more typical of in-distribution images; returned as is",
        "log-density of the calibrated inputs (density) or their mean normal quantile (rank)",
        "the inputs' own costs (shared with their rows) + scoring the calibration images once",
        "flowood: a Gaussian copula over detector outputs, fitted on in-distribution data only (docs/scores.md)",
        auxiliary=("detectors", "calibration"),
    )
    Settings = CombinedSettings
    settings: CombinedSettings

    def __init__(self, settings: CombinedSettings | None = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.inputs: list[Detector] = []
        self.maps: list[NormalScores] = []
        self.mean: np.ndarray | None = None
        self.precision: np.ndarray | None = None
        self.log_norm = 0.0
        self.calibration_count = 0

    def check(self, context: FitContext, sets: Sequence[Samples]) -> None:
        super().check(context, sets)
        for name in self.settings.inputs:
            if DETECTORS[name].info.per_batch:
                raise ConfigError(f"combined.inputs: {name} scores batches, not samples; combine per-sample detectors")
            context.detector(name, fit=False).check(context, sets)
        context.calibration_samples(self.settings.calibration_limit)  # a run without them fails before any fit

    def fit(self, context: FitContext) -> None:
        self.inputs = [context.detector(name) for name in self.settings.inputs]
        cal = context.calibration_samples(self.settings.calibration_limit)
        values = np.column_stack([shared_score(d, cal) for d in self.inputs])
        values = values[np.isfinite(values).all(axis=1)]
        if len(values) < 10:
            raise ConfigError(f"combined needs at least 10 calibration images with finite scores, got {len(values)}")
        self.maps = [NormalScores.fit(values[:, i]) for i in range(values.shape[1])]
        u = self._calibrated(values)
        self.mean = u.mean(0)
        cov = np.atleast_2d(np.cov(u, rowvar=False)) + 1e-6 * np.eye(u.shape[1])
        self.precision = np.linalg.inv(cov)
        self.log_norm = -0.5 * (u.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1])
        self.calibration_count = len(values)
        self.fitted = True

    def _calibrated(self, values: np.ndarray) -> np.ndarray:
        return np.column_stack([m(values[:, i]) for i, m in enumerate(self.maps)])

    def _inputs_of(self, samples: Samples) -> np.ndarray:
        values = np.column_stack([shared_score(d, samples) for d in self.inputs])
        # A non-finite input value (NaN / -inf) is the least in-distribution value that input can give.
        values = np.where(np.isfinite(values) | np.isposinf(values), values, -np.inf)
        return self._calibrated(np.clip(values, -1e300, 1e300))

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.mean is not None and self.precision is not None
        u = self._inputs_of(samples)
        if self.settings.rule == "rank":
            return u.mean(1)
        d = u - self.mean
        return self.log_norm - 0.5 * ((d @ self.precision) * d).sum(1)

    def components(self, samples: Samples) -> dict[str, np.ndarray]:
        u = self._inputs_of(samples)
        return {name: u[:, i] for i, name in enumerate(self.settings.inputs)}

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), "calibration_samples": self.calibration_count}
