"""``flowood reproduce``: one command per finding of the paper."""

from __future__ import annotations

from pathlib import Path

import typer


def reproduce_command(
    name: str | None = typer.Argument(None, help="Experiment name, or 'all' (see --list)."),
    list_: bool = typer.Option(False, "--list", help="List the experiments and exit."),
    budget: str = typer.Option("quick", "--budget", help="quick (CPU, embedded data) or paper (GPU, full data)."),
    out: Path = typer.Option(Path("flowood-reproduce"), "--out", "-o", help="Output directory (models are reused)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Config override for every model (repeat)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Reproduce a claim of the paper: writes figures, results.json and summary.md into OUT/NAME."""
    from flowood.errors import ConfigError, DatasetError
    from flowood.experiments.reproduce import EXPERIMENTS, check_arguments, reproduce, write_index
    from flowood.runs import RunDir

    if list_ or name is None:
        for exp in EXPERIMENTS.values():
            typer.echo(f"{exp.name:<20} claim {exp.claim:<3} {exp.description}")
        if name is None and not list_:
            raise ConfigError("give an experiment name (above) or 'all'")
        return
    names = list(EXPERIMENTS) if name == "all" else [name]
    if name == "all":
        # modern-flows alone needs data beyond the embedded bundle (full FashionMNIST): without it, `all` runs the
        # paper's claims and says what it left out, rather than refusing everything.
        try:
            check_arguments(["modern-flows"], budget, overrides, device)
        except DatasetError as err:
            typer.echo(f"[modern-flows] skipped: {err}")
            names.remove("modern-flows")
    check_arguments(names, budget, overrides, device)  # everything, before any model trains
    with RunDir(out).hold_output("reproduce"):  # one reproduce writes OUT at a time
        for n in names:
            result = reproduce(n, out, budget=budget, device=device, quiet=quiet, overrides=overrides)
            verdict = "holds" if result["holds"] else "does NOT hold"
            typer.echo(f"[{n}] claim {result['claim']} {verdict}: {result['statement']}")
            typer.echo(f"        -> {out / n}/summary.md ({result['seconds']:.0f} s)")
        typer.echo(f"index of all results in {out}: {write_index(out)}")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_command)
