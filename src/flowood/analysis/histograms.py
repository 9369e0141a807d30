"""Bits/dim histograms of several datasets in one figure (paper Figure 1), and the scores behind them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowood.analysis.style import BPD_LABEL, dataset_color, figure_style, new_figure, save_figure

HISTOGRAM_FIGSIZE = (8.0, 4.8)
"""Inches ``(width, height)`` of :func:`plot_bpd_histograms` figures."""


def histogram_label(name: str, values: np.ndarray) -> str:
    """Legend entry: ``"mnist (n=1000, median 2.24, 3 non-finite)"``; non-finite values are counted, not binned."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    fin = a[np.isfinite(a)]
    n_bad = int(a.size - fin.size)
    label = f"{name} (n={a.size}"
    label += f", median {np.median(fin):.2f}" if fin.size else ""
    return label + (f", {n_bad} non-finite)" if n_bad else ")")


def plot_bpd_histograms(
    scores: dict[str, np.ndarray],
    path: str | Path,
    title: str,
    *,
    bins: int = 50,
    xlabel: str = BPD_LABEL,
) -> Path:
    """Overlaid, area-normalised bits/dim histograms, one colour per dataset.

    Args:
        scores: dataset name → per-sample bits/dim (any shape, flattened).
        path: PNG to write (size :data:`HISTOGRAM_FIGSIZE` × DPI).
        title: figure title.
        bins: number of shared bins spanning the finite values of all datasets (minimum to 99.5th percentile, so a
            few diverged samples do not squash the plot; values beyond are clipped into the edge bins).

    Non-finite values (NaN, ±inf: e.g. a diverged flow) are left out of the bins but counted in the legend,
    ``"mnist (n=1000, median 2.24, 3 non-finite)"``, so a silent failure still shows.
    """
    if not scores:
        raise ValueError("plot_bpd_histograms needs at least one dataset")
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    finite_all = np.concatenate([a[np.isfinite(a)] for a in arrays.values()])
    with figure_style():
        fig = new_figure(*HISTOGRAM_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        if finite_all.size:
            lo, hi = (
                np.percentile(finite_all, [0.0, 99.5])
                if finite_all.size > 200
                else (finite_all.min(), finite_all.max())
            )
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
        else:
            edges = np.linspace(0.0, 1.0, bins + 1)
        for name, a in arrays.items():
            fin = a[np.isfinite(a)]
            label = histogram_label(name, a)
            colour = dataset_color(name)
            if fin.size:
                clipped = np.clip(fin, edges[0], edges[-1])
                ax.hist(clipped, bins=edges.tolist(), density=True, color=colour, alpha=0.35, label=label)
                ax.hist(clipped, bins=edges.tolist(), density=True, color=colour, histtype="step", linewidth=1.6)
            else:
                # Keep the dataset in the legend even when every score is non-finite.
                ax.plot([], [], color=colour, linewidth=6, alpha=0.35, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend(loc="best", frameon=False)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.13)
        return save_figure(fig, path)
