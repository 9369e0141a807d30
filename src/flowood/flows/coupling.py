"""Affine coupling layers with bounded log-scales."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from flowood.flows.base import InvertibleModule, float32_region, full_precision
from flowood.flows.masks import build_mask


class Rescale(nn.Module):
    """Learned per-channel (or per-feature) factor ``w`` in ``s = w · tanh(raw)``."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(*shape))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x


class CouplingInternals(NamedTuple):
    """What one coupling layer computes, full-sized like its input (for analysis and figures).

    ``cond_input`` is what the st-network sees, ``s``/``t`` are zero outside the transformed entries.
    """

    cond_input: Tensor
    s: Tensor
    t: Tensor
    output: Tensor


def _logdet_sum(s: Tensor) -> Tensor:
    # Reduce in at least fp32 so low-precision activations do not lose log-det accuracy.
    return s.flatten(1).sum(dim=1, dtype=torch.promote_types(s.dtype, torch.float32))


class AffineCoupling(InvertibleModule):
    """Affine coupling ``y_change = (x_change + t) · exp(s)``, ``s = w · tanh(raw_s)``.

    ``(raw_s, t)`` come from an st-network applied to the conditioning entries, which pass through
    unchanged, so ``logdet = Σ s`` over the transformed entries.

    Args:
        mask: ``checkerboard``, ``channel``, ``horizontal``, ``vertical``, ``quadrant`` or ``tabular``.
        shape: per-sample input shape, ``(C, H, W)`` or ``(D,)``.
        st_net_factory: called with ``(in_channels, out_channels)`` and returns the st-network;
            ``in_channels`` is ``C`` (``C/2`` for the channel mask, ``D`` for tabular) and
            ``out_channels`` twice that.
        parity: 0 or 1, which half conditions (see :func:`flowood.flows.masks.build_mask`).
        quadrant: conditioning quadrant for the quadrant mask.
    """

    cond: Tensor
    change: Tensor

    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)

    def __init__(
        self,
        mask: str,
        shape: Sequence[int],
        st_net_factory,
        parity: int = 0,
        quadrant: int = 0,
    ) -> None:
        super().__init__()
        self.mask_type = mask
        self.parity = parity
        self.shape = tuple(shape)
        if mask == "channel":
            if len(self.shape) != 3 or self.shape[0] % 2:
                raise ValueError(f"channel mask needs (C, H, W) with even C, got {self.shape}")
            net_in = self.shape[0] // 2
            self.rescale = weight_norm(Rescale((net_in, 1, 1)))
        else:
            cond, change = build_mask(mask, self.shape, parity=parity, quadrant=quadrant)
            self.register_buffer("cond", cond, persistent=False)
            self.register_buffer("change", change, persistent=False)
            net_in = self.shape[0]
            self.rescale = weight_norm(Rescale((net_in, 1, 1) if len(self.shape) == 3 else (net_in,)))
        self.st_net = st_net_factory(net_in, 2 * net_in)

    def _split_channels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(x_change, x_id)``."""
        a, b = x.chunk(2, dim=1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join_channels(self, x_change: Tensor, x_id: Tensor) -> Tensor:
        return torch.cat((x_change, x_id) if self.parity == 0 else (x_id, x_change), dim=1)

    def _st(self, cond_input: Tensor) -> tuple[Tensor, Tensor]:
        # The st-network may run under autocast (bf16/fp16); s and t are upcast before they touch the
        # flow's state, and everything after this point runs with autocast off (see float32_region).
        out = self.st_net(cond_input)
        with float32_region(out):
            raw_s, t = full_precision(out).chunk(2, dim=1)
            s = self.rescale(torch.tanh(raw_s))
        return s, t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.mask_type == "channel":
            x_change, x_id = self._split_channels(x)
            s, t = self._st(x_id)
            with float32_region(x):
                y_change = (x_change + t) * s.exp()
                return self._join_channels(y_change, x_id), _logdet_sum(s)
        s, t = self._st(x * self.cond)
        with float32_region(x):
            s = s * self.change
            t = t * self.change
            return (x + t) * s.exp(), _logdet_sum(s)

    def inverse(self, y: Tensor) -> Tensor:
        if self.mask_type == "channel":
            y_change, y_id = self._split_channels(y)
            s, t = self._st(y_id)
            with float32_region(y):
                return self._join_channels(y_change * (-s).exp() - t, y_id)
        s, t = self._st(y * self.cond)
        with float32_region(y):
            s = s * self.change
            t = t * self.change
            return y * (-s).exp() - t

    def reconstruct(self, y: Tensor) -> tuple[tuple[Tensor, ...], Tensor, Tensor, Tensor]:
        """The input of output ``y`` rebuilt and the forward recomputed under autograd, the st-network run once.

        For :mod:`flowood.flows.invert`: the conditioning entries of ``y`` are those of the input (they pass through
        unchanged), so ``s`` and ``t`` are computed once, from a leaf standing for them, and serve both the inverse
        and the recomputed forward (the generic path runs the st-network twice). Returns ``(leaves, x, y_again,
        logdet)``: two full-shaped leaves whose gradients add up to the input's (each is used only on its own
        entries), the rebuilt input ``x`` (no graph), and the recomputed forward ``(y_again, logdet)``.
        """
        cond_leaf = y.detach().requires_grad_(True)
        if self.mask_type == "channel":
            y_change, _ = self._split_channels(y.detach())
            _, x_id = self._split_channels(cond_leaf)
            s, t = self._st(x_id)
            with float32_region(y):
                x_change = (y_change * (-s.detach()).exp() - t.detach()).detach()
                change_leaf = self._join_channels(x_change, torch.zeros_like(x_id)).requires_grad_(True)
                x_change_in, _ = self._split_channels(change_leaf)
                y_again = self._join_channels((x_change_in + t) * s.exp(), x_id)
                x = self._join_channels(x_change, x_id.detach())
                return (cond_leaf, change_leaf), x, y_again, _logdet_sum(s)
        x_cond = cond_leaf * self.cond
        s, t = self._st(x_cond)
        with float32_region(y):
            s = s * self.change
            t = t * self.change
            x_hat = (y.detach() * (-s.detach()).exp() - t.detach()).detach()
            change_leaf = x_hat.requires_grad_(True)
            # The entries outside ``change`` pass through (the conditioning ones and, for the quadrant mask, two more
            # quadrants); each leaf is used on its own entries only, and the sum is x_hat exactly (one term is 0).
            x = cond_leaf * (1 - self.change) + change_leaf * self.change
            y_again = (x + t) * s.exp()
            return (cond_leaf, change_leaf), x_hat, y_again, _logdet_sum(s)

    @torch.no_grad()
    def internals(self, x: Tensor) -> CouplingInternals:
        """The st-network's view and outputs for input ``x``, placed on the input's grid."""
        if self.mask_type == "channel":
            x_change, x_id = self._split_channels(x)
            s, t = self._st(x_id)
            zeros = torch.zeros_like(x_id)
            y = self._join_channels((x_change + t) * s.exp(), x_id)
            return CouplingInternals(
                cond_input=self._join_channels(zeros, x_id),
                s=self._join_channels(s, zeros),
                t=self._join_channels(t, zeros),
                output=y,
            )
        cond_input = x * self.cond
        s, t = self._st(cond_input)
        s = s * self.change
        t = t * self.change
        return CouplingInternals(cond_input=cond_input, s=s, t=t, output=(x + t) * s.exp())
