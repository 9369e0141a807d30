"""``flowood demo --embeddings``: the paper's positive result (section 8) next to the pixel flow's failure.

The pixel demo (:mod:`flowood.experiments.demo`) trains a RealNVP on FashionMNIST pixels and shows that MNIST
gets *higher* likelihood (AUROC < 0.5). This module embeds the same in-distribution data and the same OOD sets
with a pretrained ImageNet CNN (``efficientnet-lite0`` by default, 1280-d pooled features), fits the tabular
flow to the FashionMNIST features with ``flowood train`` machinery and evaluates it with ``flowood evaluate``
machinery, so the embedding flow is an ordinary run directory (``DEMO/embedding-flow``).

The flow is the same auxiliary model ``embedding_likelihood`` uses: the same settings types
(:class:`~flowood.features.FeatureSettings`, :class:`~flowood.experiments.aux_models.EmbeddingFlowSettings`),
the same config (:func:`~flowood.experiments.aux_models.embedding_flow_config`) and the same derivation
(:func:`~flowood.experiments.derived_runs.train_or_reuse`), so ``flowood evaluate DEMO --scores embedding_likelihood``
with the demo's settings reuses it, and another setting retrains it.

Layout written inside the demo directory::

    DEMO/embeddings/fashionmnist-mini/<pipeline>/train.npz, test.npz   # flowood embed files (one split each)
    DEMO/embeddings/mnist-mini/<extractor>-<size>px-test<N>/test.npz   # OOD sets (test split)
    DEMO/embedding-flow/                                               # run dir: config.yaml, standardize.json...

and ``DEMO/report.json`` gains, per OOD set, ``ood[NAME].metrics.embedding_log_likelihood`` (AUROC, AUPR-in,
AUPR-out, FPR95 of the embedding flow on the same OOD set) plus a top-level ``embedding_flow`` summary, and the
feature baselines on exactly the same feature arrays beside it (issue 23: every table with the embedding flow shows
them): ``embedding_knn`` (``knn``), ``embedding_mahalanobis`` (``mahalanobis``) and ``embedding_gaussian`` (a
Gaussian in the flow's own coordinates, its saved standardiser), computed by the registered detectors.
Features are cached by content (``flowood.features``), so a rerun skips the CNN.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.evaluation import DetectorMetrics, EmbeddingFlowSummary, EmbeddingOOD, EvaluationReport
from flowood.experiments.aux_models import EmbeddingFlowSettings, embedding_flow_config
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.evaluate import evaluate_run
from flowood.features import FeatureSettings, embed_dataset, read_embeddings
from flowood.ood import detection_metrics
from flowood.ood.detectors import Samples, get_detector
from flowood.perf import cpu_threads
from flowood.runs import RunDir
from flowood.settings import check, setting
from flowood.train.config import RunConfig
from flowood.train.data import Standardizer

IN_DATASET = "fashionmnist-mini"
OOD_DATASETS = ("mnist-mini", "glyphs")
METRIC_KEY = "embedding_log_likelihood"
BASELINES = {"knn": "embedding_knn", "mahalanobis": "embedding_mahalanobis", "embedding_gaussian": "embedding_gaussian"}
"""Feature detectors reported beside the embedding flow → their metric keys in the demo's report."""


