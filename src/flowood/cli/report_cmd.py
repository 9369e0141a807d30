"""``flowood report``: one self-contained HTML page for a run."""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(
    run_dir: Path = typer.Argument(..., help="Run directory (from `flowood train` or `flowood demo`)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file to write (default RUN_DIR/report.html)."),
) -> None:
    """Write report.html: config, training curves, evaluation table, coupling measurement and all figures."""
    from flowood.experiments.report import build_report

    path = build_report(run_dir, out)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
