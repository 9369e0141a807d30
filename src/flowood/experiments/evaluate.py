"""``flowood evaluate``: score the in-distribution test split and OOD sets with every detector, write the report.

One evaluation is one loop: the scored sets are built once (loaded, matched to the flow's input shape and
scored by the run's flow, :func:`flowood.ood.score_samples`), every detector — ``log_likelihood`` included —
is checked, then fitted and run on exactly those sets, and :func:`evaluate_run` returns the report together
with every per-sample array (:class:`Evaluation`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.analysis.histograms import plot_bpd_histograms
from flowood.atomic import atomic_write_npz
from flowood.data import dataset_info
from flowood.data.base import ArrayDataset
from flowood.devices import resolve_device
from flowood.errors import DatasetError
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
from flowood.experiments import provenance
from flowood.experiments.aux_models import AuxSettings
from flowood.experiments.fit_context import EvaluationContext
from flowood.experiments.provenance import fingerprint
from flowood.experiments.runs import Run, load_run, training_summary
from flowood.experiments.scored_samples import scored_samples, scored_split
from flowood.experiments.throughput import SharedCosts, features_of_sets, images_per_second
from flowood.ood import detection_metrics, score_samples, summarize_scores
from flowood.ood.detectors import DETECTORS, Detector, Samples, parse_detectors, shared_score
from flowood.perf import PRECISIONS, FastPath, resolve_fast_path
from flowood.runs import RunDir
from flowood.settings import check, setting
from flowood.train.config import check_ood_names

BASELINE = "log_likelihood"

METRIC_DOC = (
    "score = log-likelihood (higher = in-distribution); in-distribution test set is the positive class; "
    "AUROC < 0.5 means the OOD set is assigned higher likelihood"
)


@dataclass(frozen=True)
class ScoringOptions:
    """How the sets are scored (not which detectors score them).

    Attributes:
        limit: at most this many samples per set (a seeded subset; ``None``: the run's ``data.test_limit`` for
            the in-distribution test set, everything for OOD sets).
        batch_size: samples per forward pass.
        seed: seed of the dequantisation noise (the in-distribution set uses ``seed``, OOD sets ``seed + 1``).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (``None``: the run's ``train.precision``; ``auto`` is
            bf16 autocast of the st-networks on CUDA, fp32 on the CPU; the likelihood itself stays fp32).
        compile: ``torch.compile`` the flow for scoring.
        exact: fp32, eager, contiguous (the reference path).
    """

    limit: int | None = setting(None, ge=1, doc="samples per set")
    batch_size: int = setting(512, ge=1, doc="samples per forward pass")
    seed: int = setting(0, ge=0, doc="seed of the dequantisation noise")
    precision: str | None = setting(None, choices=PRECISIONS)
    compile: bool = False
    exact: bool = False

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_run` computed.

    Attributes:
        report: the typed ``report.json``.
        bits_per_dim: set key → ``(N,)`` bits/dim of each scored sample (``scores.npz``).
        scores: detector → set key → ``(N,)`` float64 scores (``(num_batches,)`` for per-batch detectors),
            higher = in-distribution; the baseline ``log_likelihood`` included.
        components: detector → set key → component name → ``(N,)`` per-sample diagnostics.
    """

    report: EvaluationReport
    bits_per_dim: dict[str, np.ndarray]
    scores: dict[str, dict[str, np.ndarray]]
    components: dict[str, dict[str, dict[str, np.ndarray]]]

    def flat_scores(self) -> dict[str, np.ndarray]:
        """``"DETECTOR/SET"`` (and ``"DETECTOR.COMPONENT/SET"``) → array: the layout of ``ood_scores.npz``."""
        flat: dict[str, np.ndarray] = {}
        for name, by_set in self.scores.items():
            for key, values in by_set.items():
                flat[f"{name}/{key}"] = values
                for comp, cv in self.components.get(name, {}).get(key, {}).items():
                    flat[f"{name}.{comp}/{key}"] = cv
        return flat


