"""``flowood benchmark``: every OOD detector against a protocol's near and far OOD sets, one leaderboard."""

from __future__ import annotations

from pathlib import Path

import typer

from flowood.cli.options import check_data_root


def benchmark_command(
    protocol: str = typer.Argument(
        None,
        help="Shipped protocol (fashionmnist, fashionmnist-near, mnist-near, cifar10, cifar10-near) or a .yaml file.",
    ),
    budget: str = typer.Option("quick", "--budget", help="quick (minutes on a CPU) or full."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (default benchmark-PROTOCOL-BUDGET)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where to look for datasets first."),
    list_all: bool = typer.Option(False, "--list", help="List the shipped protocols and the registered detectors."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", help="Wall-clock safety cap on each flow's training; a cut flow makes results partial."
    ),
    rank_partial: bool = typer.Option(False, "--rank-partial", help="Rank detectors even on partially trained flows."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (fixed, so results do not depend on load)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or training logs."),
) -> None:
    """Train (or reuse) what the protocol needs and write leaderboard.md, leaderboard.json and report.html."""
    check_data_root(data_root)
    from flowood.errors import ConfigError
    from flowood.experiments.benchmark import available_protocols, format_leaderboard, run_benchmark
    from flowood.ood.detectors import DETECTORS

    if list_all:
        typer.echo("protocols: " + ", ".join(available_protocols()))
        for name, cls in DETECTORS.items():
            typer.echo(f"{name:<26}{cls.info.summary}")
        return
    if not protocol:
        raise ConfigError("name a protocol: flowood benchmark fashionmnist --budget quick (see --list)")
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if max_minutes is not None and max_minutes <= 0:
        raise ConfigError(f"--max-minutes must be > 0, got {max_minutes:g}")
    from flowood.devices import resolve_device
    from flowood.experiments.protocol import load_protocol

    checked = load_protocol(protocol, budget)  # the whole protocol is checked before anything is created
    resolve_device(device)
    out = out or Path(f"benchmark-{Path(protocol).stem}-{budget}")
    board = run_benchmark(  # holds OUT's lock while it writes there
        checked,
        out,
        budget=budget,
        device=device,
        quiet=quiet,
        data_root=data_root,
        max_minutes=max_minutes,
        rank_partial=rank_partial,
        threads=threads,
    )
    typer.echo(format_leaderboard(board))
    typer.echo(f"wrote {out}/leaderboard.md, {out}/leaderboard.json, {out}/report.html")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_command)
