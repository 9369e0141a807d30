"""Latent representations on the image grid (paper claim 2).

A flow's latent ``z = f(x)`` keeps all ``D`` dimensions of ``x``. Reshaped back onto the input grid (and, for
multi-scale flows, split into the pieces factored out at each scale) it still looks like the input, for
in-distribution and OOD images alike: the flow has learned local pixel correlations, not semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowood.analysis.display import show_panel
from flowood.analysis.style import (
    dataset_color,
    figure_style,
    figure_title,
    grid_figsize,
    layout_panel_grid,
    new_figure,
    save_figure,
)
from flowood.flows.flow import NormalizingFlow


@dataclass
class LatentViews:
    """Latents of a batch of images.

    Attributes:
        inputs: ``(N, C, H, W)`` flow inputs (logit space for image flows).
        z: ``(N, C, H, W)`` latents on the input grid.
        pieces: per-scale latent pieces, finest first, each ``(N, C_i, H_i, W_i)``.
    """

    inputs: Tensor
    z: Tensor
    pieces: list[Tensor]


@torch.no_grad()
def compute_latents(flow: NormalizingFlow, images: Tensor, noise: Tensor | None = None) -> LatentViews:
    """Map images in ``[0, 1]`` (``(N, C, H, W)``) through preprocessing and the flow (``noise``: the
    dequantisation noise, as in :meth:`~flowood.flows.flow.NormalizingFlow.preprocess_images`; default drawn)."""
    if flow.preprocess is None:
        raise ValueError(f"{flow.name} flow has no image preprocessing; latent images need an image flow")
    x, _ = flow.preprocess_images(images.to(torch.float32), noise)
    z, _ = flow(x)
    return LatentViews(inputs=x, z=z, pieces=flow.split_latent(z))


def latent_input_correlation(flow: NormalizingFlow, images: Tensor, noise: Tensor | None = None) -> np.ndarray:
    """``(N,)`` Pearson correlation, per image, between the flow's input ``x`` (logit space) and its latent ``z`` on
    the same grid (claim 2's number: near 1 when the latent still looks like the image, near 0 when it does not).

    Args:
        flow: an image flow in eval mode.
        images: ``(N, C, H, W)`` in ``[0, 1]``.
        noise: dequantisation noise like ``images`` (default: drawn).
    """
    views = compute_latents(flow, images, noise)
    x = views.inputs.flatten(1).double().cpu().numpy()
    z = views.z.flatten(1).double().cpu().numpy()
    xc, zc = x - x.mean(1, keepdims=True), z - z.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant image has no correlation: NaN
        return (xc * zc).sum(1) / np.sqrt((xc**2).sum(1) * (zc**2).sum(1))


def latent_columns(flow: NormalizingFlow) -> list[str]:
    """Column titles of :func:`plot_latents`: input, full z, then one per scale (if more than one)."""
    n_scales = len(flow.latent_keeps) + 1
    cols = ["input", "z"]
    if n_scales > 1:
        cols += [f"z, scale {i + 1}" for i in range(n_scales)]
    return cols


def latent_figsize(flow: NormalizingFlow, num_rows: int) -> tuple[float, float]:
    """Inches ``(width, height)`` of the latent figure for ``num_rows`` example rows."""
    return grid_figsize(num_rows, len(latent_columns(flow)))


def plot_latents(
    flow: NormalizingFlow,
    datasets: dict[str, Tensor],
    path: str | Path,
    *,
    num_examples: int = 4,
    title: str | None = None,
) -> Path:
    """Figure: rows = examples (grouped by dataset), columns = input, full z, z per scale.

    Args:
        flow: an image flow in eval mode.
        datasets: name → images ``(N, C, H, W)`` in ``[0, 1]``; the first ``num_examples`` of each are shown.
        path: PNG to write.
        num_examples: rows per dataset.
        title: figure title (default names the architecture).

    Each panel is normalised on its own (1st-99th percentile → black-white): the point is the *structure* of z,
    whose scale differs from the input's. Per-scale pieces with more channels than the image are tiled.
    """
    c = flow.input_shape[0]
    rows: list[tuple[str, int, Tensor, Tensor, list[Tensor]]] = []
    for name, images in datasets.items():
        views = compute_latents(flow, images[:num_examples])
        for i in range(views.z.shape[0]):
            rows.append((name, i, views.inputs[i], views.z[i], [p[i] for p in views.pieces]))
    if not rows:
        raise ValueError("plot_latents needs at least one image")
    cols = latent_columns(flow)
    with figure_style():
        fig = new_figure(*latent_figsize(flow, len(rows)))
        axes = fig.subplots(len(rows), len(cols), squeeze=False)
        for r, (name, i, x, z, pieces) in enumerate(rows):
            panels = [x, z] + (pieces if len(cols) > 2 else [])
            for col, t in enumerate(panels):
                show_panel(axes[r][col], t, c)
                if r == 0:
                    axes[r][col].set_title(cols[col], fontsize=11)
            axes[r][0].set_ylabel(f"{name}\n#{i}", color=dataset_color(name), rotation=0, ha="right", va="center")
        figure_title(fig, title or f"{flow.name}: latents z = f(x) on the image grid")
        layout_panel_grid(fig)
        return save_figure(fig, path)
