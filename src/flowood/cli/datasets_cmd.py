"""``flowood datasets``: every dataset with shape, splits, classes, where it is looked for and availability."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowood.cli.options import check_data_root, print_table


def datasets(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Directory searched first for dataset files."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show descriptions and where each is looked for."),
) -> None:
    """List datasets: kind, per-sample shape, splits, classes, where looked, available now."""
    check_data_root(data_root)
    from flowood.data import list_datasets

    infos = list_datasets(root=data_root)
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="flowood datasets")
    table.add_column("name", no_wrap=True)
    cols = ["kind", "shape", "splits", "classes", "available"] + (["description / where looked"] if verbose else [])
    for col in cols:
        table.add_column(col, overflow="fold")
    for i in infos:
        shape = "x".join(str(s) for s in i.shape) if i.shape else "-"
        where = "\n".join(i.locations[:3]) + (f"\n(+{len(i.locations) - 3} more)" if len(i.locations) > 3 else "")
        avail = "[green]yes[/green]" if i.available_now else "[red]no[/red]"
        row = [i.name, i.kind, shape, ", ".join(i.splits), str(i.num_classes or "-"), avail]
        if verbose:
            row.append(f"{i.description}\n[dim]{where}[/dim]")
        table.add_row(*row)
    print_table(table, wrap=("splits", "description / where looked"))
    if not verbose:
        Console().print("[dim]--verbose shows where each dataset is looked for; --json for everything[/dim]")


def register(app: typer.Typer) -> None:
    app.command("datasets")(datasets)
