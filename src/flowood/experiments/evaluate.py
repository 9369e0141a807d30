"""``flowood evaluate``: score the in-distribution test split and OOD sets, write the report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.data import pick_split
from flowood.errors import DatasetError
from flowood.experiments.runs import Run, load_run
from flowood.ood import detection_metrics, score_bits_per_dim, summarize_scores
from flowood.perf import FastPath, resolve_fast_path
from flowood.train.data import TensorBatches, load_split
from flowood.train.trainer import resolve_device

METRIC_DOC = (
    "score = log-likelihood (higher = in-distribution); in-distribution test set is the positive class; "
    "AUROC < 0.5 means the OOD set is assigned higher likelihood"
)


def score_dataset(
    run: Run,
    name: str | None,
    *,
    split: str = "test",
    limit: int | None = None,
    classes: list[int] | None = None,
    batch_size: int = 512,
    seed: int = 0,
    fast: FastPath | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Per-sample bits/dim of one dataset under the run's flow (matched to the flow's input shape).

    ``fast`` sets precision / memory format for scoring (default: fp32, see :func:`evaluate_run`);
    ``progress`` shows a progress bar (images) on stderr when it is a terminal."""
    cfg = run.run_config.data
    if name is not None and name == cfg.negative_dataset and split == "test":
        # Negative training drew from this set's training part; score on held-out samples only
        # (the embedded mnist-mini has no train split: its half-train/half-test halves serve instead).
        split = "half-test"
    ds = load_split(
        cfg,
        pick_split(name or cfg.dataset, split),
        name=name,
        limit=limit,
        classes=classes,
        seed=run.run_config.seed,
        like_shape=run.flow.input_shape,
    )
    transform = run.standardizer if (ds.kind == "vector" and run.standardizer is not None) else None
    # Vectors are compared with what the run's standardizer takes in (it may drop features or project).
    expected = tuple(run.flow.input_shape)
    if transform is not None and transform.in_dim is not None:
        expected = (transform.in_dim,)
    if tuple(ds.shape) != expected:
        raise DatasetError(f"{ds.name} samples have shape {tuple(ds.shape)} but the run expects {expected}")
    device = next(run.flow.parameters()).device
    data = ds.data.float() if ds.kind == "vector" else ds.data
    batches = TensorBatches(data, ds.kind, device).sequential(batch_size)
    if progress:
        batches = _counted(batches, len(data), f"score {ds.name}")
    return score_bits_per_dim(run.flow, batches, seed=seed, transform=transform, fast=fast)


