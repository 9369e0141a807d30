"""Deprecated alias of :mod:`flowood.flows.flow` (renamed in 0.2; this path goes in the next release)."""

import warnings

from flowood.flows.flow import NormalizingFlow, image_preprocess

warnings.warn(
    "flowood.flows.model was renamed to flowood.flows.flow; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["NormalizingFlow", "image_preprocess"]
