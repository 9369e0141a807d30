"""``flowood presets``: the paper's configurations and their parameter counts."""

from __future__ import annotations

import json

import typer

from flowood.cli.options import print_table
from flowood.train.presets import PRESETS, preset_parameter_count


def presets(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    all_presets: bool = typer.Option(True, "--all/--paper", help="Include small CPU presets, or only the paper's."),
) -> None:
    """List presets: model, data, optimiser settings and parameter count."""
    rows = []
    for name, preset in PRESETS.items():
        if not all_presets and not preset.paper:
            continue
        rows.append({**preset.to_dict(), "name": name, "parameters": preset_parameter_count(name)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="flowood presets")
    for col in ("name", "model", "params", "dataset", "optimiser", "epochs"):
        table.add_column(col)
    for r in rows:
        m = r["model"]
        t = r["train"]
        table.add_row(
            r["name"],
            m["name"],
            f"{r['parameters'] / 1e6:.1f}M",
            r["data"]["dataset"],
            f"{t['optimizer']} lr={t['lr']:g}",
            str(t["epochs"]),
        )
    print_table(table)


def register(app: typer.Typer) -> None:
    app.command("presets")(presets)
