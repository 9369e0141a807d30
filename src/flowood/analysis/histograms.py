"""Bits/dim histograms of several datasets in one figure (paper Figure 1), and the scores behind them."""

from __future__ import annotations

import re
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


def histogram_range(arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    """Shared plotted range: the finite values' minimum to 99.5th percentile (> 200 values), so a few diverged
    samples do not squash the plot; the values beyond are drawn as overflow markers, not binned."""
    finite_all = np.concatenate([a[np.isfinite(a)] for a in arrays.values()])
    if not finite_all.size:
        return 0.0, 1.0
    lo, hi = (
        (float(np.percentile(finite_all, 0.0)), float(np.percentile(finite_all, 99.5)))
        if finite_all.size > 200
        else (float(finite_all.min()), float(finite_all.max()))
    )
    return (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)


def histogram_overflow(scores: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    """Per set, how many finite values lie below / above the range :func:`plot_bpd_histograms` draws on a
    linear axis (the counts its overflow markers show)."""
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    lo, hi = histogram_range(arrays)
    out = {}
    for name, a in arrays.items():
        fin = a[np.isfinite(a)]
        out[name] = (int((fin < lo).sum()), int((fin > hi).sum()))
    return out


def _in_distribution_name(scores: dict[str, np.ndarray], title: str, given: str | None) -> str | None:
    if given is not None:
        return given if given in scores else None
    # Callers title the figure "<flow> trained on <dataset>": that dataset is the in-distribution one.
    match = re.search(r"trained on (\S+)", title)
    return match.group(1) if match and match.group(1) in scores else None


def _spread_is_extreme(arrays: dict[str, np.ndarray], in_name: str | None) -> bool:
    """True when one set lies so far from the others (vector flows: bits/dim of 10³ next to 1) that a linear
    axis would show the in-distribution set as a single bar."""
    fins = {k: a[np.isfinite(a)] for k, a in arrays.items() if np.isfinite(a).any()}
    if len(fins) < 2:
        return False
    ref = fins[in_name] if in_name is not None and in_name in fins else next(iter(fins.values()))
    q1, q3 = np.percentile(ref, [25, 75])
    width = max(float(q3 - q1), 1e-12)
    medians = [float(np.median(v)) for v in fins.values()]
    return (max(medians) - min(medians)) / width > 200.0


def plot_bpd_histograms(
    scores: dict[str, np.ndarray],
    path: str | Path,
    title: str,
    *,
    bins: int = 50,
    xlabel: str = BPD_LABEL,
    in_distribution: str | None = None,
) -> Path:
    """Overlaid bits/dim histograms, one colour per dataset, each normalised to its own finite count.

    Args:
        scores: dataset name → per-sample bits/dim (any shape, flattened).
        path: PNG to write (size :data:`HISTOGRAM_FIGSIZE` × DPI).
        title: figure title.
        bins: number of shared bins over :func:`histogram_range`.
        in_distribution: the in-distribution set, marked so in the legend; default: the dataset named in a
            ``"... trained on NAME"`` title.

    Values beyond the plotted range are not piled into the edge bins (that drew a fake spike): each set's
    count beyond the range is an arrow marker at the edge with ``+k``, and the bars cover only what lies
    inside (so their area is the fraction of the set inside the range). When the sets lie orders of magnitude
    apart (vector flows) the x-axis is ``symlog`` and each bar the set's fraction in that bin, so every set
    stays readable. Non-finite
    values (NaN, ±inf: e.g. a diverged flow) are counted in the legend, ``"mnist (n=1000, median 2.24,
    3 non-finite)"``, so a silent failure still shows.
    """
    if not scores:
        raise ValueError("plot_bpd_histograms needs at least one dataset")
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    in_name = _in_distribution_name(arrays, title, in_distribution)
    extreme = _spread_is_extreme(arrays, in_name)
    if extreme:
        finite_all = np.concatenate([a[np.isfinite(a)] for a in arrays.values()])
        lo, hi = float(finite_all.min()), float(finite_all.max())
        edges = _symlog_edges(lo, hi, bins, linthresh=_linthresh(arrays, in_name))
    else:
        lo, hi = histogram_range(arrays)
        edges = np.linspace(lo, hi, bins + 1)
    with figure_style():
        fig = new_figure(*HISTOGRAM_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        overflow: list[tuple[str, int, int]] = []
        for name, a in arrays.items():
            fin = a[np.isfinite(a)]
            label = histogram_label(name, a)
            if name == in_name:
                label = f"{label} - in-distribution"
            colour = dataset_color(name)
            if fin.size:
                inside = fin[(fin >= edges[0]) & (fin <= edges[-1])]
                counts, _ = np.histogram(inside, bins=edges)
                # Symlog bins differ in width by orders of magnitude: there, each bar is the set's fraction.
                dens = counts / fin.size if extreme else counts / (fin.size * np.diff(edges))
                ax.stairs(dens, edges, fill=True, color=colour, alpha=0.35, label=label)
                ax.stairs(dens, edges, color=colour, linewidth=1.6)
                overflow.append((name, int((fin < edges[0]).sum()), int((fin > edges[-1]).sum())))
            else:
                # Keep the dataset in the legend even when every score is non-finite.
                ax.plot([], [], color=colour, linewidth=6, alpha=0.35, label=label)
        if extreme:
            ax.set_xscale("symlog", linthresh=_linthresh(arrays, in_name))
        ax.set_ylim(0.0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
        _draw_overflow(ax, overflow, edges)
        ax.set_xlabel(xlabel + (" (symlog axis)" if extreme else ""))
        ax.set_ylabel("fraction of the set per bin" if extreme else "density")
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False, fontsize=8)
        fig.subplots_adjust(left=0.1, right=0.95, top=0.9, bottom=0.13)
        return save_figure(fig, path)


def _linthresh(arrays: dict[str, np.ndarray], in_name: str | None) -> float:
    ref = arrays.get(in_name) if in_name in arrays else next(iter(arrays.values()))
    fin = ref[np.isfinite(ref)] if ref is not None else np.array([])
    return max(float(np.median(np.abs(fin))) if fin.size else 1.0, 1e-3)


def _symlog_edges(lo: float, hi: float, bins: int, linthresh: float) -> np.ndarray:
    """Bin edges evenly spaced on a symlog axis (so bars have equal width on screen)."""

    def fwd(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log10(1.0 + np.abs(x) / linthresh)

    def inv(y: np.ndarray) -> np.ndarray:
        return np.sign(y) * linthresh * (10.0 ** np.abs(y) - 1.0)

    edges = inv(np.linspace(fwd(np.array(lo)), fwd(np.array(hi)), bins + 1))
    edges[0], edges[-1] = lo, hi  # exact ends: round-off must not push the extremes out as "overflow"
    return edges


def _draw_overflow(ax, overflow: list[tuple[str, int, int]], edges: np.ndarray) -> None:
    """``▶ +k`` at the right edge (``◀ +k`` at the left) per set with values beyond the plotted range."""
    top = ax.get_ylim()[1]
    right = [(n, k) for n, _, k in overflow if k]
    left = [(n, k) for n, k, _ in overflow if k]
    for side, items, x, marker, ha in ((1, right, edges[-1], ">", "right"), (-1, left, edges[0], "<", "left")):
        for i, (name, k) in enumerate(items):
            y = top * (0.6 - 0.08 * i)  # below the legend
            ax.plot([x], [y], marker=marker, color=dataset_color(name), markersize=9, clip_on=False, linestyle="")
            offset = -6 if side == 1 else 6
            ax.annotate(
                f"+{k} beyond {x:.3g}",
                (x, y),
                xytext=(offset, 0),
                textcoords="offset points",
                ha=ha,
                va="center",
                fontsize=8,
                color=dataset_color(name),
            )
