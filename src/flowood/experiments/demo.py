"""``flowood demo``: the paper's headline failure on the embedded data, in minutes on a CPU."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from flowood.evaluation import EvaluationReport, TrainingSummary
from flowood.experiments import embedding_demo
from flowood.experiments.aux_models import AuxBudget, AuxSettings, EmbeddingFlowSettings
from flowood.experiments.embedding_demo import format_comparison, run_embedding_demo
from flowood.experiments.evaluate import ScoringOptions, evaluate_run, format_report, format_scores
from flowood.ood.detectors import parse_detectors
from flowood.perf import cpu_threads
from flowood.runs import RunDir
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import TrainResult, train

# Scoring 1,000 images per OOD set keeps evaluation to seconds while AUROC is well resolved.
DEMO_OOD_LIMIT = 1000

DEMO_MAIN_MINUTES = 2.5
"""Training cap of the pixel RealNVP in ``flowood demo --all-scores`` (the plain demo uses 3 minutes)."""

DEMO_SCORES = parse_detectors("all")
"""Detectors of ``flowood demo --all-scores``: those of ``--scores all`` (every registered one whose
``in_all`` is set; ``general_likelihood_ratio`` is not, it needs a broad dataset the bundle does not have)."""


def demo_aux() -> AuxSettings:
    """Auxiliary-model sizes of ``flowood demo --all-scores``.

    The background trains as long as the pixel flow (its step count), the K = 3 members (waic's default) 0.5
    min each; the feature pipeline and the embedding flow's budget are those of ``flowood demo --embeddings``,
    its preset ``embedding_likelihood``'s default (``tabular-embeddings-l2``; the embedding demo shows the
    paper's ``tabular-embeddings``)."""
    emb = embedding_demo.SETTINGS
    flow = replace(emb.flow, preset=EmbeddingFlowSettings().preset)
    return AuxSettings(ensemble=AuxBudget(minutes=0.5), test_limit=256, features=emb.features, embedding_flow=flow)


def demo_evaluate_options(all_scores: bool, quiet: bool = False) -> dict[str, Any]:
    """Extra :func:`~flowood.experiments.evaluate.evaluate_run` arguments of ``flowood demo`` (``{}`` unless
    ``--all-scores``)."""
    if not all_scores:
        return {}
    return {"detectors": list(DEMO_SCORES), "aux": demo_aux(), "quiet": quiet}


def demo_config(minutes: float | None = None, overrides: list[str] | None = None, device: str = "auto") -> Any:
    raw = get_preset("demo")
    raw["device"] = device
    if minutes is not None:
        raw["train"]["max_minutes"] = minutes
    return config_from_dict(apply_overrides(raw, overrides or []))


def conclusion(report: EvaluationReport) -> str:
    """One sentence saying what the numbers show."""
    ind = report.in_distribution.dataset
    aurocs = report.aurocs("log_likelihood")
    parts = []
    for name, auroc in aurocs.items():
        verdict = "HIGHER likelihood than" if auroc < 0.5 else "lower likelihood than"
        parts.append(f"{name} gets {verdict} {ind}'s own test set (AUROC {auroc:.2f})")
    failing = [n for n, auroc in aurocs.items() if auroc < 0.5]
    lead = "The paper's finding holds: " if failing else "Result: "
    return (
        lead + "; ".join(parts) + (" - likelihood alone cannot flag these as out-of-distribution." if failing else ".")
    )


def run_demo(
    out: Path,
    *,
    minutes: float | None = None,
    overrides: list[str] | None = None,
    device: str = "auto",
    quiet: bool = False,
    embeddings: bool = False,
    all_scores: bool = False,
) -> EvaluationReport:
    """Train the demo RealNVP on FashionMNIST (embedded), evaluate MNIST and glyphs, return the report.

    With ``embeddings``, also fit a flow on efficientnet-lite0 features of the same data in
    ``out/embedding-flow`` (:mod:`flowood.experiments.embedding_demo`) and add its metrics to the report.
    With ``all_scores``, evaluate the detectors of :data:`DEMO_SCORES` (small auxiliary models; the pixel flow
    then trains for 2.5 minutes unless ``minutes`` is given)."""
    minutes = DEMO_MAIN_MINUTES if all_scores and minutes is None else minutes
    cfg = demo_config(minutes, overrides, device)
    extra = demo_evaluate_options(all_scores, quiet)
    with cpu_threads(None):
        result = train(cfg, out, quiet=quiet)
        report = evaluate_run(
            out, cfg.data.ood, device=device, scoring=ScoringOptions(limit=DEMO_OOD_LIMIT), **extra
        ).report
    report = report.with_(training=training_summary(result, cfg.train.epochs))
    report = report.with_(conclusion=conclusion(report))
    if embeddings:
        report = run_embedding_demo(out, report, device=device, quiet=quiet)
    report.save(RunDir(out).report)
    return report


def training_summary(result: TrainResult, epochs: int) -> TrainingSummary:
    """How far the demo's training got: a run cut by ``train.max_minutes`` says so (``partial_steps`` > 0)."""
    return TrainingSummary(
        epochs=epochs,
        epochs_completed=result.epochs_completed,
        steps=result.steps,
        partial_steps=result.partial_steps,
        stopped_by=result.stopped_by,
        notes=tuple(result.notes),
    )


def training_line(training: TrainingSummary) -> str:
    """One line for the summary: complete, or which limit cut the training short and where."""
    done, total, steps = training.epochs_completed, training.epochs, training.steps
    if training.stopped_by == "epochs":
        return f"Training: {done} of {total} epochs ({steps} steps), complete."
    partial = f" + {training.partial_steps} steps of a partial epoch" if training.partial_steps else ""
    return (
        f"Training: PARTIAL - stopped by {training.stopped_by} after {done} of {total} epochs{partial} "
        f"({steps} steps); the numbers below are for the weights it reached."
    )


def print_summary(report: EvaluationReport, out: Path) -> None:
    if report.training is not None:
        print(training_line(report.training))
    print(format_report(report))
    print()
    print(report.conclusion)
    if report.embedding_flow is not None:
        print()
        print(format_comparison(report))
        print(report.embedding_conclusion)
    if report.scores is not None:
        print()
        print(format_scores(report))
    print(
        f"Report files in {out}/ (report.json, histogram.png, samples/). Next: flowood visualize {out} ; "
        f"flowood report {out}"
    )
