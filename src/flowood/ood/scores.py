"""Deprecated alias of :mod:`flowood.ood.detectors` (the score arithmetic moved there in 0.2; this path goes
in the next release)."""

import warnings

from flowood.ood.detectors import (
    COMPRESSORS,
    DEFAULT_MUTATION_RATE,
    DETECTORS,
    available_detectors,
    compressed_bits_per_dim,
    input_complexity,
    likelihood_ratio,
    mutate_images,
    parse_detectors,
    typicality_batches,
    typicality_scores,
    waic,
)

warnings.warn(
    "flowood.ood.scores moved to flowood.ood.detectors (the Detector registry); the old path will be removed in "
    "the next release",
    DeprecationWarning,
    stacklevel=2,
)

SCORES = {name: cls.info for name, cls in DETECTORS.items()}
"""Name → :class:`~flowood.ood.detectors.DetectorInfo` (was ``ScoreSpec``)."""
available_scores = available_detectors
parse_scores = parse_detectors

__all__ = [
    "COMPRESSORS",
    "DEFAULT_MUTATION_RATE",
    "SCORES",
    "available_scores",
    "compressed_bits_per_dim",
    "input_complexity",
    "likelihood_ratio",
    "mutate_images",
    "parse_scores",
    "typicality_batches",
    "typicality_scores",
    "waic",
]
