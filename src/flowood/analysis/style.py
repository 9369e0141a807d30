"""One look for every flowood figure: Agg backend, fixed colours per dataset, readable fonts, fixed sizes.

Figures are saved at :data:`DPI` without ``bbox_inches="tight"`` so that a figure of ``w × h`` inches is exactly
``round(w·DPI) × round(h·DPI)`` pixels; tests (and the HTML report's layout) rely on that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib

# Select the non-interactive backend before pyplot is imported anywhere in flowood: figures are written to
# files on headless machines (CI, GPU nodes) where an interactive backend would fail or block.
matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from flowood.atomic import atomic_write

DPI = 100
"""Dots per inch of every saved figure."""

BPD_LABEL = "bits/dim"
"""Axis label (with unit) for per-dimension negative log-likelihoods."""

# Colour-blind-friendly choices (Okabe-Ito / Tol); related datasets share a hue family so that e.g. the
# in-distribution FashionMNIST is always blue and MNIST always orange across all figures of a run.
DATASET_COLORS: dict[str, str] = {
    "fashionmnist": "#0072B2",
    "mnist": "#E69F00",
    "notmnist": "#009E73",
    "glyphs": "#009E73",
    "cifar10": "#0072B2",
    "svhn": "#D55E00",
    "celeba": "#CC79A7",
    "imagenet32": "#56B4E9",
    "imagenet64": "#56B4E9",
    "imagenet": "#56B4E9",
    "digits": "#F0E442",
    "miniboone": "#0072B2",
    "hepmass": "#0072B2",
    "noise": "#7F7F7F",
    "uniform": "#7F7F7F",
    "constant": "#000000",
}

# Deterministic fallback palette for names not in the map (tab10 without the grey, which is reserved for noise).
_FALLBACK = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#BCBD22", "#17BECF")

_SUFFIXES = ("-mini", "_mini", "-small", "-test", "-train")


def canonical_name(name: str) -> str:
    """Normalise a dataset name for colour lookup: lower case, ``-mini`` etc. dropped, only ``[a-z0-9]``.

    ``"FashionMNIST-mini"`` → ``"fashionmnist"``, ``"CIFAR-10"`` → ``"cifar10"``.
    """
    n = name.strip().lower()
    for suffix in _SUFFIXES:
        if n.endswith(suffix):
            n = n[: -len(suffix)]
    return re.sub(r"[^a-z0-9]", "", n)


def dataset_color(name: str) -> str:
    """Hex colour of a dataset, the same in every figure and every process.

    Known names use :data:`DATASET_COLORS`; others get a palette entry chosen by an MD5 hash of the canonical
    name (Python's ``hash`` is salted per process, which would change colours between runs).
    """
    key = canonical_name(name)
    if key in DATASET_COLORS:
        return DATASET_COLORS[key]
    # Class-filtered variants such as "mnist:0-4" or "mnist_class3" keep the parent's colour.
    for known, colour in DATASET_COLORS.items():
        if key.startswith(known) and len(known) >= 4:
            return colour
    digest = hashlib.md5(key.encode("utf-8")).digest()
    return _FALLBACK[digest[0] % len(_FALLBACK)]


RC_PARAMS: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "image.interpolation": "nearest",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}


@contextmanager
def figure_style() -> Iterator[None]:
    """Context in which flowood's rcParams apply (the user's global matplotlib settings stay untouched)."""
    with plt.rc_context(cast(Any, RC_PARAMS)):  # matplotlib's stubs type keys as a Literal of every rcParam
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure of exactly ``width_in × height_in`` inches, not registered with pyplot's state machine.

    Building :class:`~matplotlib.figure.Figure` directly (not ``plt.figure``) avoids leaking figures across
    repeated calls in long-running processes.
    """
    return Figure(figsize=(width_in, height_in), dpi=DPI)


def figure_pixels(width_in: float, height_in: float) -> tuple[int, int]:
    """Pixel size ``(width, height)`` a figure of that many inches has once saved by :func:`save_figure`."""
    return round(width_in * DPI), round(height_in * DPI)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG at :data:`DPI` (parent directories created, written beside and renamed over: a full
    disk keeps the previous figure) and return the path."""
    out = Path(path)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    return out


def figure_title(fig: Figure, text: str, fontsize: float | None = None) -> None:
    """Figure title pinned 0.08 in below the top edge (figure-relative ``y=0.98`` drifts with figure height and
    collides with column titles on tall figures)."""
    fig.suptitle(text, y=1 - 0.08 / fig.get_figheight(), va="top", fontsize=fontsize)


def grid_figsize(nrows: int, ncols: int, panel_in: float = 1.6, label_in: float = 1.8, title_in: float = 0.9):
    """Inches ``(width, height)`` for a grid of image panels with a row-label margin and a title band."""
    return label_in + ncols * panel_in, title_in + nrows * panel_in


def layout_panel_grid(fig: Figure, label_in: float = 1.8, title_in: float = 0.75) -> None:
    """Place a grid of image panels (see :func:`grid_figsize`): a fixed row-label margin on the left and a
    title band on top, in inches, so the layout does not change with the number of rows."""
    fig.subplots_adjust(
        left=label_in / fig.get_figwidth(),
        right=0.98,
        top=1 - title_in / fig.get_figheight(),
        bottom=0.1 / fig.get_figheight(),
        wspace=0.08,
        hspace=0.1,
    )
