"""Invertible 1×1 convolutions (Glow), plain and LU-parametrised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision


def _random_rotation(c: int) -> Tensor:
    q, _ = torch.linalg.qr(torch.randn(c, c))
    return q


class InvConv1x1(InvertibleModule):
    """``y = W x`` at every pixel with a learned ``C×C`` matrix; ``logdet = H·W·log|det W|``.

    Initialised to a random rotation so the layer starts volume preserving.
    """

    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(_random_rotation(num_channels))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # The mixing and its log-determinant act on the flow's state: fp32 even under autocast.
        with float32_region(x):
            x = full_precision(x)
            c = self.weight.shape[0]
            y = F.conv2d(x, self.weight.view(c, c, 1, 1))
            logabsdet = torch.linalg.slogdet(self.weight)[1]
            return y, (logabsdet * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        with float32_region(y):
            y = full_precision(y)
            c = self.weight.shape[0]
            w_inv = torch.linalg.inv(self.weight)
            return F.conv2d(y, w_inv.view(c, c, 1, 1))


class InvConv1x1LU(InvertibleModule):
    """LU-parametrised 1×1 convolution: ``W = P · L · (U + diag(sign · exp(log_s)))``.

    ``P`` is a fixed permutation, ``L`` unit lower-triangular and ``U`` strictly upper-triangular, so
    ``log|det W| = Σ log_s`` costs O(C) instead of a determinant.
    """

    perm: Tensor
    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)
    sign_s: Tensor
    lower_mask: Tensor
    eye: Tensor

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        w = _random_rotation(num_channels)
        p, lower, upper = torch.linalg.lu(w)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(num_channels, num_channels), -1))
        self.register_buffer("eye", torch.eye(num_channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def weight(self) -> Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with float32_region(x):
            x = full_precision(x)
            w = self.weight()
            c = w.shape[0]
            y = F.conv2d(x, w.view(c, c, 1, 1))
            return y, (self.log_s.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        with float32_region(y):
            y = full_precision(y)
            w = self.weight()
            c = w.shape[0]
            return F.conv2d(y, torch.linalg.inv(w).view(c, c, 1, 1))
