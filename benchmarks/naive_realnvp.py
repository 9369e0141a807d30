"""A straightforward RealNVP, written the way the original OOD code (after Chute's ``real-nvp``) is.

Used only by ``throughput.py`` as the "straightforward implementation" flowood's eager fp32 path is
compared with. It computes the same model as ``flowood.build_flow("realnvp", ...)`` (same layers,
parameter count and likelihood) but with the original's habits:

* checkerboard masks rebuilt on every call (a new tensor per layer per step);
* ``torch.isnan(...).any()`` checked in every coupling layer (a device→host sync per layer);
* the log-determinant kept as mutable module state (``self._logdet``), read back after the pass;
* hook-based ``torch.nn.utils.weight_norm`` convolutions.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _weight_norm = nn.utils.weight_norm


def wn_conv(in_ch: int, out_ch: int, k: int, bias: bool = True) -> nn.Module:
    """Weight-normalised convolution with "same" padding (hook-based, as in the original)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _weight_norm(nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=bias))


class ResidualBlock(nn.Module):
    """BN → ReLU → conv → BN → ReLU → conv, plus the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.in_norm = nn.BatchNorm2d(ch)
        self.in_conv = wn_conv(ch, ch, 3, bias=False)
        self.out_norm = nn.BatchNorm2d(ch)
        self.out_conv = wn_conv(ch, ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        skip = x
        x = self.in_conv(F.relu(self.in_norm(x)))
        x = self.out_conv(F.relu(self.out_norm(x)))
        return x + skip


class ResNet(nn.Module):
    """The RealNVP st-network with skip connections."""

    def __init__(self, in_ch: int, mid: int, out_ch: int, num_blocks: int, double_after_norm: bool) -> None:
        super().__init__()
        self.in_norm = nn.BatchNorm2d(in_ch)
        self.double_after_norm = double_after_norm
        self.in_conv = wn_conv(2 * in_ch, mid, 3)
        self.in_skip = wn_conv(mid, mid, 1)
        self.blocks = nn.ModuleList([ResidualBlock(mid) for _ in range(num_blocks)])
        self.skips = nn.ModuleList([wn_conv(mid, mid, 1) for _ in range(num_blocks)])
        self.out_norm = nn.BatchNorm2d(mid)
        self.out_conv = wn_conv(mid, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_norm(x)
        if self.double_after_norm:
            x = x * 2.0
        x = F.relu(torch.cat((x, -x), dim=1))
        x = self.in_conv(x)
        x_skip = self.in_skip(x)
        for block, skip in zip(self.blocks, self.skips, strict=True):
            x = block(x)
            x_skip = x_skip + skip(x)
        return self.out_conv(F.relu(self.out_norm(x_skip)))


class Rescale(nn.Module):
    """Per-channel learned factor of ``tanh(s)``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ch, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x


def checkerboard_mask(h: int, w: int, reverse: bool, device: torch.device) -> Tensor:
    """Built anew on every call, as in the original."""
    checkerboard = [[((i % 2) + j) % 2 for j in range(w)] for i in range(h)]
    mask = torch.tensor(checkerboard, dtype=torch.float32, device=device)
    if reverse:
        mask = 1 - mask
    return mask.view(1, 1, h, w)


class Coupling(nn.Module):
    """Checkerboard or channel-wise affine coupling; log-det stored in ``self._logdet``."""

    def __init__(self, in_ch: int, mid: int, num_blocks: int, checkerboard: bool, reverse: bool) -> None:
        super().__init__()
        self.checkerboard = checkerboard
        self.reverse = reverse
        if not checkerboard:
            in_ch //= 2
        self.st_net = ResNet(in_ch, mid, 2 * in_ch, num_blocks, double_after_norm=checkerboard)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.rescale = _weight_norm(Rescale(in_ch))
        self._logdet: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.checkerboard:
            b = checkerboard_mask(x.size(2), x.size(3), self.reverse, x.device)
            st = self.st_net(x * b)
            s, t = st.chunk(2, dim=1)
            s = self.rescale(torch.tanh(s)) * (1 - b)
            t = t * (1 - b)
            exp_s = s.exp()
            if torch.isnan(exp_s).any():
                raise RuntimeError("Scale factor has NaN entries")
            x = (x + t) * exp_s
        else:
            if self.reverse:
                x_id, x_change = x.chunk(2, dim=1)
            else:
                x_change, x_id = x.chunk(2, dim=1)
            s, t = self.st_net(x_id).chunk(2, dim=1)
            s = self.rescale(torch.tanh(s))
            exp_s = s.exp()
            if torch.isnan(exp_s).any():
                raise RuntimeError("Scale factor has NaN entries")
            x_change = (x_change + t) * exp_s
            x = torch.cat((x_id, x_change) if self.reverse else (x_change, x_id), dim=1)
        self._logdet = s.reshape(s.size(0), -1).sum(-1)
        return x


def squeeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


class Scale(nn.Module):
    """One scale: 3 checkerboard couplings, squeeze, 3 channel couplings, factor out half, recurse."""

    def __init__(self, scale: int, num_scales: int, in_ch: int, mid: int, num_blocks: int) -> None:
        super().__init__()
        self.is_last = scale == num_scales - 1
        n_in = 4 if self.is_last else 3
        self.in_couplings = nn.ModuleList([Coupling(in_ch, mid, num_blocks, True, bool(i % 2)) for i in range(n_in)])
        if not self.is_last:
            self.out_couplings = nn.ModuleList(
                [Coupling(4 * in_ch, 2 * mid, num_blocks, False, bool(i % 2)) for i in range(3)]
            )
            self.next = Scale(scale + 1, num_scales, 2 * in_ch, 2 * mid, num_blocks)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.size(0))
        for coupling in self.in_couplings:
            x = coupling(x)
            logdet = logdet + coupling._logdet
        if self.is_last:
            return x, logdet
        x = squeeze(x)
        for coupling in self.out_couplings:
            x = coupling(x)
            logdet = logdet + coupling._logdet
        keep = x.size(1) // 2
        x_next, x_out = x[:, :keep], x[:, keep:]
        x_next, ld = self.next(x_next)
        return unsqueeze(torch.cat((x_next, x_out), dim=1)), logdet + ld


class NaiveRealNVP(nn.Module):
    """Dequantisation + logit + multi-scale RealNVP; ``forward`` returns per-sample bits/dim."""

    def __init__(self, in_ch: int = 1, num_scales: int = 2, mid: int = 64, num_blocks: int = 8) -> None:
        super().__init__()
        self.flows = Scale(0, num_scales, in_ch, mid, num_blocks)
        self.alpha = 0.9

    def forward(self, images: Tensor) -> Tensor:
        d = images[0].numel()
        y = (images * 255.0 + torch.rand_like(images)) / 256.0
        p = (1 - self.alpha) / 2 + self.alpha * y
        x = p.log() - (1 - p).log()
        ld_pre = (math.log(self.alpha) - p.log() - (1 - p).log()).flatten(1).sum(-1) - d * math.log(256)
        z, logdet = self.flows(x)
        prior = -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(-1)
        ll = prior + logdet + ld_pre
        return -ll / (d * math.log(2.0))