MIN_SAMPLES = 2
"""Fewer samples in a scored set give no ranking to measure; below :data:`FEW_SAMPLES` the table warns."""

FEW_SAMPLES = 30
"""Sets smaller than this get a warning beside the table: their AUROC moves in steps of 1/n."""


def resolve_detectors(detectors: Sequence[str | Detector] | None) -> list[Detector]:
    """Detector names (``"a,b"``, ``"all"``; default settings) and configured :class:`Detector` instances →
    instances in order without duplicates, ``log_likelihood`` first (the report's baseline)."""
    given: dict[str, Detector] = {}
    for item in detectors or []:
        if isinstance(item, Detector):
            given[item.info.name] = item
    names = parse_detectors([item if isinstance(item, str) else item.info.name for item in detectors or []])
    return [given.get(name) or DETECTORS[name]() for name in names]


def evaluate_run(
    run_dir: str | Path,
    ood: Sequence[str] | None = None,
    *,
    detectors: Sequence[str | Detector] | None = None,
    aux: AuxSettings | None = None,
    scoring: ScoringOptions | None = None,
    device: str = "auto",
    data_root: str | None = None,
    write: bool = True,
    quiet: bool = True,
) -> Evaluation:
    """Score a run's in-distribution test split and each OOD set with every detector; write the report.

    Writes ``report.json``, ``scores.npz`` (bits/dim per set), ``histogram.png`` and, with detectors beyond the
    baseline, ``ood_scores.npz`` into the run directory (unless ``write=False``). Auxiliary models are trained
    on first use and reused after (:mod:`flowood.experiments.aux_models`).

    Args:
        run_dir: a run directory (``flowood train``, ``flowood demo``).
        ood: OOD dataset names (default: the run's ``data.ood``).
        detectors: names from :func:`flowood.ood.detectors.available_detectors` (or ``"all"``) and/or
            configured detectors (``get_detector("waic", ensemble_size=5)``); default ``log_likelihood`` only.
        aux: the auxiliary models' budgets and the feature pipeline.
        scoring: limit, batch size, seed, precision (:class:`ScoringOptions`).
        device: ``auto``, ``cpu`` or ``cuda``.
        data_root: where datasets are looked for first; it carries to every auxiliary model's config.
        write: write the files (``False``: only return).
        quiet: no progress bars or auxiliary-training logs.

    Raises:
        DatasetError: no or unknown OOD set (before anything is scored).
        ConfigError: a detector that cannot run on this run or these sets (before any detector fits).
        RunInUseError: another process writes the run (``write=True`` holds the run's lock throughout).
    """
    opts = scoring or ScoringOptions()
    aux = aux or AuxSettings()
    chosen = resolve_detectors(detectors)
    # The run's lock, for the whole evaluation: a second `evaluate` (which would retrain the auxiliary model
    # this one is training) or a `train --resume` (which would change the weights being scored) is refused.
    writes = write or any(det.info.auxiliary for det in chosen)  # auxiliary models are trained into the run
    with RunDir(run_dir).hold("evaluate") if writes else contextlib.nullcontext():
        return _evaluate_run(run_dir, ood, chosen, aux, opts, device, data_root, write, quiet)


