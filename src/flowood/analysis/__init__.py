"""Figures and measurements that explain a trained flow (paper claims 1-3) and a self-contained HTML report.

Depends only on :mod:`flowood.flows`, :mod:`flowood.data`, numpy and matplotlib (Agg backend), never on the
training or experiment layers, so it can be used on any :class:`~flowood.flows.NormalizingFlow`.
"""

from flowood.analysis.couplings import (
    coupling_inputs,
    coupling_layers,
    coupling_statistics,
    default_layer_indices,
    layer_statistics,
    pearson_rows,
    plot_coupling,
)
from flowood.analysis.histograms import plot_bpd_histograms
from flowood.analysis.html_report import ReportParts, collect_report_parts, render_html, write_html_report
from flowood.analysis.latents import LatentViews, compute_latents, plot_latents
from flowood.analysis.samples import DEFAULT_TEMPERATURES, plot_samples, sample_grid
from flowood.analysis.style import dataset_color

__all__ = [
    "DEFAULT_TEMPERATURES",
    "LatentViews",
    "ReportParts",
    "collect_report_parts",
    "compute_latents",
    "coupling_inputs",
    "coupling_layers",
    "coupling_statistics",
    "dataset_color",
    "default_layer_indices",
    "layer_statistics",
    "pearson_rows",
    "plot_bpd_histograms",
    "plot_coupling",
    "plot_latents",
    "plot_samples",
    "render_html",
    "sample_grid",
    "write_html_report",
]