def _counted(batches: Iterator[Tensor], total: int, desc: str) -> Iterator[Tensor]:
    """``batches`` with a tqdm bar that counts images (on a terminal only: logs stay free of redraws).

    The count advances when the next batch is requested, i.e. once the previous one has been scored on the
    CPU; on a GPU that means queued, since scoring itself never waits for the device.
    """
    from tqdm import tqdm

    with tqdm(total=total, unit="img", desc=desc, disable=None, leave=False, dynamic_ncols=True) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def evaluate_run(
    run_dir: str | Path,
    ood: list[str] | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 512,
    device: str = "auto",
    seed: int = 0,
    data_root: str | None = None,
    write: bool = True,
    precision: str | None = None,
    compile: bool = False,
    exact: bool = False,
    scores: list[str] | None = None,
    score_settings: Any = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Score a run's in-distribution test split and each OOD dataset; write ``report.json``,
    ``scores.npz`` and ``histogram.png`` into the run directory.

    Scoring streams batches of ``batch_size`` under ``torch.inference_mode`` with the run's
    ``train.precision`` (``auto``: bf16 autocast on CUDA, fp32 on the CPU) unless ``precision`` is
    given, channels-last on CUDA, and ``torch.compile`` if ``compile``; ``exact=True`` scores in
    fp32, eager, contiguous. The precision used is recorded in the report.

    ``scores`` (names from :mod:`flowood.ood.scores`, default ``["log_likelihood"]``) adds the field's other
    OOD scores under ``report["ood"][NAME]["metrics"][SCORE]``, training their auxiliary models when missing
    (:func:`flowood.experiments.scores.add_scores`, sized by ``score_settings``; ``quiet`` hides their logs).

    Returns:
        The report dict (see ``report.json`` in the README).
    """
    run = load_run(run_dir, device=resolve_device(device))
    if data_root is not None:
        run.run_config.data.root = data_root
    flow_device = next(run.flow.parameters()).device
    fast = resolve_fast_path(
        flow_device,
        precision=precision or run.run_config.train.precision,
        channels_last=None,
        compile=compile,
        exact=exact,
    )
    fast.prepare_model(run.flow)
    cfg = run.run_config.data
    ood = list(ood) if ood else list(cfg.ood)
    if not ood:
        raise DatasetError("no OOD dataset given: pass --ood NAME [NAME ...] (see `flowood datasets`)")
    test_limit = limit if limit is not None else cfg.test_limit
    start = time.perf_counter()
    with torch.inference_mode(), fast.backends():
        in_bpd = score_dataset(
            run,
            None,
            limit=test_limit,
            classes=cfg.classes,
            batch_size=batch_size,
            seed=seed,
            fast=fast,
            progress=not quiet,
        )
        bpd_by_set = {cfg.dataset: in_bpd}
        scored_sets: list[tuple[str, str | None, int | None, list[int] | None, int, np.ndarray]] = [
            (cfg.dataset, None, test_limit, cfg.classes, seed, in_bpd)
        ]
        report: dict[str, Any] = {
            "run_dir": str(Path(run_dir).resolve()),
            "model": run.config.get("model", {}),
            "metric_convention": METRIC_DOC,
            "scoring": {**fast.describe(), "batch_size": batch_size},
            "in_distribution": {"dataset": cfg.dataset, "bits_per_dim": summarize_scores(in_bpd)},
            "ood": {},
        }
        for name in ood:
            same = name == cfg.dataset
            ood_bpd = score_dataset(
                run,
                name,
                limit=limit,
                classes=cfg.ood_classes if same else None,
                batch_size=batch_size,
                seed=seed + 1,
                fast=fast,
                progress=not quiet,
            )
            key = f"{name}[classes={','.join(map(str, cfg.ood_classes))}]" if same and cfg.ood_classes else name
            bpd_by_set[key] = ood_bpd
            scored_sets.append((key, name, limit, cfg.ood_classes if same else None, seed + 1, ood_bpd))
            report["ood"][key] = {
                "bits_per_dim": summarize_scores(ood_bpd),
                "metrics": {"log_likelihood": detection_metrics(-in_bpd, -ood_bpd)},
            }
    seconds = time.perf_counter() - start
    images = sum(len(bpd) for bpd in bpd_by_set.values())
    # Wall time of the likelihood scoring, data loading included (auxiliary scores are timed separately).
    report["scoring"].update(
        {"seconds": round(seconds, 3), "images": images, "images_per_second": round(images / max(seconds, 1e-9), 1)}
    )
    if scores and set(scores) != {"log_likelihood"}:
        from flowood.experiments.scores import ScoredSet, add_scores

        sets = [ScoredSet(*item) for item in scored_sets]
        with fast.backends():
            add_scores(
                run,
                report,
                sets,
                scores,
                settings=score_settings,
                device=device,
                batch_size=batch_size,
                fast=fast,
                quiet=quiet,
                write=write,
            )
    if write:
        out = Path(run_dir)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        arrays: dict[str, Any] = dict(bpd_by_set)
        np.savez(out / "scores.npz", **arrays)
        from flowood.analysis.histograms import plot_bpd_histograms

        plot_bpd_histograms(bpd_by_set, out / "histogram.png", title=f"{run.flow.name} trained on {cfg.dataset}")
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a report (used by the CLI and the demo)."""
    ind = report["in_distribution"]
    lines = [f"{'dataset':<28}{'bits/dim mean':>14}{'median':>10}{'AUROC':>8}{'AUPR-in':>9}{'FPR95':>8}{'n':>7}"]
    b = ind["bits_per_dim"]
    lines.append(
        f"{ind['dataset'] + ' (in)':<28}{b['mean']:>14.3f}{b['median']:>10.3f}{'':>8}{'':>9}{'':>8}{b['n']:>7}"
    )
    for name, entry in report["ood"].items():
        b = entry["bits_per_dim"]
        m = entry["metrics"]["log_likelihood"]
        lines.append(
            f"{name:<28}{b['mean']:>14.3f}{b['median']:>10.3f}{m['auroc']:>8.3f}{m['aupr_in']:>9.3f}"
            f"{m['fpr95']:>8.3f}{b['n']:>7}"
        )
    nonfinite = ind["bits_per_dim"]["nonfinite"] + sum(e["bits_per_dim"]["nonfinite"] for e in report["ood"].values())
    if nonfinite:
        lines.append(f"warning: {nonfinite} non-finite scores (ranked as least in-distribution)")
    scoring = report.get("scoring", {})
    if "images_per_second" in scoring:
        lines.append(
            f"scored {scoring['images']} samples in {scoring['seconds']:.1f} s ({scoring['images_per_second']:,.0f}/s, "
            f"{scoring.get('precision', 'fp32')}, batch {scoring.get('batch_size')}; data loading included)"
        )
    return "\n".join(lines)