def _evaluate_run(
    run_dir: str | Path,
    ood: Sequence[str] | None,
    chosen: list[Detector],
    aux: AuxSettings,
    opts: ScoringOptions,
    device: str,
    data_root: str | None,
    write: bool,
    quiet: bool,
) -> Evaluation:
    run = load_run(run_dir, device=resolve_device(device))
    if data_root is not None:
        run.config.data.root = data_root
    cfg = run.config.data
    flag = "--ood" if ood else f"data.ood (in {RunDir(run.dir).config})"
    ood = list(ood) if ood else list(cfg.ood)
    if not ood:
        raise DatasetError("no OOD dataset given: pass --ood NAME [NAME ...] (see `flowood datasets`)")
    check_ood_names(ood, cfg.dataset, cfg.ood_classes, flag=flag)
    for name in ood:
        dataset_info(name, cfg.root)  # an unknown name fails now, not after minutes of scoring
    fast = resolve_fast_path(
        next(run.flow.parameters()).device,
        precision=opts.precision or run.config.train.precision,
        channels_last=None,
        compile=opts.compile,
        exact=opts.exact,
    )
    fast.prepare_model(run.flow)
    start = time.perf_counter()
    with torch.inference_mode(), fast.backends():
        sets, records = _scored_sets(run, ood, opts, fast, quiet)
    seconds = time.perf_counter() - start
    for s in sets:
        if len(s) < MIN_SAMPLES:
            which = "the in-distribution test set" if s.name is None else f"OOD set {s.key}"
            raise DatasetError(
                f"{which} has {len(s)} sample{'s' if len(s) != 1 else ''} to score: an AUROC needs at least "
                f"{MIN_SAMPLES} on each side (raise --limit, or give a larger set)"
            )
    context = EvaluationContext(
        run, aux, evaluated=ood, device=device, batch_size=opts.batch_size, fast=fast, quiet=quiet, detectors=chosen
    )
    for det in chosen:
        det.check(context, sets)  # everything that cannot work fails before any auxiliary model trains
    with fast.backends():
        feature_seconds = features_of_sets(context, chosen, sets)
        runs = [_run_detector(det, context, sets) for det in chosen]
    costs = SharedCosts(seconds, feature_seconds, sum(len(s) for s in sets))
    evaluation = _evaluation(run, sets, records, runs, fast, opts, costs, aux)
    training = training_summary(run.dir)
    partial = [f"the evaluated run {run.dir}: {training.describe()}"] if training and training.partial else []
    partial += context.partial  # auxiliary models cut short
    evaluation = replace(evaluation, report=evaluation.report.with_(training=training, partial=tuple(partial) or None))
    if write:
        _write(run, evaluation, extra=len(chosen) > 1)
    return evaluation


def _scored_sets(
    run: Run, ood: list[str], opts: ScoringOptions, fast: FastPath, quiet: bool
) -> tuple[list[Samples], list[SampleRecord]]:
    """The in-distribution test set and every OOD set, loaded once and scored by the run's flow (bits/dim)."""
    cfg = run.config.data
    test_limit = opts.limit if opts.limit is not None else cfg.test_limit
    plan: list[tuple[str | None, str, int, list[int] | None, int | None]] = [
        (None, cfg.dataset, opts.seed, cfg.classes, test_limit)
    ]
    for name in ood:
        same = name == cfg.dataset
        key = f"{name}[classes={','.join(map(str, cfg.ood_classes))}]" if same and cfg.ood_classes else name
        plan.append((name, key, opts.seed + 1, cfg.ood_classes if same else None, opts.limit))
    sets, records = [], []
    for dataset, key, seed, classes, limit in plan:
        ds = scored_samples(run, dataset, limit=limit, classes=classes)
        transform = run.standardizer if ds.kind == "vector" else None
        bpd = score_samples(
            run.flow, ds.data, batch_size=opts.batch_size, seed=seed, transform=transform, fast=fast,
            progress=None if quiet else f"score {ds.name}",
        )  # fmt: skip
        sets.append(Samples(key, ds.data, ds.kind, bpd, noise_seed=seed, name=dataset))
        records.append(_record(run, dataset, ds, limit, seed))
    return sets, records


def _record(run: Run, name: str | None, ds: ArrayDataset, limit: int | None, noise_seed: int) -> SampleRecord:
    """What was scored for one set: its split, the limit asked for, every conversion the loader made (channels,
    size, float pixels), the seeds and the fingerprint of the scored array, so that ``report.json`` says when an
    OOD set is not what the user gave and two numbers can be matched to the samples they were computed on."""
    return SampleRecord(
        scored_split(run, name),
        limit,
        tuple(ds.conversions),
        seed=run.config.seed,
        noise_seed=noise_seed,
        fingerprint=fingerprint(ds.data),
    )


