"""``flowood evaluate``: exact bits/dim of in-distribution and OOD data, and OOD metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from flowood.cli.options import check_data_root

if TYPE_CHECKING:
    from flowood.experiments.auxiliary import ScoreSettings


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
    ensemble_size: int = typer.Option(3, "--ensemble-size", help="waic: number K of flows in the ensemble."),
    mutation_rate: float = typer.Option(0.2, "--mutation-rate", help="likelihood_ratio: background mutation rate."),
    typicality_m: int = typer.Option(10, "--typicality-m", help="typicality: samples M per batch."),
    aux_minutes: float = typer.Option(1.0, "--aux-minutes", help="waic: training cap of each member (minutes)."),
    background_minutes: float | None = typer.Option(
        None,
        "--background-minutes",
        help="likelihood_ratio / general_likelihood_ratio: training cap of the background / general flow "
        "(default: as many steps as the main model took).",
    ),
    general_dataset: str | None = typer.Option(
        None, "--general-dataset", help="general_likelihood_ratio: broad dataset of the general model."
    ),
    dose_estimator: str = typer.Option("kde", "--dose-estimator", help="dose: kde (default) or ocsvm."),
    score_setting: list[str] = typer.Option(
        [],
        "--score-setting",
        help="KEY=VALUE of any detector setting (repeatable; e.g. embedding_train_limit=10000, "
        "embedding_preset=tabular-embeddings); the fields of flowood.experiments.auxiliary.ScoreSettings.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or auxiliary-training logs."),
) -> None:
    """Write report.json, scores.npz and histogram.png into RUN_DIR and print the table."""
    check_data_root(data_root)
    _validate(limit=limit, batch_size=batch_size, precision=precision)
    from flowood.experiments.evaluate import evaluate_run, format_report

    names: list[str] = []
    for item in ood:  # accept both `--ood a --ood b` and `--ood a,b`
        names += [n for n in item.split(",") if n]
    from flowood.experiments.evaluate import format_scores
    from flowood.ood.detectors import parse_detectors

    score_names = parse_detectors(scores)
    settings = score_settings(
        ensemble_size=ensemble_size,
        mutation_rate=mutation_rate,
        typicality_m=typicality_m,
        background_minutes=background_minutes,
        member_minutes=aux_minutes,
        general_dataset=general_dataset,
        dose_estimator=dose_estimator,
        extra=parse_score_settings(score_setting),
    )
    report = evaluate_run(
        run_dir,
        names or None,
        limit=limit,
        batch_size=batch_size,
        device=device,
        seed=seed,
        data_root=data_root,
        precision=precision,
        compile=compile,
        exact=exact,
        scores=score_names,
        score_settings=settings,
        quiet=quiet,
    )
    typer.echo(format_report(report))
    if len(score_names) > 1:
        typer.echo()
        typer.echo(format_scores(report))
    typer.echo(f"wrote {run_dir}/report.json, {run_dir}/histogram.png")


def _validate(*, limit: int | None, batch_size: int, precision: str | None) -> None:
    """Option checks with one-line errors (the evaluation code behind them assumes valid values)."""
    from flowood.errors import ConfigError
    from flowood.perf import PRECISIONS

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give a number of samples >= 1 (or leave it out to score everything)")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: give a batch size >= 1 (default 512)")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")


FLAGS = {
    "ensemble_size": "--ensemble-size",
    "mutation_rate": "--mutation-rate",
    "typicality_m": "--typicality-m",
    "background_minutes": "--background-minutes",
    "member_minutes": "--aux-minutes",
    "general_dataset": "--general-dataset",
    "dose_estimator": "--dose-estimator",
}
"""The flag that sets each :class:`~flowood.experiments.auxiliary.ScoreSettings` field."""


def parse_score_settings(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` → ScoreSettings keywords, values parsed as ``--set`` parses them
    (:func:`flowood.train.config.parse_override`); one-line errors for bad items."""
    import dataclasses

    from flowood.errors import ConfigError
    from flowood.experiments.auxiliary import ScoreSettings
    from flowood.train.config import parse_override

    known = {f.name for f in dataclasses.fields(ScoreSettings)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--score-setting {item!r}: write KEY=VALUE, e.g. embedding_train_limit=10000")
        path, value = parse_override(item, flag="--score-setting")
        if len(path) != 1 or path[0] not in known:
            raise ConfigError(f"--score-setting {key.strip()}: unknown setting; known: {', '.join(sorted(known))}")
        out[path[0]] = value
    return out


def score_settings(*, extra: dict[str, Any] | None = None, **flags: Any) -> ScoreSettings:
    """:class:`ScoreSettings` from the flags' values and ``--score-setting`` items (which win); a bad value's
    error names the flag or item that gave it, before any scoring."""
    from flowood.errors import ConfigError, FieldError
    from flowood.experiments.auxiliary import ScoreSettings

    extra = extra or {}
    try:
        return ScoreSettings(**{**flags, **extra})
    except FieldError as err:
        name = f"--score-setting {err.field}" if err.field in extra else FLAGS.get(err.field, err.field)
        raise ConfigError(err.template.format(name=name)) from None


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
