"""Likelihood ratios: against a background model of mutated inputs (Ren et al. 2019) and against a general
model of a broad dataset (Schirrmeister et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowood.data import dataset_info

# mutate_images moved to the data layer (the background's data is the derived dataset mutate-RATE:NAME);
# imported here so that flowood.ood.detectors keeps exporting it.
from flowood.data.derived import DEFAULT_MUTATION_RATE, mutate_images  # noqa: F401
from flowood.errors import ConfigError
from flowood.ood.detectors.base import AuxFlow, Detector, DetectorInfo, FitContext, Samples
from flowood.ood.detectors.baseline import nats_from_bpd
from flowood.settings import check, setting


def likelihood_ratio(log_p_model: np.ndarray, log_p_background: np.ndarray) -> np.ndarray:
    """``log p_model - log p_background`` per sample (same units for both; higher = in-distribution)."""
    a = np.asarray(log_p_model, dtype=np.float64)
    b = np.asarray(log_p_background, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"model and background scores differ in shape: {a.shape} vs {b.shape}")
    return a - b


class _RatioDetector(Detector):
    """``log p_model(x) - log p_other(x)`` in nats, ``other`` an auxiliary flow of the same family."""

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        super().__init__(settings, **values)
        self.other: AuxFlow | None = None
        self.num_dims = 0

    def _other(self, context: FitContext) -> AuxFlow:
        raise NotImplementedError

    def fit(self, context: FitContext) -> None:
        self.num_dims = context.num_dims
        self.other = self._other(context)
        self.fitted = True

    def score(self, samples: Samples) -> np.ndarray:
        self._check_fitted()
        assert self.other is not None
        return likelihood_ratio(nats_from_bpd(samples.bpd, self.num_dims), self.other.log_likelihood(samples))

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), **(self.other.describe() if self.other is not None else {})}


@dataclass(frozen=True)
class LikelihoodRatioSettings:
    """Settings of ``likelihood_ratio``: the background's training data."""

    mutation_rate: float = setting(
        DEFAULT_MUTATION_RATE, ge=0, le=1, doc="mu: share of pixel values replaced by uniform noise"
    )
    mutation_copies: int = setting(1, ge=1, doc="mutated copies of the training set")

    def __post_init__(self) -> None:
        check(self)


class LikelihoodRatio(_RatioDetector):
    """Ren et al. 2019 with a flow background trained on mutated in-distribution images."""

    info = DetectorInfo(
        "likelihood_ratio",
        "log p_model(x) - log p_background(x), background = same flow trained on mutated inputs",
        "higher ratio = more in-distribution (semantic content explains the likelihood, not background "
        "statistics); returned as is",
        "nats",
        "trains one background flow with the main model's budget (cached in RUN/background/), one extra pass",
        "Ren et al. 2019, Likelihood Ratios for Out-of-Distribution Detection",
        images_only=True,
        auxiliary=("background",),
    )
    Settings = LikelihoodRatioSettings
    settings: LikelihoodRatioSettings

    def _other(self, context: FitContext) -> AuxFlow:
        return context.background_flow(self.settings.mutation_rate, self.settings.mutation_copies)


@dataclass(frozen=True)
class GeneralLikelihoodRatioSettings:
    """Settings of ``general_likelihood_ratio``."""

    dataset: str | None = setting(None, doc="the broad dataset of the general model (e.g. imagenet32)")

    def __post_init__(self) -> None:
        check(self)


class GeneralLikelihoodRatio(_RatioDetector):
    """``log p_model - log p_general``, the general model trained on a broad dataset the user names."""

    info = DetectorInfo(
        "general_likelihood_ratio",
        "log p_model(x) - log p_general(x), general = same flow trained on a broad dataset (--general-dataset)",
        "higher ratio = more in-distribution (what only the in-distribution model explains); returned as is",
        "nats",
        "trains one flow on the general dataset with the main model's budget (RUN/general/NAME/), one extra pass",
        "Schirrmeister et al. 2020, Understanding Anomaly Detection with Deep Invertible Networks through "
        "Hierarchies of Distributions and Features",
        auxiliary=("general",),
    )
    Settings = GeneralLikelihoodRatioSettings
    settings: GeneralLikelihoodRatioSettings
    in_all = False

    def check(self, context: FitContext, sets: Sequence[Samples]) -> None:
        super().check(context, sets)
        name = self.settings.dataset
        if not name:
            raise ConfigError(
                "general_likelihood_ratio needs a broad dataset for the general model: pass --general-dataset NAME "
                "(e.g. imagenet32 or folder:/path/to/images)"
            )
        if name in context.evaluated:
            raise ConfigError(
                f"general_likelihood_ratio: --general-dataset {name} is an OOD set under evaluation; the general "
                "model must never see the OOD data it is judged on; name another broad dataset"
            )
        if name == context.in_dataset:
            raise ConfigError(
                f"general_likelihood_ratio: --general-dataset {name} is the in-distribution dataset itself; "
                "name a broader dataset"
            )
        dataset_info(name)  # an unknown name fails now, before any detector trains

    def _other(self, context: FitContext) -> AuxFlow:
        assert self.settings.dataset is not None  # check() refused None
        return context.general_flow(self.settings.dataset)
