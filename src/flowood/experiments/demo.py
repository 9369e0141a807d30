"""``flowood demo``: the paper's headline failure on the embedded data, in minutes on a CPU."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from flowood.evaluation import EvaluationReport, TrainingSummary
from flowood.experiments import embedding_demo
from flowood.experiments.aux_models import AuxBudget, AuxSettings, EmbeddingFlowSettings
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.embedding_demo import format_comparison, run_embedding_demo
from flowood.experiments.evaluate import ScoringOptions, evaluate_run, format_report, format_scores
from flowood.ood.detectors import parse_detectors
from flowood.perf import cpu_threads
from flowood.runs import RunDir
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset

# Scoring 1,000 images per OOD set keeps evaluation to seconds while AUROC is well resolved.
DEMO_OOD_LIMIT = 1000

DEMO_SCORES = parse_detectors("all")
"""Detectors of ``flowood demo --all-scores``: those of ``--scores all`` (every registered one whose
``in_all`` is set; ``general_likelihood_ratio`` is not, it needs a broad dataset the bundle does not have)."""

DEMO_MEMBER_STEPS = 60
"""Optimiser steps of each WAIC member of ``flowood demo --all-scores`` (the pixel flow takes one epoch: 157)."""


def demo_aux() -> AuxSettings:
    """Auxiliary-model sizes of ``flowood demo --all-scores``, all in optimiser steps (the same numbers on an
    idle and on a busy machine).

    The background trains as long as the pixel flow (its step count), the K = 3 members (waic's default)
    :data:`DEMO_MEMBER_STEPS` steps each; the feature pipeline and the embedding flow's budget are those of
    ``flowood demo --embeddings``, its preset ``embedding_likelihood``'s default (``tabular-embeddings-l2``; the
    embedding demo shows the paper's ``tabular-embeddings``)."""
    emb = embedding_demo.SETTINGS
    flow = replace(emb.flow, preset=EmbeddingFlowSettings().preset)
    return AuxSettings(
        ensemble=AuxBudget(max_steps=DEMO_MEMBER_STEPS), test_limit=256, features=emb.features, embedding_flow=flow
    )


def demo_evaluate_options(all_scores: bool, quiet: bool = False) -> dict[str, Any]:
    """Extra :func:`~flowood.experiments.evaluate.evaluate_run` arguments of ``flowood demo`` (``{}`` unless
    ``--all-scores``)."""
    if not all_scores:
        return {}
    return {"detectors": list(DEMO_SCORES), "aux": demo_aux(), "quiet": quiet}


DEMO_SAFETY_MINUTES = 10.0
"""Wall-clock safety cap of the demo's training: its budget is one epoch (156 steps, about 2 CPU-minutes); the cap
only stops a machine so busy that the epoch would take longer, and the demo then says PARTIAL."""


def demo_config(minutes: float | None = None, overrides: list[str] | None = None, device: str = "auto") -> Any:
    """The demo preset (one epoch: its budget in steps) with ``minutes`` as its wall-clock safety cap (default
    :data:`DEMO_SAFETY_MINUTES`; a run it cuts is reported as PARTIAL)."""
    raw = get_preset("demo")
    raw["device"] = device
    raw["train"]["max_minutes"] = DEMO_SAFETY_MINUTES if minutes is None else minutes
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
    force: bool = False,
) -> EvaluationReport:
    """Train the demo RealNVP on FashionMNIST (embedded), evaluate MNIST and glyphs, return the report.

    The run in ``out`` is obtained with :func:`~flowood.experiments.derived_runs.train_or_reuse`: a demo run of
    the same config already there is reused (``flowood demo --all-scores`` after ``make demo`` scores the same
    model) and an interrupted one is finished; a run of another config is refused unless ``force``.
    With ``embeddings``, also fit a flow on efficientnet-lite0 features of the same data in
    ``out/embedding-flow`` (:mod:`flowood.experiments.embedding_demo`) and add its metrics to the report.
    With ``all_scores``, evaluate the detectors of :data:`DEMO_SCORES` (small auxiliary models, :func:`demo_aux`).

    Raises:
        RunInUseError: ``out`` holds another run (or files that are not a run's) and not ``force``, or another
            process writes it.
    """
    cfg = demo_config(minutes, overrides, device)
    extra = demo_evaluate_options(all_scores, quiet)
    with cpu_threads(None):
        say = None if quiet else (lambda message: print(f"[demo] {message}", flush=True))
        train_or_reuse(out, cfg, quiet=quiet, log=say, label="demo RealNVP", replace=force)
        report = evaluate_run(
            out, cfg.data.ood, device=device, scoring=ScoringOptions(limit=DEMO_OOD_LIMIT), **extra
        ).report
    report = report.with_(conclusion=conclusion(report))
    if embeddings:
        report = run_embedding_demo(out, report, device=device, quiet=quiet)
    with RunDir(out).hold("demo"):
        report.save(RunDir(out).report)
    return report


def training_line(training: TrainingSummary) -> str:
    """One line for the summary: complete, or which limit cut the training short and where."""
    done, total, steps = training.epochs_completed, training.epochs, training.steps
    if not training.partial:
        return f"Training: {done} of {total} epochs ({steps} steps), complete ({training.stopped_by})."
    partial = f" + {training.partial_steps} steps of a partial epoch" if training.partial_steps else ""
    of = f" of {training.planned_steps}" if training.planned_steps is not None else ""
    return (
        f"Training: PARTIAL - stopped by {training.stopped_by} after {done} of {total} epochs{partial} "
        f"({steps}{of} steps); the numbers below are for the weights it reached, not for the demo's model "
        "(run it on a less busy machine, or raise --minutes)."
    )


def print_summary(report: EvaluationReport, out: Path, command: str = "flowood") -> None:
    """The demo's summary; ``command`` is how the user runs flowood (``.venv/bin/flowood`` after ``make``)."""
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
        f"Report files in {out}/ (report.json, histogram.png, samples/). Next: {command} visualize {out} ; "
        f"{command} report {out}"
    )
