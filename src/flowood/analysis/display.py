"""Turning flow tensors of any layout into image panels.

Flow internals live on squeezed grids: a coupling at scale ``k`` sees ``(C·4^k, H/2^k, W/2^k)`` and the per-scale
latent pieces have ``2C``-ish channels at reduced resolution. To show them next to the input we undo squeezes
(depth-to-space) while the channel count allows it, and tile whatever channels remain into a mosaic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from flowood.flows.reshape import unsqueeze2d

BACKGROUND = "#FFFFFF"
"""Colour of gaps between mosaic tiles."""
HIDDEN_COLOUR = "#F08A8A"
"""Entries a coupling transforms, hidden from its st-network (masked-input panel)."""
UNSEEN_COLOUR = "#C8C8C8"
"""Entries neither seen by the st-network nor transformed (quadrant masks: the two other quadrants)."""
UNCHANGED_COLOUR = "#A6A6A6"
"""Entries a coupling leaves unchanged (s and t panels, where s = t = 0 by construction)."""


def to_image_grid(t: Tensor, image_channels: int) -> Tensor:
    """Undo 2×2 squeezes while the channel count is a multiple of ``4·image_channels``.

    Args:
        t: ``(C, H, W)`` tensor on some (possibly squeezed) grid.
        image_channels: channels of the flow's input image (1 or 3).

    Returns:
        ``(C', H', W')`` with ``C' = C / 4^k`` and ``H' = H·2^k`` for the largest feasible ``k``; a coupling
        input of shape ``(4C, H/2, W/2)`` comes back as ``(C, H, W)``.
    """
    t = t.detach().to("cpu", torch.float32)
    while t.shape[0] > image_channels and t.shape[0] % (4 * image_channels) == 0:
        t = unsqueeze2d(t.unsqueeze(0))[0]
    return t


def mosaic(t: Tensor | np.ndarray, group: int = 1, gap: int = 1) -> np.ndarray:
    """Tile ``(C, H, W)`` channels (in groups of ``group``) into a near-square grid.

    Returns:
        ``(H2, W2)`` for ``group == 1`` or ``(H2, W2, group)``; gaps between tiles are NaN so that they render
        in the colormap's "bad" colour instead of a value.
    """
    a = t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)
    a = a.astype(np.float64, copy=False)
    c, h, w = a.shape
    if c % group:
        raise ValueError(f"cannot group {c} channels by {group}")
    n = c // group
    if n == 1:
        tile = a if group > 1 else a[0]
        return np.moveaxis(tile, 0, -1) if group > 1 else tile
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, group), np.nan)
    for i in range(n):
        r, col = divmod(i, cols)
        y0, x0 = r * (h + gap), col * (w + gap)
        out[y0 : y0 + h, x0 : x0 + w] = np.moveaxis(a[i * group : (i + 1) * group], 0, -1)
    return out[..., 0] if group == 1 else out


def normalise(a: np.ndarray, signed: bool = False, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Map values into ``[0, 1]`` robustly (percentile clipping, NaN/inf ignored and kept as NaN).

    ``signed=True`` keeps 0 at 0.5 (for s and t, whose sign matters); constant inputs map to 0.5.
    """
    a = np.where(np.isfinite(a), a, np.nan)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.full_like(a, np.nan)
    if signed:
        m = float(np.percentile(np.abs(finite), hi_pct))
        return np.clip(0.5 + 0.5 * a / m, 0.0, 1.0) if m > 0 else np.where(np.isnan(a), np.nan, 0.5)
    lo, hi = np.percentile(finite, [lo_pct, hi_pct])
    if hi <= lo:
        return np.where(np.isnan(a), np.nan, 0.5)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _layout(t: Tensor, image_channels: int, signed: bool) -> np.ndarray:
    """Unsqueeze + tile without normalising: ``(H', W')`` or ``(H', W', 3)``."""
    g = to_image_grid(t, image_channels)
    if signed and image_channels == 3 and g.shape[0] % 3 == 0:
        g = g.reshape(g.shape[0] // 3, 3, *g.shape[1:]).mean(dim=1)
    group = 3 if (image_channels == 3 and g.shape[0] % 3 == 0 and not signed) else 1
    return mosaic(g, group=group)


def _mask_pixels(mask: Tensor, image_channels: int, signed: bool) -> np.ndarray:
    """Boolean ``(H', W')``: where a ``(C, H, W)`` mask is set after the same unsqueeze + tiling as the values."""
    h = np.nan_to_num(_layout(mask.to(torch.float32), image_channels, signed))
    return (h.max(axis=-1) if h.ndim == 3 else h) > 0.5


def panel_image(t: Tensor, image_channels: int, *, signed: bool = False, hidden: Tensor | None = None) -> np.ndarray:
    """A displayable array in ``[0, 1]`` for one sample's tensor ``(C, H, W)``: ``(H', W')`` or ``(H', W', 3)``.

    RGB is used only when the (unsqueezed) tensor has exactly 3 channels per tile and values are unsigned;
    signed maps (s, t) of colour images show the channel mean so that the diverging colormap stays readable.
    Entries where ``hidden`` (boolean, like ``t``) is True become NaN and are left out of the normalisation.
    """
    img = _layout(t, image_channels, signed)
    if hidden is not None:
        px = _mask_pixels(hidden, image_channels, signed)
        if px.shape == img.shape[:2]:
            img = img.copy()
            img[px] = np.nan
    return normalise(img, signed=signed)


def show_panel(
    ax: Axes,
    t: Tensor,
    image_channels: int,
    *,
    signed: bool = False,
    overlays: Sequence[tuple[Tensor, str]] = (),
) -> float | None:
    """Draw one sample's tensor on ``ax`` (ticks hidden); for ``signed`` panels return the value ``m`` drawn at
    the ends of the colormap (``-m`` blue, ``+m`` red: the 99th percentile of ``|value|``), for a colourbar.

    Args:
        t: ``(C, H, W)`` values.
        signed: use the diverging ``RdBu_r`` colormap centred on 0 (for s and t); grey otherwise.
        overlays: ``(mask, colour)`` pairs, masks boolean ``(C, H, W)``: entries where a mask is set are painted
            in its colour instead of a value and left out of the normalisation (e.g. the entries a coupling's
            st-network does not see). Later pairs paint over earlier ones.
    """
    union = None
    for mask, _ in overlays:
        union = mask.bool() if union is None else union | mask.bool()
    img = panel_image(t, image_channels, signed=signed, hidden=union)
    if img.ndim == 3:
        rgb = np.clip(np.nan_to_num(img), 0.0, 1.0)
        gaps = np.isnan(img).any(axis=-1)
    else:
        rgb = matplotlib.colormaps["RdBu_r" if signed else "gray"](np.nan_to_num(img, nan=0.5))[..., :3]
        gaps = np.isnan(img)
    rgb[gaps] = _hex_to_rgb(BACKGROUND)  # tile gaps; overlay entries are repainted below
    for mask, colour in overlays:
        px = _mask_pixels(mask, image_channels, signed)
        if px.shape == rgb.shape[:2]:
            rgb[px] = _hex_to_rgb(colour)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if not signed:
        return None
    raw = _layout(t, image_channels, signed)
    if union is not None:
        px = _mask_pixels(union, image_channels, signed)
        if px.shape == raw.shape[:2]:
            raw = raw.copy()
            raw[px] = np.nan
    finite = raw[np.isfinite(raw)]
    return float(np.percentile(np.abs(finite), 99.0)) if finite.size else None


def add_signed_colourbar(ax: Axes, m: float | None) -> None:
    """A slim colourbar beside ``ax`` for a signed panel drawn by :func:`show_panel` (values ``-m .. m``)."""
    if m is None or not m > 0:
        return
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = ax.figure.colorbar(
        ScalarMappable(norm=Normalize(-m, m), cmap="RdBu_r"), ax=ax, fraction=0.046, pad=0.02, ticks=[-m, 0.0, m]
    )
    bar.ax.tick_params(labelsize=7, length=2)
    bar.ax.set_yticklabels([f"{-m:.2g}", "0", f"{m:.2g}"])


def _hex_to_rgb(colour: str) -> tuple[float, float, float]:
    c = colour.lstrip("#")
    return int(c[0:2], 16) / 255.0, int(c[2:4], 16) / 255.0, int(c[4:6], 16) / 255.0
