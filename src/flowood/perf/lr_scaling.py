"""Learning-rate scaling for a larger (global) batch than the one a learning rate was tuned at."""

from __future__ import annotations

import math

LR_SCALINGS = ("none", "linear", "sqrt")
"""Accepted values of ``train.lr_scaling``."""


def scaled_lr(lr: float, batch_size: int, reference_batch_size: int | None, rule: str) -> float:
    """Learning rate for a (global) ``batch_size`` given ``lr`` tuned at ``reference_batch_size``.

    ``linear``: ``lr · B / B_ref`` (Goyal et al. 2017); ``sqrt``: ``lr · sqrt(B / B_ref)`` (the usual
    rule for Adam); ``none`` or no reference: ``lr`` unchanged.

    Raises:
        ValueError: ``rule`` is not one of :data:`LR_SCALINGS`.
    """
    if rule not in LR_SCALINGS:
        raise ValueError(f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, got {rule!r}")
    if rule == "none" or not reference_batch_size:
        return lr
    ratio = batch_size / reference_batch_size
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))
