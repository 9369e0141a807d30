"""OOD detectors for likelihood models: the :class:`Detector` protocol and the registry.

>>> from flowood.ood.detectors import available_detectors, get_detector
>>> det = get_detector("typicality", m=10)          # or Typicality(TypicalitySettings(m=10))

Adding a detector: one module with one class (a :class:`Detector` subclass with ``info``, ``Settings``, ``fit``,
``score``) and one ``register(...)`` line below; the contract test (``tests/contracts/test_detectors.py``)
picks it up. Document it in ``docs/scores.md``. Every score is *higher = more in-distribution*.
"""

from flowood.ood.detectors.base import (
    AUXILIARY_MODELS,
    DETECTORS,
    AuxFlow,
    Detector,
    DetectorInfo,
    FitContext,
    NoSettings,
    Samples,
    adaptable_detectors,
    available_detectors,
    detector_info,
    get_detector,
    parse_detectors,
    register,
    shared_score,
)
from flowood.ood.detectors.baseline import BitsPerDim, LogLikelihood
from flowood.ood.detectors.combined import Combined, CombinedSettings, NormalScores
from flowood.ood.detectors.complexity import (
    COMPRESSORS,
    CompressedSize,
    CompressionSettings,
    InputComplexity,
    compressed_bits_per_dim,
    input_complexity,
)
from flowood.ood.detectors.dose import DoSE, DoSESettings, dose_statistics
from flowood.ood.detectors.embedding import (
    EmbeddingGaussian,
    EmbeddingGaussianRaw,
    EmbeddingGaussianSettings,
    EmbeddingLikelihood,
)
from flowood.ood.detectors.ensemble import WAIC, WAICSettings, waic
from flowood.ood.detectors.feature_space import (
    KNN,
    KNNSettings,
    Mahalanobis,
    MahalanobisSettings,
    kth_neighbour_distance,
    unit_rows,
)
from flowood.ood.detectors.flowstats import FlowStatistics, flow_statistics
from flowood.ood.detectors.perscale import PerScale, coarse_minus_finest
from flowood.ood.detectors.ratio import (
    DEFAULT_MUTATION_RATE,
    GeneralLikelihoodRatio,
    GeneralLikelihoodRatioSettings,
    LikelihoodRatio,
    LikelihoodRatioSettings,
    likelihood_ratio,
    mutate_images,
)
from flowood.ood.detectors.typicality import (
    LatentTypicality,
    Typicality,
    TypicalityM1,
    TypicalityM1Settings,
    TypicalitySettings,
    latent_typicality_scores,
    typicality_batches,
    typicality_scores,
)

register(LogLikelihood)
register(BitsPerDim)
register(LikelihoodRatio)
register(InputComplexity)
register(Typicality)
register(TypicalityM1)
register(WAIC)
register(EmbeddingLikelihood)
register(DoSE)
register(PerScale)
register(LatentTypicality)
register(CompressedSize)
register(EmbeddingGaussian)
register(GeneralLikelihoodRatio)
register(EmbeddingGaussianRaw)
register(KNN)
register(Mahalanobis)
register(Combined)

__all__ = [
    "AUXILIARY_MODELS",
    "COMPRESSORS",
    "DEFAULT_MUTATION_RATE",
    "DETECTORS",
    "KNN",
    "WAIC",
    "AuxFlow",
    "BitsPerDim",
    "Combined",
    "CombinedSettings",
    "CompressedSize",
    "CompressionSettings",
    "Detector",
    "DetectorInfo",
    "DoSE",
    "DoSESettings",
    "EmbeddingGaussian",
    "EmbeddingGaussianRaw",
    "EmbeddingGaussianSettings",
    "EmbeddingLikelihood",
    "FitContext",
    "FlowStatistics",
    "GeneralLikelihoodRatio",
    "GeneralLikelihoodRatioSettings",
    "InputComplexity",
    "KNNSettings",
    "LatentTypicality",
    "LikelihoodRatio",
    "LikelihoodRatioSettings",
    "LogLikelihood",
    "Mahalanobis",
    "MahalanobisSettings",
    "NoSettings",
    "NormalScores",
    "PerScale",
    "Samples",
    "Typicality",
    "TypicalityM1",
    "TypicalityM1Settings",
    "TypicalitySettings",
    "WAICSettings",
    "adaptable_detectors",
    "available_detectors",
    "coarse_minus_finest",
    "compressed_bits_per_dim",
    "detector_info",
    "dose_statistics",
    "flow_statistics",
    "get_detector",
    "input_complexity",
    "kth_neighbour_distance",
    "latent_typicality_scores",
    "likelihood_ratio",
    "mutate_images",
    "parse_detectors",
    "register",
    "shared_score",
    "typicality_batches",
    "typicality_scores",
    "unit_rows",
    "waic",
]
