"""Coupling masks: which entries condition the st-network and which entries it transforms.

A spatial/tabular mask is a pair of binary tensors broadcastable to one sample:

* ``cond``: 1 where the entry is fed to the st-network (kept unchanged by the layer);
* ``change``: 1 where the entry is transformed. ``cond * change == 0`` always.

For checkerboard, horizontal, vertical and tabular masks ``change = 1 - cond``. The quadrant mask of
the paper's cycle-mask model conditions on one quadrant and transforms only the next one.
The channel-wise mask is not a tensor: the coupling splits channels in halves instead
(see :class:`flowood.flows.coupling.AffineCoupling`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

MASK_TYPES = ("checkerboard", "channel", "horizontal", "vertical", "quadrant", "tabular")

# Quadrants are numbered clockwise from the top-left, as in the original cycle-mask code:
# 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
_QUADRANT_SLICES = {
    0: (slice(0, 1), slice(0, 1)),
    1: (slice(0, 1), slice(1, 2)),
    2: (slice(1, 2), slice(1, 2)),
    3: (slice(1, 2), slice(0, 1)),
}


def _quadrant(quadrant: int, shape: Sequence[int]) -> Tensor:
    c, h, w = shape
    if quadrant not in _QUADRANT_SLICES:
        raise ValueError(f"quadrant must be 0, 1, 2 or 3, got {quadrant}")
    mask = torch.zeros(1, c, h, w)
    rows, cols = _QUADRANT_SLICES[quadrant]
    hs, ws = h // 2, w // 2
    r0, r1 = rows.start * hs, (h if rows.stop == 2 else hs)
    c0, c1 = cols.start * ws, (w if cols.stop == 2 else ws)
    mask[:, :, r0:r1, c0:c1] = 1.0
    return mask


def build_mask(kind: str, shape: Sequence[int], parity: int = 0, quadrant: int = 0) -> tuple[Tensor, Tensor]:
    """Return ``(cond, change)`` masks of shape ``(1, *shape)``.

    Args:
        kind: one of ``checkerboard``, ``horizontal``, ``vertical``, ``quadrant``, ``tabular``.
        shape: ``(C, H, W)`` for images, ``(D,)`` for ``tabular``.
        parity: 0 or 1; 1 swaps the roles of the two halves. For ``checkerboard``, parity 0 transforms
            the entries with ``(row + col)`` even (the top-left one included) and conditions on the odd
            ones, as the original code's ``MaskCheckerboard(reverse_mask=False)``; parity 1 is its
            ``reverse_mask=True``. For ``quadrant``, parity 0 transforms quadrant ``quadrant + 1`` and
            parity 1 quadrant ``quadrant - 1`` (mod 4).
        quadrant: the conditioning quadrant for ``kind="quadrant"``.
    """
    if parity not in (0, 1):
        raise ValueError(f"mask parity must be 0 or 1, got {parity}")
    shape = tuple(int(s) for s in shape)
    if kind == "tabular":
        if len(shape) != 1:
            raise ValueError(f"tabular mask needs a vector shape (D,), got {shape}")
        (d,) = shape
        if d < 2:
            raise ValueError(f"a coupling layer needs at least 2 dimensions, got D={d}")
        cond = torch.zeros(1, d)
        half = d // 2
        if parity == 0:
            cond[:, :half] = 1.0
        else:
            cond[:, half:] = 1.0
        return cond, 1.0 - cond
    if len(shape) != 3:
        raise ValueError(f"{kind} mask needs an image shape (C, H, W), got {shape}")
    c, h, w = shape
    if kind == "checkerboard":
        ii = torch.arange(h).view(h, 1)
        jj = torch.arange(w).view(1, w)
        # Conditioning entries: (row + col) odd for parity 0. flowood <= 0.1 used the opposite colour, which
        # computes a different function from the original's weights (measured: up to 4,000 nats apart).
        cond = ((ii + jj) % 2 == 1 - parity).to(torch.float32).expand(c, h, w).unsqueeze(0).clone()
        return cond, 1.0 - cond
    if kind == "horizontal":
        cond = torch.zeros(1, c, h, w)
        if parity == 0:
            cond[:, :, : h // 2, :] = 1.0
        else:
            cond[:, :, h // 2 :, :] = 1.0
        return cond, 1.0 - cond
    if kind == "vertical":
        cond = torch.zeros(1, c, h, w)
        if parity == 0:
            cond[:, :, :, : w // 2] = 1.0
        else:
            cond[:, :, :, w // 2 :] = 1.0
        return cond, 1.0 - cond
    if kind == "quadrant":
        target = (quadrant + (1 if parity == 0 else -1)) % 4
        return _quadrant(quadrant, shape), _quadrant(target, shape)
    raise ValueError(f"unknown mask type {kind!r}; choose from {', '.join(MASK_TYPES)}")