@dataclass(frozen=True)
class EmbeddingDemoSettings:
    """Sizes of the embedding part of the demo (defaults: about 3-4 minutes on 2 CPU cores, cold cache).

    Attributes:
        features: the extractor, its input size (96 px: efficientnet-lite0 at ~50 images/s on one CPU core;
            better OOD separation than 64 px, see docs/embeddings.md) and the FashionMNIST training / test
            images embedded (class-balanced seeded subsets of the 10,000 / 2,000).
        flow: the embedding flow's preset (``tabular-embeddings``) and budget (300 steps: the same flow on an
            idle and on a busy machine).
        ood_limit: images per OOD set.
        batch_size: extractor batch size.
        threads: torch CPU threads during this part; ``None`` = automatic (1 when the machine's 1-minute load
            average already exceeds its cores, where 2 OpenMP threads were measured up to 25× slower; else
            unchanged).
    """

    features: FeatureSettings = FeatureSettings(size=96, train_limit=3000, test_limit=1000)
    flow: EmbeddingFlowSettings = EmbeddingFlowSettings(preset="tabular-embeddings", max_steps=300)
    ood_limit: int = setting(1000, ge=1, doc="images per OOD set")
    batch_size: int = setting(64, ge=1, doc="extractor batch size")
    threads: int | None = setting(None, ge=1, doc="torch CPU threads (null: automatic)")

    def __post_init__(self) -> None:
        check(self)


SETTINGS = EmbeddingDemoSettings()
"""Module defaults (tests replace this with a tiny configuration)."""


def embed_demo_data(out: Path, settings: EmbeddingDemoSettings, device: str, quiet: bool) -> dict[str, Path]:
    """Write the demo's embedding files; returns dataset name → ``embeddings:`` path (folder or file)."""
    files, f = RunDir(out), settings.features
    common = {"size": f.size, "batch_size": settings.batch_size, "device": device, "progress": not quiet}
    in_dir = files.embeddings(IN_DATASET, f.pipeline)
    for split, limit in (("train", f.train_limit), ("test", f.test_limit)):
        embed_dataset(IN_DATASET, f.extractor, [split], in_dir / f"{split}.npz", limit=limit, **common)  # type: ignore[arg-type]
    paths = {IN_DATASET: in_dir}
    for name in OOD_DATASETS:
        folder = files.embeddings(name, f"{f.extractor}-{f.size}px-test{settings.ood_limit}")
        paths[name] = embed_dataset(
            name,
            f.extractor,
            ["test"],
            folder / "test.npz",
            limit=settings.ood_limit,
            **common,  # type: ignore[arg-type]
        )
    return paths


def embedding_config(paths: dict[str, Path], settings: EmbeddingDemoSettings, device: str, seed: int = 0) -> RunConfig:
    """The embedding flow's config: the auxiliary model's (:func:`embedding_flow_config`) on the demo's files."""
    return embedding_flow_config(settings.flow, paths[IN_DATASET], seed=seed, device=device)


