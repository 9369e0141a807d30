"""Deprecated alias of :mod:`flowood.train.presets` (moved in 0.2; this path goes in the next release)."""

import warnings

from flowood.train.presets import IMAGE_SHAPES, PRESETS, get_preset, preset_parameter_count

warnings.warn(
    "flowood.experiments.presets moved to flowood.train.presets; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["IMAGE_SHAPES", "PRESETS", "get_preset", "preset_parameter_count"]
