"""``flowood benchmark``: every OOD detector against a protocol's near and far OOD sets, one leaderboard."""

from __future__ import annotations

from pathlib import Path

import typer

from flowood.cli.options import check_data_root


def benchmark_command(
    protocol: str = typer.Argument(None, help="Shipped protocol (fashionmnist, cifar10) or a protocol .yaml file."),
    budget: str = typer.Option("quick", "--budget", help="quick (embedded bundle, minutes on a CPU) or full."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (default benchmark-PROTOCOL-BUDGET)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where to look for datasets first."),
    list_all: bool = typer.Option(False, "--list", help="List the shipped protocols and the registered detectors."),
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
    from flowood.devices import resolve_device
    from flowood.experiments.benchmark import load_protocol
    from flowood.runs import RunDir

    checked = load_protocol(protocol, budget)  # the whole protocol is checked before anything is created
    resolve_device(device)
    out = out or Path(f"benchmark-{Path(protocol).stem}-{budget}")
    with RunDir(out).hold_output("benchmark"):  # one benchmark writes OUT at a time
        board = run_benchmark(checked, out, budget=budget, device=device, quiet=quiet, data_root=data_root)
    typer.echo(format_leaderboard(board))
    typer.echo(f"wrote {out}/leaderboard.md, {out}/leaderboard.json, {out}/report.html")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_command)