def run_embedding_demo(
    out: Path,
    report: EvaluationReport,
    *,
    device: str = "auto",
    quiet: bool = False,
    settings: EmbeddingDemoSettings | None = None,
) -> EvaluationReport:
    """Embed, train the tabular flow in ``out/embedding-flow``, evaluate, and merge into ``report``.

    Args:
        out: the demo directory (the pixel run lives there too).
        report: the pixel demo's report; the returned copy gains ``ood[NAME].metrics.embedding_log_likelihood``
            for every OOD set, an ``embedding_flow`` summary and ``embedding_conclusion``.
        device: ``auto``, ``cpu`` or ``cuda``.
        quiet: no progress bars.
        settings: sizes (default :data:`SETTINGS`).

    Returns:
        The new report (``report`` itself is frozen and unchanged).
    """
    settings = settings or SETTINGS
    out = Path(out)
    timings: dict[str, float] = {}
    with cpu_threads(settings.threads) as threads:
        start = time.perf_counter()
        paths = embed_demo_data(out, settings, device, quiet)
        timings["embed_seconds"] = time.perf_counter() - start
        cfg = embedding_config(paths, settings, device, seed=report_seed(out))
        run_dir = RunDir(out).embedding_flow
        start = time.perf_counter()
        derived = train_or_reuse(run_dir, cfg, quiet=quiet, label="embedding flow")
        timings["train_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        ood = [f"embeddings:{paths[name]}" for name in OOD_DATASETS]
        emb_report = evaluate_run(run_dir, ood, device=device).report
        timings["evaluate_seconds"] = time.perf_counter() - start

    for name, metrics_by_key in feature_baselines(paths, RunDir(run_dir)).items():
        for key, m in metrics_by_key.items():
            report = report.with_metrics(name, key, m)
    by_name = dict(zip(OOD_DATASETS, ood, strict=True))
    per_set: dict[str, EmbeddingOOD] = {}
    for name, key in by_name.items():
        entry = emb_report.ood[key]
        metrics = entry.metrics["log_likelihood"]
        per_set[name] = EmbeddingOOD(metrics, entry.bits_per_dim, str(paths[name]))
        report = report.with_metrics(name, METRIC_KEY, metrics)
    steps, nonfinite = _progress(run_dir)
    summary = EmbeddingFlowSummary(
        run_dir=str(run_dir.resolve()),
        extractor=settings.features.extractor,
        size=settings.features.size,
        feature_dim=_feature_dim(paths[IN_DATASET] / "train.npz"),
        flow_dim=Standardizer.load(RunDir(run_dir).standardize).out_dim,
        settings=asdict(settings),
        torch_threads=threads,
        steps=derived.result.steps if derived.result is not None else steps,
        nonfinite_steps=derived.result.nonfinite_steps if derived.result is not None else nonfinite,
        test_bits_per_dim=emb_report.in_distribution.bits_per_dim,
        seconds={k: round(v, 1) for k, v in timings.items()},
        ood=per_set,
    )
    partial = (*(report.partial or ()), *(emb_report.partial or ()))
    report = report.with_(embedding_flow=summary, partial=partial or None)
    return report.with_(embedding_conclusion=embedding_conclusion(report))


@dataclass
class FeatureArrays:
    """A :class:`~flowood.ood.detectors.FitContext` over the demo's embedding files, for the feature detectors:
    the training features (reference) and labels, each scored set's features by key, and the embedding flow's own
    coordinates (its saved standardiser)."""

    reference: np.ndarray
    labels: np.ndarray | None
    coordinates: Standardizer
    by_key: dict[str, np.ndarray]

    def features(self, samples: Samples | None) -> np.ndarray:
        return self.reference if samples is None else self.by_key[samples.key]

    def feature_labels(self) -> np.ndarray | None:
        return self.labels

    def feature_coordinates(self, samples: Samples | None) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(self.features(samples), dtype=np.float32))
        return self.coordinates(x).numpy().astype(np.float64)

    def describe_features(self) -> dict[str, Any]:
        return {}


def feature_baselines(paths: dict[str, Path], flow_run: RunDir) -> dict[str, dict[str, DetectorMetrics]]:
    """OOD set → ``{BASELINES key: metrics}`` of ``knn``, ``mahalanobis`` and ``embedding_gaussian`` on the same
    feature arrays the embedding flow was trained and evaluated on."""
    train = read_embeddings(paths[IN_DATASET] / "train.npz")
    ref = next(iter(train.embeddings.values()))
    labels = next(iter(train.labels.values()), None)
    if labels is not None and np.unique(labels[labels >= 0]).size < 2:
        labels = None
    sets = {IN_DATASET: paths[IN_DATASET] / "test.npz", **{n: paths[n] for n in OOD_DATASETS}}
    by_key = {k: next(iter(read_embeddings(v).embeddings.values())) for k, v in sets.items()}
    context = FeatureArrays(ref, labels, Standardizer.load(flow_run.standardize), by_key)
    samples = {k: Samples(k, torch.zeros((len(v), 0)), "vector", np.zeros(len(v))) for k, v in by_key.items()}
    out: dict[str, dict[str, DetectorMetrics]] = {n: {} for n in OOD_DATASETS}
    for name, key in BASELINES.items():
        det = get_detector(name)
        det.fit(context)  # type: ignore[arg-type]  # the feature part of a FitContext is all these read
        score_in = det.score(samples[IN_DATASET])
        for ood in OOD_DATASETS:
            out[ood][key] = DetectorMetrics.from_json(detection_metrics(score_in, det.score(samples[ood])))
    return out


