"""``flowood evaluate``: exact bits/dim of in-distribution and OOD data, and OOD metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flowood.cli.options import check_data_root, split_names


def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run directory (from `flowood train` or `flowood demo`)."),
    ood: list[str] = typer.Option([], "--ood", help="OOD dataset name(s); default: the run config's data.ood."),
    limit: int | None = typer.Option(None, "--limit", help="Score at most N samples per dataset."),
    batch_size: int = typer.Option(512, "--batch-size", help="Scoring batch size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where to look for datasets first."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dequantisation noise."),
    precision: str | None = typer.Option(
        None, "--precision", help="auto, fp32, bf16 or fp16 (default: the run's train.precision)."
    ),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the flow for scoring (large sets)."),
    exact: bool = typer.Option(False, "--exact", help="Score in fp32, eager, contiguous (the reference path)."),
    scores: list[str] = typer.Option(
        [],
        "--scores",
        help="OOD detectors, comma-separated or 'all' (default log_likelihood); `flowood benchmark --list` or "
        "docs/scores.md lists them.",
    ),
    ensemble_size: int | None = typer.Option(
        None, "--ensemble-size", help="waic: number K of flows (waic.ensemble_size; default 3)."
    ),
    mutation_rate: float | None = typer.Option(
        None, "--mutation-rate", help="likelihood_ratio: background mutation rate (default 0.2)."
    ),
    typicality_m: int | None = typer.Option(
        None, "--typicality-m", help="typicality: samples M per batch (default 10)."
    ),
    aux_steps: int | None = typer.Option(
        None,
        "--aux-steps",
        help="waic: optimiser steps of each member (aux.ensemble.max_steps; default: as many as the main model took).",
    ),
    aux_minutes: float | None = typer.Option(
        None,
        "--aux-minutes",
        help="waic: wall-clock safety cap of each member in minutes (aux.ensemble.minutes; default none); a member "
        "it cuts makes the results PARTIAL.",
    ),
    background_minutes: float | None = typer.Option(
        None,
        "--background-minutes",
        help="likelihood_ratio / general_likelihood_ratio: wall-clock safety cap of the background / general flow "
        "(default none: they train as many steps as the main model took).",
    ),
    general_dataset: str | None = typer.Option(
        None, "--general-dataset", help="general_likelihood_ratio: broad dataset of the general model."
    ),
    dose_estimator: str | None = typer.Option(None, "--dose-estimator", help="dose: kde (default) or ocsvm."),
    score_setting: list[str] = typer.Option(
        [],
        "--score-setting",
        help="DETECTOR.FIELD=VALUE or aux.FIELD=VALUE (repeatable; e.g. waic.ensemble_size=5, "
        "aux.features.train_limit=10000, aux.embedding_flow.preset=tabular-embeddings); docs/scores.md lists them.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or auxiliary-training logs."),
) -> None:
    """Write report.json, scores.npz and histogram.png into RUN_DIR and print the table."""
    check_data_root(data_root)
    from flowood.experiments.evaluate import ScoringOptions, evaluate_run, format_report, format_scores

    scoring = _checked(
        ScoringOptions,
        {"limit": limit, "batch_size": batch_size, "seed": seed, "precision": precision, "compile": compile,
         "exact": exact},
        {"limit": "--limit", "batch_size": "--batch-size", "seed": "--seed", "precision": "--precision"},
    )  # fmt: skip
    names = split_names(ood, "--ood", "dataset")
    split_names(scores, "--scores", "detector")
    aliases = {
        "--ensemble-size": ensemble_size,
        "--mutation-rate": mutation_rate,
        "--typicality-m": typicality_m,
        "--aux-steps": aux_steps,
        "--aux-minutes": aux_minutes,
        "--background-minutes": background_minutes,
        "--general-dataset": general_dataset,
        "--dose-estimator": dose_estimator,
    }
    from flowood.experiments.detector_settings import from_command_line

    detectors, aux = from_command_line(scores, aliases, score_setting)
    evaluation = evaluate_run(
        run_dir,
        names or None,
        detectors=detectors,
        aux=aux,
        scoring=scoring,
        device=device,
        data_root=data_root,
        quiet=quiet,
    )
    report = evaluation.report
    typer.echo(format_report(report))
    if len(detectors) > 1:
        typer.echo()
        typer.echo(format_scores(report))
    typer.echo(f"wrote {run_dir}/report.json, {run_dir}/histogram.png")


def _checked(cls: type, values: dict[str, Any], flags: dict[str, str]) -> Any:
    """``cls(**values)`` with a bad value's one-line error naming the flag that gave it."""
    from flowood.errors import FieldError
    from flowood.settings import as_config_error

    try:
        return cls(**values)
    except FieldError as err:
        raise as_config_error(err, flags.get(err.field, err.field)) from None


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
