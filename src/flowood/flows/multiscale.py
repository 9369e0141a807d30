"""Multi-scale architecture: factor out half of the variables after each scale."""

from __future__ import annotations

import torch
from torch import Tensor

from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.reshape import Squeeze, Unsqueeze, squeeze2d

__all__ = [
    "FactorOut",
    "Unsqueeze",
    "innermost_scale_squeezes",
    "original_order_latent",
    "split_latent_scales",
]  # Unsqueeze re-exported: it lived here until 0.2


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

    Against the original code (``flow_ssl``): its latent is the concatenation, in this same order, of
    the pieces it factors out and of what is left at the end, each flattened in ``(C, H, W)`` order. The
    pieces agree with these except the last one for flows whose coarsest scale starts with a squeeze
    (Glow): the original leaves that piece squeezed, ``(4·C, H/2, W/2)``, where this function returns
    it on the grid of the scale before. :func:`original_order_latent` gives the original's vector.
    """
    pieces = []
    current = z
    for keep in keeps:
        current = squeeze2d(current)
        pieces.append(current[:, keep:])
        current = current[:, :keep]
    pieces.append(current)
    return pieces


def innermost_scale_squeezes(transform: InvertibleModule) -> int:
    """How many squeezes open the coarsest scale of a multi-scale ``transform`` (0 for RealNVP, 1 for Glow).

    The coarsest scale is the body of the innermost :class:`FactorOut` (the whole transform when it
    has none); its leading :class:`~flowood.flows.reshape.Squeeze` layers are undone by the trailing
    unsqueezes, so :func:`split_latent_scales` returns its piece unsqueezed.
    """
    current: InvertibleModule = transform
    while True:
        inner = _factor_out_in(current)
        if inner is None:
            break
        current = inner
    count = 0
    if isinstance(current, FlowSequential):
        for layer in current:
            if not isinstance(layer, Squeeze):
                break
            count += 1
    elif isinstance(current, Squeeze):
        count = 1
    return count


def _factor_out_in(module: InvertibleModule) -> InvertibleModule | None:
    if isinstance(module, FactorOut):
        return module.inner
    if isinstance(module, FlowSequential):
        for layer in module:
            if isinstance(layer, FactorOut):
                return layer.inner
    return None


def original_order_latent(z: Tensor, keeps: list[int], last_squeezes: int = 0) -> Tensor:
    """The latent ``z (B, C, H, W)`` as the original code's flat ``(B, D)`` vector.

    Args:
        z: latent on the input grid (what :meth:`NormalizingFlow.forward` returns).
        keeps: the flow's ``latent_keeps``.
        last_squeezes: squeezes the original applies to the last piece
            (:func:`innermost_scale_squeezes`).
    """
    pieces = split_latent_scales(z, keeps) if keeps else [z]
    last = pieces[-1]
    for _ in range(last_squeezes):
        last = squeeze2d(last)
    pieces[-1] = last
    return torch.cat([p.reshape(p.shape[0], -1) for p in pieces], dim=1)
