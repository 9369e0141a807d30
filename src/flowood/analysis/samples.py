"""Sample grids at several temperatures (lower temperature = base std scaled down = smoother, likelier samples)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from flowood.analysis.style import figure_style, figure_title, new_figure, save_figure
from flowood.flows.flow import NormalizingFlow

DEFAULT_TEMPERATURES = (1.0, 0.7, 0.5)
_PANEL_IN = 3.2


def samples_figsize(num_temperatures: int) -> tuple[float, float]:
    """Inches ``(width, height)`` of the sample figure: one square panel per temperature plus a title band."""
    return 0.2 + num_temperatures * _PANEL_IN, _PANEL_IN + 0.9


@torch.no_grad()
def sample_grid(
    flow: NormalizingFlow, num_samples: int, temperature: float, generator: torch.Generator | None = None
) -> np.ndarray:
    """``num_samples`` images drawn at ``temperature`` tiled by ``make_grid``: ``(H', W', 3)`` floats in ``[0, 1]``.

    Non-finite samples (a diverged flow inverts to inf/NaN) are drawn black rather than poisoning the grid.
    """
    images = flow.sample_images(num_samples, temperature=temperature, generator=generator).float().cpu()
    images = torch.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    nrow = max(1, math.ceil(math.sqrt(num_samples)))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def plot_samples(
    flow: NormalizingFlow,
    path: str | Path,
    *,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    num_samples: int = 16,
    seed: int = 0,
) -> Path:
    """Figure with one sample grid per temperature (same seed for each, so rows differ only by temperature)."""
    if flow.preprocess is None:
        raise ValueError(f"{flow.name} flow has no image preprocessing; sample grids need an image flow")
    temps = list(temperatures)
    with figure_style():
        fig = new_figure(*samples_figsize(len(temps)))
        axes = fig.subplots(1, len(temps), squeeze=False)[0]
        for ax, temp in zip(axes, temps, strict=True):
            gen = torch.Generator().manual_seed(seed)
            ax.imshow(sample_grid(flow, num_samples, temp, gen), interpolation="nearest")
            ax.set_title(f"T = {temp:g}")
            ax.set_axis_off()
        figure_title(fig, f"{flow.name}: samples at temperature T (base std × T)")
        fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.8 / fig.get_figheight(), bottom=0.03, wspace=0.05)
        return save_figure(fig, path)