@dataclass
class _DetectorResult:
    detector: Detector
    scores: dict[str, np.ndarray]
    components: dict[str, dict[str, np.ndarray]]
    fit_seconds: float
    score_seconds: float

    @property
    def seconds(self) -> float:
        return self.fit_seconds + self.score_seconds


def _run_detector(det: Detector, context: EvaluationContext, sets: list[Samples]) -> _DetectorResult:
    """Fit ``det`` on the run (unless a detector that reads it fitted it already) and score every set, timing
    the two apart (the fit includes auxiliary training; scoring is what a new image costs)."""
    start = time.perf_counter()
    context.fit(det)
    fitted = time.perf_counter()
    scores = {s.key: shared_score(det, s) for s in sets}
    components = {s.key: det.components(s) for s in sets}
    return _DetectorResult(det, scores, components, fitted - start, time.perf_counter() - fitted)


def _evaluation(
    run: Run,
    sets: list[Samples],
    records: list[SampleRecord],
    results: list[_DetectorResult],
    fast: FastPath,
    opts: ScoringOptions,
    costs: SharedCosts,
    aux: AuxSettings,
) -> Evaluation:
    """The report and the arrays of one evaluation (``sets[0]`` is the in-distribution set)."""
    in_set, in_key = sets[0], sets[0].key
    ood: dict[str, OODResult] = {}
    for s, record in zip(sets[1:], records[1:], strict=True):
        metrics: dict[str, DetectorMetrics] = {}
        for r in results:
            m: dict[str, Any] = detection_metrics(r.scores[in_key], r.scores[s.key])
            m["fingerprint"] = fingerprint(r.scores[in_key], r.scores[s.key])
            if r.detector.info.per_batch:
                facts = r.detector.facts()
                m.update({k: facts[k] for k in ("M", "num_batches") if k in facts})
            metrics[r.detector.info.name] = DetectorMetrics.from_json(m)
        ood[s.key] = OODResult(BitsPerDim.from_json(summarize_scores(s.bpd)), record, metrics)
    images = sum(len(s) for s in sets)
    report = EvaluationReport(
        run_dir=str(run.dir.resolve()),
        model=run.config.to_dict()["model"],
        metric_convention=METRIC_DOC,
        # Wall time of the likelihood scoring, data loading included (the detectors are timed separately).
        scoring=Scoring(
            fast.describe(),
            opts.batch_size,
            seconds=round(costs.flow_seconds, 3),
            images=images,
            images_per_second=round(images / max(costs.flow_seconds, 1e-9), 1),
            feature_seconds=round(costs.feature_seconds, 3) if costs.feature_seconds is not None else None,
        ),
        in_distribution=InDistribution(
            run.config.data.dataset, BitsPerDim.from_json(summarize_scores(in_set.bpd)), records[0]
        ),
        ood=ood,
        provenance=provenance.current(),
    )
    if len(results) > 1:
        report = report.with_(
            scores={r.detector.info.name: _detector_run(r, sets, results, costs) for r in results},
            score_settings=_settings_record(results, aux),
        )
    return Evaluation(
        report,
        {s.key: s.bpd for s in sets},
        {r.detector.info.name: r.scores for r in results},
        {r.detector.info.name: r.components for r in results if any(r.components.values())},
    )


def _detector_run(
    r: _DetectorResult, sets: list[Samples], results: list[_DetectorResult], costs: SharedCosts
) -> DetectorRun:
    """The report's entry of one detector: what it is, what its fit learnt, its wall times and scoring throughput,
    its components' AUROCs."""
    in_key = sets[0].key
    described: dict[str, Any] = {
        **r.detector.info.describe(),
        **r.detector.facts(),
        "seconds": round(r.seconds, 2),
        "fit_seconds": round(r.fit_seconds, 2),
        "score_seconds": round(r.score_seconds, 3),
        "images_per_second": images_per_second(r, results, costs),
    }
    comp_auroc: dict[str, dict[str, float]] = {}
    for s in sets[1:]:
        for comp, values in r.components[s.key].items():
            comp_auroc.setdefault(comp, {})[s.key] = detection_metrics(r.components[in_key][comp], values)["auroc"]
    if comp_auroc:
        described["components_auroc"] = comp_auroc
    return DetectorRun.from_json(described)


