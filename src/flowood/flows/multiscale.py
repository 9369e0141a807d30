"""Multi-scale architecture: factor out half of the variables after each scale."""

from __future__ import annotations

import torch
from torch import Tensor

from flowood.flows.base import InvertibleModule
from flowood.flows.reshape import Unsqueeze, squeeze2d

__all__ = ["FactorOut", "Unsqueeze", "split_latent_scales"]  # Unsqueeze re-exported: it lived here until 0.2


class FactorOut(InvertibleModule):
    """Send the first ``keep`` channels through ``inner``; the rest go to the latent unchanged.

    With a :class:`~flowood.flows.reshape.Squeeze` before and an unsqueeze after, this is the
    RealNVP/Glow multi-scale factor-out, and the latent keeps all D dimensions on the input grid.
    """

    def __init__(self, keep: int, inner: InvertibleModule) -> None:
        super().__init__()
        self.keep = keep
        self.inner = inner

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x[:, : self.keep], x[:, self.keep :]
        a, logdet = self.inner(a)
        return torch.cat((a, b), dim=1), logdet

    def inverse(self, y: Tensor) -> Tensor:
        a, b = y[:, : self.keep], y[:, self.keep :]
        return torch.cat((self.inner.inverse(a), b), dim=1)


def split_latent_scales(z: Tensor, keeps: list[int]) -> list[Tensor]:
    """Per-scale pieces of a multi-scale latent laid out by :class:`FactorOut` + squeezes.

    Args:
        z: latent ``(B, C, H, W)`` on the input grid.
        keeps: channels kept (passed to the next scale) after each scale's squeeze.

    Returns:
        ``len(keeps) + 1`` tensors, finest scale first; piece ``i`` has spatial size ``H / 2**(i+1)``
        (the last piece the size of the coarsest scale).
    """
    pieces = []
    current = z
    for keep in keeps:
        current = squeeze2d(current)
        pieces.append(current[:, keep:])
        current = current[:, :keep]
    pieces.append(current)
    return pieces
