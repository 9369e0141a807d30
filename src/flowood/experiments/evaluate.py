"""``flowood evaluate``: score the in-distribution test split and OOD sets, write the report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.analysis.histograms import plot_bpd_histograms
from flowood.data import dataset_info
from flowood.data.base import ArrayDataset
from flowood.devices import resolve_device
from flowood.errors import ConfigError, DatasetError
from flowood.evaluation import (
    BitsPerDim,
    DetectorMetrics,
    DetectorRun,
    EvaluationReport,
    InDistribution,
    OODResult,
    SampleRecord,
    Scoring,
)
from flowood.experiments.auxiliary import RunContext, ScoreSettings
from flowood.experiments.runs import Run, load_run
from flowood.experiments.samples import scored_samples, scored_split
from flowood.ood import detection_metrics, score_bits_per_dim, summarize_scores
from flowood.ood.detectors import DETECTORS, Samples, parse_detectors
from flowood.perf import FastPath, resolve_fast_path
from flowood.runs import RunDir
from flowood.train.data import TensorBatches

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
    """Per-sample bits/dim of one dataset under the run's flow: the samples of
    :func:`flowood.experiments.samples.scored_samples` (matched to the flow's input shape).

    ``fast`` sets precision / memory format for scoring (default: fp32, see :func:`evaluate_run`);
    ``progress`` shows a progress bar (images) on stderr when it is a terminal."""
    ds = scored_samples(run, name, split=split, limit=limit, classes=classes)
    return score_loaded(run, ds, batch_size=batch_size, seed=seed, fast=fast, progress=progress)


def score_loaded(
    run: Run,
    ds: ArrayDataset,
    *,
    batch_size: int = 512,
    seed: int = 0,
    fast: FastPath | None = None,
    progress: bool = False,
) -> np.ndarray:
    """``(N,)`` bits/dim of an already loaded dataset under the run's flow (its standardiser for vectors)."""
    transform = run.standardizer if (ds.kind == "vector" and run.standardizer is not None) else None
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
) -> EvaluationReport:
    """Score a run's in-distribution test split and each OOD dataset; write ``report.json``,
    ``scores.npz`` and ``histogram.png`` into the run directory.

    Scoring streams batches of ``batch_size`` under ``torch.inference_mode`` with the run's
    ``train.precision`` (``auto``: bf16 autocast on CUDA, fp32 on the CPU) unless ``precision`` is
    given, channels-last on CUDA, and ``torch.compile`` if ``compile``; ``exact=True`` scores in
    fp32, eager, contiguous. The precision used is recorded in the report.

    ``scores`` (detector names from :func:`flowood.ood.detectors.available_detectors`, default
    ``["log_likelihood"]``) adds the field's other OOD scores under ``report.ood[KEY].metrics[SCORE]``,
    training their auxiliary models when missing (:func:`run_detectors`, sized by ``score_settings``, a
    :class:`~flowood.experiments.auxiliary.ScoreSettings`; ``quiet`` hides their logs).

    Returns:
        The :class:`~flowood.evaluation.EvaluationReport` (``report.json``'s layout is in its module).
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
    general = getattr(score_settings, "general_dataset", None)
    for name in [*ood, *([general] if general else [])]:
        dataset_info(name, cfg.root)  # an unknown name fails now, not after minutes of scoring
    test_limit = limit if limit is not None else cfg.test_limit
    start = time.perf_counter()
    sets: list[Samples] = []
    with torch.inference_mode(), fast.backends():
        in_ds = scored_samples(run, None, limit=test_limit, classes=cfg.classes)
        in_bpd = score_loaded(run, in_ds, batch_size=batch_size, seed=seed, fast=fast, progress=not quiet)
        bpd_by_set = {cfg.dataset: in_bpd}
        sets.append(Samples(cfg.dataset, in_ds.data, in_ds.kind, in_bpd, noise_seed=seed))
        in_record = InDistribution(
            cfg.dataset, BitsPerDim.from_json(summarize_scores(in_bpd)), _samples_record(run, None, in_ds, test_limit)
        )
        ood_results: dict[str, OODResult] = {}
        for name in ood:
            same = name == cfg.dataset
            ds = scored_samples(run, name, limit=limit, classes=cfg.ood_classes if same else None)
            ood_bpd = score_loaded(run, ds, batch_size=batch_size, seed=seed + 1, fast=fast, progress=not quiet)
            key = f"{name}[classes={','.join(map(str, cfg.ood_classes))}]" if same and cfg.ood_classes else name
            bpd_by_set[key] = ood_bpd
            sets.append(Samples(key, ds.data, ds.kind, ood_bpd, noise_seed=seed + 1, name=name))
            ood_results[key] = OODResult(
                BitsPerDim.from_json(summarize_scores(ood_bpd)),
                _samples_record(run, name, ds, limit),
                {"log_likelihood": DetectorMetrics.from_json(detection_metrics(-in_bpd, -ood_bpd))},
            )
    seconds = time.perf_counter() - start
    images = sum(len(bpd) for bpd in bpd_by_set.values())
    report = EvaluationReport(
        run_dir=str(Path(run_dir).resolve()),
        model=run.config.get("model", {}),
        metric_convention=METRIC_DOC,
        # Wall time of the likelihood scoring, data loading included (auxiliary scores are timed separately).
        scoring=Scoring(
            fast.describe(),
            batch_size,
            seconds=round(seconds, 3),
            images=images,
            images_per_second=round(images / max(seconds, 1e-9), 1),
        ),
        in_distribution=in_record,
        ood=ood_results,
    )
    if scores and set(scores) != {"log_likelihood"}:
        with fast.backends():
            report, _ = run_detectors(
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
        out = RunDir(run_dir)
        report.save(out.report)
        arrays: dict[str, Any] = dict(bpd_by_set)
        np.savez(out.scores, **arrays)
        plot_bpd_histograms(
            bpd_by_set,
            out.histogram,
            title=f"{run.flow.name} trained on {cfg.dataset}",
            in_distribution=cfg.dataset,
        )
    return report


def _samples_record(run: Run, name: str | None, ds: ArrayDataset, limit: int | None) -> SampleRecord:
    """What was scored for one set: its split, the limit asked for and every conversion the loader made
    (channels, size, float pixels), so that ``report.json`` says when an OOD set is not what the user gave."""
    return SampleRecord(scored_split(run, name), limit, tuple(ds.conversions))


def format_report(report: EvaluationReport) -> str:
    """A plain-text table of a report (used by the CLI and the demo)."""
    ind = report.in_distribution
    lines = [f"{'dataset':<28}{'bits/dim mean':>14}{'median':>10}{'AUROC':>8}{'AUPR-in':>9}{'FPR95':>8}{'n':>7}"]
    b = ind.bits_per_dim
    lines.append(f"{ind.dataset + ' (in)':<28}{b.mean:>14.3f}{b.median:>10.3f}{'':>8}{'':>9}{'':>8}{b.n:>7}")
    for name, entry in report.ood.items():
        b = entry.bits_per_dim
        m = entry.metrics["log_likelihood"]
        lines.append(
            f"{name:<28}{b.mean:>14.3f}{b.median:>10.3f}{m.auroc:>8.3f}{m.aupr_in:>9.3f}{m.fpr95:>8.3f}{b.n:>7}"
        )
    if report.nonfinite:
        lines.append(f"warning: {report.nonfinite} non-finite scores (ranked as least in-distribution)")
    scoring = report.scoring
    if scoring.images_per_second is not None and scoring.seconds is not None:
        lines.append(
            f"scored {scoring.images} samples in {scoring.seconds:.1f} s ({scoring.images_per_second:,.0f}/s, "
            f"{scoring.precision}, batch {scoring.batch_size}; data loading included)"
        )
    return "\n".join(lines)


def run_detectors(
    run: Run,
    report: EvaluationReport,
    sets: list[Samples],
    names: list[str],
    *,
    settings: ScoreSettings | None = None,
    device: str = "auto",
    batch_size: int = 512,
    fast: FastPath | None = None,
    quiet: bool = False,
    write: bool = True,
) -> tuple[EvaluationReport, dict[str, np.ndarray]]:
    """Fit every detector in ``names`` on the run and score the in-distribution set ``sets[0]`` and the OOD
    sets ``sets[1:]`` (exactly the samples the likelihood evaluation scored).

    The returned report adds, for every detector NAME, ``ood[KEY].metrics[NAME]`` (AUROC, AUPR-in, AUPR-out,
    FPR95, + ``M``/``num_batches`` for per-batch detectors) and ``scores[NAME]`` (a :class:`DetectorRun`:
    description, facts, seconds and the AUROCs of its components), and ``score_settings``. Per-sample values
    go to ``RUN/ood_scores.npz`` as ``NAME/KEY`` (components as ``NAME.COMPONENT/KEY``).

    Returns:
        ``(report, flat)``: the new report and the flat ``"NAME/KEY" -> array`` dict written to
        ``ood_scores.npz``.
    """
    settings = settings or ScoreSettings()
    names = parse_detectors(names)
    context = RunContext(
        run,
        settings,
        evaluated=[s.name for s in sets[1:] if s.name is not None],
        device=device,
        batch_size=batch_size,
        fast=fast,
        quiet=quiet,
    )
    for name in names:
        if DETECTORS[name].info.images_only and not context.is_image:
            raise ConfigError(f"score {name} is only defined for image runs; {run.dir} models vectors")
    values = asdict(settings)
    flat: dict[str, np.ndarray] = {}
    info: dict[str, DetectorRun] = {}
    in_key = sets[0].key
    for name in names:
        start = time.perf_counter()
        det = DETECTORS[name].from_settings(values)
        det.fit(context)
        scored = {s.key: det.score(s) for s in sets}
        components = {s.key: det.components(s) for s in sets}
        seconds = time.perf_counter() - start
        facts = det.facts()
        comp_auroc: dict[str, dict[str, float]] = {}
        for s in sets[1:]:
            metrics: dict[str, Any] = detection_metrics(scored[in_key], scored[s.key])
            if det.info.per_batch:
                metrics.update({k: facts[k] for k in ("M", "num_batches") if k in facts})
            report = report.with_metrics(s.key, name, DetectorMetrics.from_json(metrics))
            for comp, vals in components[s.key].items():
                comp_auroc.setdefault(comp, {})[s.key] = detection_metrics(components[in_key][comp], vals)["auroc"]
        for key, vals in scored.items():
            flat[f"{name}/{key}"] = vals
            for comp, cv in components[key].items():
                flat[f"{name}.{comp}/{key}"] = cv
        described = {**det.info.describe(), **facts, "seconds": round(seconds, 2)}
        if comp_auroc:
            described["components_auroc"] = comp_auroc
        info[name] = DetectorRun.from_json(described)
    report = report.with_(scores=info, score_settings=values)
    if write:
        np.savez(run.dir / "ood_scores.npz", **flat)  # type: ignore[arg-type]
    return report, flat


def format_scores(report: EvaluationReport) -> str:
    """AUROC of every score (rows) on every OOD set (columns), as plain text."""
    names = list(report.scores or ["log_likelihood"])
    ood = list(report.ood)
    width = max(14, *(len(n) + 2 for n in ood)) if ood else 14
    lines = [
        f"OOD AUROC by score (in-distribution: {report.in_distribution.dataset}; "
        "higher = better separation, 0.5 = chance)"
    ]
    lines.append(f"{'score':<26}" + "".join(f"{n:>{width}}" for n in ood))
    for name in names:
        row = f"{name:<26}"
        for key in ood:
            m = report.metrics(key, name)
            row += f"{m.auroc:>{width}.3f}" if m else f"{'-':>{width}}"
        entry = (report.scores or {}).get(name)
        if entry is not None and entry.per_batch and "M" in entry.facts:
            row += f"   (per batch, M={entry.facts['M']})"
        lines.append(row)
    return "\n".join(lines)
