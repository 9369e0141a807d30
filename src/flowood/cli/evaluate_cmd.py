"""``flowood evaluate``: exact bits/dim of in-distribution and OOD data, and OOD metrics."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run directory (from `flowood train` or `flowood demo`)."),
    ood: list[str] = typer.Option([], "--ood", help="OOD dataset name(s); default: the run config's data.ood."),
    limit: int | None = typer.Option(None, "--limit", help="Score at most N samples per dataset."),
    batch_size: int = typer.Option(512, "--batch-size", help="Scoring batch size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where to look for datasets first."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dequantisation noise."),
) -> None:
    """Write report.json, scores.npz and histogram.png into RUN_DIR and print the table."""
    from flowood.experiments.evaluate import evaluate_run, format_report

    names: list[str] = []
    for item in ood:  # accept both `--ood a --ood b` and `--ood a,b`
        names += [n for n in item.split(",") if n]
    report = evaluate_run(
        run_dir, names or None, limit=limit, batch_size=batch_size, device=device, seed=seed, data_root=data_root
    )
    typer.echo(format_report(report))
    typer.echo(f"wrote {run_dir}/report.json, {run_dir}/histogram.png")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