def _settings_record(results: list[_DetectorResult], aux: AuxSettings) -> dict[str, Any]:
    """Every setting that decided the scores: each detector's own and the auxiliary models'."""
    record: dict[str, Any] = {}
    for r in results:
        values = asdict(r.detector.settings)
        if values:
            record[r.detector.info.name] = values
    uses_aux = any(r.detector.info.auxiliary for r in results)
    return {**record, "aux": asdict(aux)} if uses_aux else record


def _write(run: Run, evaluation: Evaluation, *, extra: bool) -> None:
    """``scores.npz``, ``ood_scores.npz`` (with detectors beyond the baseline), ``histogram.png``, then
    ``report.json``: each written whole or not at all, the report last, so that a report always describes an
    evaluation whose arrays were written."""
    out = RunDir(run.dir)
    atomic_write_npz(out.scores, evaluation.bits_per_dim)
    if extra:
        atomic_write_npz(out.ood_scores, evaluation.flat_scores())
    cfg = run.config.data
    plot_bpd_histograms(
        evaluation.bits_per_dim,
        out.histogram,
        title=f"{run.flow.name} trained on {cfg.dataset}",
        in_distribution=cfg.dataset,
    )
    evaluation.report.save(out.report)


def format_report(report: EvaluationReport) -> str:
    """A plain-text table of a report (used by the CLI and the demo)."""
    ind = report.in_distribution
    lines = [f"{'dataset':<28}{'bits/dim mean':>14}{'median':>10}{'AUROC':>8}{'AUPR-in':>9}{'FPR95':>8}{'n':>7}"]
    b = ind.bits_per_dim
    lines.append(f"{ind.dataset + ' (in)':<28}{b.mean:>14.3f}{b.median:>10.3f}{'':>8}{'':>9}{'':>8}{b.n:>7}")
    for name, entry in report.ood.items():
        b = entry.bits_per_dim
        m = entry.metrics[BASELINE]
        lines.append(
            f"{name:<28}{b.mean:>14.3f}{b.median:>10.3f}{m.auroc:>8.3f}{m.aupr_in:>9.3f}{m.fpr95:>8.3f}{b.n:>7}"
        )
    if report.nonfinite:
        lines.append(f"warning: {report.nonfinite} non-finite scores (ranked as least in-distribution)")
    few = [(name, b.n) for name, b in [(ind.dataset + " (in)", ind.bits_per_dim)] if b.n < FEW_SAMPLES]
    few += [(name, e.bits_per_dim.n) for name, e in report.ood.items() if e.bits_per_dim.n < FEW_SAMPLES]
    for name, n in few:
        lines.append(f"warning: {name} has only {n} samples: its AUROC moves in steps of 1/{n} (raise --limit)")
    for line in report.partial or ():
        lines.append(f"WARNING: PARTIAL RESULTS - {line}; these numbers are for a partly trained model")
    scoring = report.scoring
    if scoring.images_per_second is not None and scoring.seconds is not None:
        lines.append(
            f"scored {scoring.images} samples in {scoring.seconds:.1f} s ({scoring.images_per_second:,.0f}/s, "
            f"{scoring.precision}, batch {scoring.batch_size}; data loading included)"
        )
    return "\n".join(lines)


def format_scores(report: EvaluationReport) -> str:
    """AUROC of every score (rows) on every OOD set (columns), as plain text."""
    names = list(report.scores or [BASELINE])
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


__all__ = [
    "BASELINE",
    "METRIC_DOC",
    "Evaluation",
    "ScoringOptions",
    "evaluate_run",
    "format_report",
    "format_scores",
    "resolve_detectors",
]
