"""Deprecated alias of :mod:`flowood.ood.likelihood` (renamed in 0.2; this path goes in the next release)."""

import warnings

from flowood.ood.likelihood import iter_bits_per_dim, score_bits_per_dim

warnings.warn(
    "flowood.ood.scoring was renamed to flowood.ood.likelihood; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["iter_bits_per_dim", "score_bits_per_dim"]
