"""``flowood visualize``: the analysis figures of a trained run, written into ``RUN/figures/``.

Outputs (image flows): ``latents.png`` (claim 2), ``coupling_layer_NN.png`` per chosen layer and
``coupling_stats.json`` (claim 3: the measurement behind the pictures), ``samples.png`` (temperatures 1.0, 0.7,
0.5) and ``histograms.png`` (claim 1). Vector (tabular) flows get only the histogram, from ``scores.npz``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.analysis.couplings import check_layer_indices, coupling_statistics, default_layer_indices, plot_coupling
from flowood.analysis.histograms import plot_bpd_histograms
from flowood.analysis.latents import plot_latents
from flowood.analysis.samples import DEFAULT_TEMPERATURES, plot_samples
from flowood.atomic import atomic_write_text
from flowood.errors import CheckpointError, ConfigError, DatasetError
from flowood.ood import score_bits_per_dim
from flowood.runs import RunDir

STATS_DESCRIPTION = (
    "corr_neg_t_x: Pearson r between -t and the entries each coupling layer transforms (per image, averaged); "
    "residual_std_ratio: std(x+t)/std(x) on those entries; mean_abs_s: mean |s| in nats per entry."
)


@dataclass
class VisualizeResult:
    """What :func:`visualize_run` wrote.

    Attributes:
        figures: paths of the PNGs written, in order.
        coupling_stats: rows of the claim-3 measurement (also in ``figures/coupling_stats.json``).
        skipped: human-readable reasons for figures not produced.
    """

    figures: list[Path] = field(default_factory=list)
    coupling_stats: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_run_dir(run_dir: str | Path) -> Any:
    """Load a run via :func:`flowood.experiments.runs.load_run` (imported lazily: it pulls in training code)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"run directory {path} does not exist")
    from flowood.experiments.runs import load_run

    return load_run(path)


def load_images(
    name: str, input_shape: Sequence[int], *, limit: int, root: str | None = None, seed: int = 0
) -> torch.Tensor:
    """``limit`` test images of dataset ``name`` as float ``(N, C, H, W)`` in ``[0, 1]``, shaped for the flow.

    Grey/RGB conversion and a square resize are asked of the loader when the dataset's native shape differs
    from the flow's (MNIST for a CIFAR-10 model, say), so OOD sets of another format still go through the flow.
    """
    from flowood.data import load_dataset, pick_split

    c, h, w = (int(s) for s in input_shape)
    ds = load_dataset(
        name, pick_split(name, "test"), root=root, limit=limit, seed=seed, channels=c, size=h if h == w else None
    )
    if ds.kind != "image" or tuple(ds.shape) != (c, h, w):
        raise DatasetError(f"{name} samples have shape {tuple(ds.shape)} but the flow expects {(c, h, w)}")
    if note := ds.conversion_note():
        print(note, file=sys.stderr)  # never silent: a set shown at another shape than its own is said so
    return ds.as_float()


