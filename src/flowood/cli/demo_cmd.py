"""``flowood demo``: train a small RealNVP on embedded FashionMNIST and show the likelihood failure."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_command(
    out: Path = typer.Option(Path("flowood-demo"), "--out", "-o", help="Run directory to write."),
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        help="Wall-clock safety cap of the training in minutes (default 10); the budget is one epoch, and a run "
        "the cap cuts is reported as PARTIAL.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a run of another config already in --out (a demo run of this one is reused)."
    ),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Config override key=value (repeat)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    embeddings: bool = typer.Option(
        False, "--embeddings", help="Also fit a flow on efficientnet-lite0 features (paper sec. 8), report both AUROCs."
    ),
    all_scores: bool = typer.Option(
        False,
        "--all-scores",
        help="Report every OOD detector (likelihood ratio, input complexity, typicality, WAIC, DoSE, per-scale, "
        "latent typicality, embedding likelihood and the model-free baselines; docs/scores.md) with small "
        "auxiliary models (about 10-15 minutes on 2 CPU cores).",
    ),
) -> None:
    """Run the paper's headline experiment on the embedded data and explain the result."""
    from flowood.cli.options import invoked_as
    from flowood.experiments.demo import print_summary, run_demo

    report = run_demo(
        out,
        minutes=minutes,
        overrides=overrides,
        device=device,
        quiet=quiet,
        embeddings=embeddings,
        all_scores=all_scores,
        force=force,
    )
    print_summary(report, out, invoked_as())


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