def report_seed(out: Path) -> int:
    """The pixel run's seed (the embedding flow shares it, as ``embedding_likelihood``'s flow does)."""
    from flowood.experiments.runs import read_config

    return read_config(out).seed if RunDir(out).is_run() else 0


def _progress(run_dir: Path) -> tuple[int, int]:
    """Steps and non-finite steps of a reused run, from its ``metrics.csv``."""
    rows = RunDir(run_dir).read_metrics()
    if not rows:
        return 0, 0
    last = rows[-1]
    return int(float(last.get("step") or 0)), int(float(last.get("nonfinite_steps") or 0))


def _feature_dim(path: Path) -> int:
    bundle = read_embeddings(path)
    return int(next(iter(bundle.embeddings.values())).shape[1])


def comparison_rows(report: EvaluationReport) -> list[tuple[str, float | None, float | None]]:
    """``(OOD name, pixel-flow AUROC, embedding-flow AUROC)`` for every OOD set of the report."""
    pixel, emb = report.aurocs("log_likelihood"), report.aurocs(METRIC_KEY)
    return [(name, pixel.get(name), emb.get(name)) for name in report.ood]


def embedding_conclusion(report: EvaluationReport) -> str:
    """One sentence comparing the pixel flow with the embedding flow."""
    ind = report.in_distribution.dataset
    parts = []
    for name, pixel, emb in comparison_rows(report):
        if emb is None:
            continue
        pix = f"{pixel:.2f}" if pixel is not None else "n/a"
        parts.append(f"{name}: AUROC {pix} on pixels -> {emb:.2f} on embeddings")
    rows = [r for r in comparison_rows(report) if r[2] is not None]
    better = bool(rows) and all(p is None or e > p for _, p, e in rows)  # type: ignore[operator]
    # "Far better": the pixel flow fails (AUROC < 0.5) or the embedding flow gains at least 0.1 AUROC.
    far = better and all(p is None or p < 0.5 or e - p >= 0.1 for _, p, e in rows)  # type: ignore[operator]
    if better:
        how = "far better than" if far else "better than"
        return (
            f"The paper's positive result: a flow on pretrained-CNN features separates {ind} from the OOD sets "
            f"{how} a flow on pixels ({'; '.join(parts)})."
        )
    return f"Embedding flow vs pixel flow on {ind}: {'; '.join(parts)}."


def format_comparison(report: EvaluationReport) -> str:
    """Plain-text side-by-side AUROC table: pixel RealNVP, embedding flow, and the feature baselines (kNN,
    Mahalanobis, the Gaussian in the flow's coordinates: what the flow adds is its column minus the last)."""
    summary = report.embedding_flow
    features = f"{summary.extractor}@{summary.size}px" if summary is not None else "?@?px"
    head = f"OOD AUROC vs {report.in_distribution.dataset} test (pixel RealNVP | tabular flow on {features} features)"
    lines = [
        head,
        f"{'OOD set':<16}{'pixel flow':>12}{'embedding flow':>16}{'knn':>8}{'mahalanobis':>13}{'gaussian':>10}",
    ]

    def fmt(value: float | None, width: int) -> str:
        return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"

    for name, pixel, emb in comparison_rows(report):
        base = [report.metrics(name, key) for key in BASELINES.values()]
        auroc = [m.auroc if m is not None else None for m in base]
        lines.append(
            f"{name:<16}{fmt(pixel, 12)}{fmt(emb, 16)}{fmt(auroc[0], 8)}{fmt(auroc[1], 13)}{fmt(auroc[2], 10)}"
        )
    if summary is not None:
        secs = summary.seconds
        lines.append(
            f"embedding flow: {summary.steps} steps, {summary.nonfinite_steps} non-finite, "
            f"embed {secs.get('embed_seconds', 0):.0f}s + train {secs.get('train_seconds', 0):.0f}s + "
            f"evaluate {secs.get('evaluate_seconds', 0):.0f}s; run dir {summary.run_dir}"
        )
    return "\n".join(lines)