def parse_layers(text: str | None) -> list[int] | None:
    """``"0,1,2"`` → ``[0, 1, 2]``; ``None``/empty → ``None`` (use the default layers)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise ConfigError(f"--layers expects comma-separated integers such as 0,1,2, got {text!r}") from None


def _json_safe(v: Any) -> Any:
    """NaN/inf → None so the JSON stays standard (json.dumps would write bare NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def _stored_scores(run_dir: Path) -> dict[str, np.ndarray]:
    path = RunDir(run_dir).scores
    if not path.is_file():
        return {}
    with np.load(path) as npz:
        return {k: np.asarray(npz[k]) for k in npz.files}


def visualize_run(
    run_dir: str | Path,
    *,
    dataset: str | None = None,
    ood: Sequence[str] | None = None,
    num_examples: int = 4,
    layers: Sequence[int] | None = None,
    data_root: str | None = None,
    num_stats: int = 256,
    num_scores: int = 512,
    num_samples: int = 16,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    seed: int = 0,
) -> VisualizeResult:
    """Write the analysis figures of a run into ``RUN/figures/``.

    Args:
        run_dir: run directory (``flowood train`` / ``flowood demo``).
        dataset: in-distribution dataset; default the config's ``data.dataset``.
        ood: OOD datasets; default the config's ``data.ood``.
        num_examples: images per dataset in the latent figure (half as many, at least 1, in coupling figures).
        layers: coupling-layer indices (into the flow's coupling layers in forward order); default the first
            three checkerboard couplings (or spatially masked ones, or the first ones).
        num_stats: images per dataset for the coupling measurement.
        num_scores: images per dataset for histograms not already in ``scores.npz`` (from ``flowood evaluate``).
        seed: seeds dataset subsets, dequantisation noise and samples.
    """
    run = load_run_dir(run_dir)
    with RunDir(run.dir).hold("visualize"):  # figures/ of one model: no training or second visualize meanwhile
        return _visualize(
            run, dataset, ood, num_examples, layers, data_root, num_stats, num_scores, num_samples, temperatures, seed
        )


def _visualize(
    run: Any,
    dataset: str | None,
    ood: Sequence[str] | None,
    num_examples: int,
    layers: Sequence[int] | None,
    data_root: str | None,
    num_stats: int,
    num_scores: int,
    num_samples: int,
    temperatures: Sequence[float],
    seed: int,
) -> VisualizeResult:
    out_dir = RunDir(run.dir).figures
    in_name = dataset or run.config.data.dataset
    ood_names = list(ood) if ood else list(run.config.data.ood)
    names = [in_name] + [n for n in ood_names if n != in_name]
    flow = run.flow.eval()
    result = VisualizeResult()
    torch.manual_seed(seed)  # dequantisation noise inside flow.preprocess_images

    if flow.preprocess is None:
        result.skipped.append("latents, couplings and samples need an image flow; this run's flow is tabular")
        stored = _stored_scores(Path(run.dir))
        scores = {k: v for k, v in stored.items() if k in names or not ood}
        if scores:
            result.figures.append(
                plot_bpd_histograms(scores, out_dir / "histograms.png", f"{flow.name} trained on {in_name}")
            )
        else:
            result.skipped.append("histograms: no scores.npz (run `flowood evaluate RUN_DIR` first)")
        return result

    if layers is not None:
        try:
            layer_idx = check_layer_indices(flow, layers)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    else:
        layer_idx = default_layer_indices(flow)
    limit = max(num_examples, num_stats, num_scores)
    data = {n: load_images(n, flow.input_shape, limit=limit, root=data_root, seed=seed) for n in names}

    with torch.no_grad():
        result.figures.append(
            plot_latents(
                flow,
                data,
                out_dir / "latents.png",
                num_examples=num_examples,
                title=f"{flow.name} trained on {in_name}: latents z = f(x) on the image grid",
            )
        )
        n_coupling = max(1, num_examples // 2)
        for i in layer_idx:
            result.figures.append(
                plot_coupling(flow, data, i, out_dir / f"coupling_layer_{i:02d}.png", num_examples=n_coupling)
            )
        stats_data = {n: x[:num_stats] for n, x in data.items()}
        result.coupling_stats = coupling_statistics(flow, stats_data, layer_idx)
        atomic_write_text(
            out_dir / "coupling_stats.json",
            json.dumps(
                _json_safe(
                    {
                        "description": STATS_DESCRIPTION,
                        "in_distribution": in_name,
                        "rows": result.coupling_stats,
                    }
                ),
                indent=2,
            ),
        )
        result.figures.append(
            plot_samples(flow, out_dir / "samples.png", temperatures=temperatures, num_samples=num_samples, seed=seed)
        )
        stored = _stored_scores(Path(run.dir))
        scores = {
            n: stored[n] if n in stored else score_bits_per_dim(flow, data[n][:num_scores].split(256)) for n in names
        }
    result.figures.append(plot_bpd_histograms(scores, out_dir / "histograms.png", f"{flow.name} trained on {in_name}"))
    return result
