"""Turning 8-bit images into a continuous density problem, and the units we report.

The discrete log-likelihood of an image ``x ∈ {0, 1/255, …, 1}^D`` is bounded below by the continuous
log-density of its dequantised, logit-transformed version (Theis et al. 2016; Dinh et al. 2017)::

    log P(x) ≈ log p_flow(logit(x̃)) + log|d logit/dx̃| − D · log 256,   x̃ = (255·x + u) / 256, u ~ U[0,1)^D

:class:`Dequantize` contributes the ``−D·log 256`` term as its log-determinant (the Jacobian of mapping
integer pixel values plus noise, in ``[0, 256)``, to ``[0, 1)``); :class:`LogitTransform` contributes
the logit's log-determinant. Bits per dimension are ``−log P(x) / (D · ln 2)``. Unlike the original
code we add no extra ``D·log(255/256)`` term.
"""

from __future__ import annotations

import math
from typing import TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from flowood.flows.base import InvertibleModule, float32_region, full_precision

NUM_BINS = 256


class Dequantize(InvertibleModule):
    """``x ∈ [0,1]`` (multiples of 1/255) ↦ ``(255·x + u) / 256``.

    Args:
        noise: ``"uniform"`` draws ``u ~ U[0,1)`` (the default, an unbiased bound), ``"midpoint"``
            uses ``u = 0.5`` (deterministic scoring).
        generator: optional RNG for reproducible noise.
    """

    def __init__(self, noise: str = "uniform") -> None:
        super().__init__()
        if noise not in ("uniform", "midpoint"):
            raise ValueError(f"noise must be 'uniform' or 'midpoint', got {noise!r}")
        self.noise = noise
        self.generator: torch.Generator | None = None
        # (rank, world_size) under data-parallel training, set by the trainer; see _noise.
        self.shard: tuple[int, int] | None = None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.with_noise(x, None)

    def with_noise(self, x: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """:meth:`forward` with given noise ``u`` in ``[0, 1)``, shaped like ``x`` (``None``: draw it)."""
        with float32_region(x):
            x = full_precision(x)
            u = self._noise(x) if noise is None else full_precision(noise).to(x.device)
            y = (torch.round(x * (NUM_BINS - 1)) + u) / NUM_BINS
            d = x[0].numel()
            logdet = x.new_full((x.shape[0],), -d * math.log(NUM_BINS))
            return y, logdet

    def _noise(self, x: Tensor) -> Tensor:
        if self.noise != "uniform":
            return torch.full_like(x, 0.5)
        if self.shard is None:
            return torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        # Data-parallel training: every rank draws the noise of the whole global batch from the same
        # generator and keeps its own slice, so N ranks see exactly the noise one process would.
        rank, world = self.shard
        b = x.shape[0]
        u = torch.rand((b * world, *x.shape[1:]), generator=self.generator, device=x.device, dtype=x.dtype)
        return u[rank * b : (rank + 1) * b]

    def inverse(self, y: Tensor) -> Tensor:
        return torch.floor(y * NUM_BINS).clamp(0, NUM_BINS - 1) / (NUM_BINS - 1)


class LogitTransform(InvertibleModule):
    """``y = logit((1 − α)/2 + α·x)`` for ``x ∈ [0, 1]``; keeps the logit away from ±∞.

    Args:
        alpha: the squeeze factor α (0.9 in RealNVP and the original code).
    """

    def __init__(self, alpha: float = 0.9) -> None:
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"logit alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with float32_region(x):
            p = (1.0 - self.alpha) / 2 + self.alpha * full_precision(x)
            y = torch.log(p) - torch.log1p(-p)
            ld = math.log(self.alpha) - torch.log(p) - torch.log1p(-p)
            return y, ld.flatten(1).sum(dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        with float32_region(y):
            return (torch.sigmoid(full_precision(y)) - (1.0 - self.alpha) / 2) / self.alpha


LN2 = math.log(2.0)
"""``ln 2``: nats per bit."""

_Values = TypeVar("_Values", Tensor, np.ndarray, float)


def bits_per_dim(log_likelihood: _Values, num_dims: int | np.ndarray) -> _Values:
    """Bits per dimension from a log-likelihood in nats: ``−ll / (D · ln 2)``.

    The one nats → bits/dim conversion of flowood (training loss and logs, scores, detectors). Works on
    tensors, arrays and floats of any shape; ``num_dims`` (D) may be an array that broadcasts against
    ``log_likelihood`` (e.g. per-scale dimensions ``(1, S)`` against ``(N, S)`` terms).
    """
    return cast(_Values, -log_likelihood / (num_dims * LN2))  # an array D makes numpy's result type wider


def log_likelihood_from_bpd(bpd: _Values, num_dims: int) -> _Values:
    """The inverse of :func:`bits_per_dim`: log-likelihood in nats ``−bpd · D · ln 2``."""
    return -bpd * num_dims * LN2
