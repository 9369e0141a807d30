"""``flowood.cli.datasets_cmd``: ``flowood datasets`` as JSON and as a table, from the registry's listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowood.cli.app import app
from flowood.data import list_datasets


def test_cli_datasets_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWOOD_DATA", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["datasets", "--json", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == [i.name for i in list_datasets(tmp_path)]  # the listing, in its order
    by_name = {r["name"]: r for r in rows}
    assert by_name["mnist-mini"]["available_now"] is True and by_name["mnist-mini"]["shape"] == [1, 28, 28]
    assert by_name["cifar10"]["available_now"] is False
    assert any(str(tmp_path) in w for w in by_name["cifar10"]["where_looked"])
    for key in ("kind", "splits", "classes", "where_looked"):
        assert key in by_name["svhn"]
    table = CliRunner().invoke(app, ["datasets"], terminal_width=200)
    assert table.exit_code == 0 and "fashionmnist-mini" in table.output
