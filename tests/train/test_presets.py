"""Typed presets: every preset resolves to exactly the run configuration it had before the typed rewrite.

``data/preset_snapshot.json`` was generated once from the dict-based presets (main at 60b8501) with the
computation of ``_snapshot_of`` below. If a preset or a RunConfig default changes on purpose, regenerate
it with ``PYTHONPATH=src python tests/train/test_presets.py --write`` and say so in CHANGELOG.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from flowood.errors import ConfigError
from flowood.train.config import config_from_dict
from flowood.train.presets import PRESETS, Preset, get_preset, preset_parameter_count

SNAPSHOT = Path(__file__).parent / "data" / "preset_snapshot.json"


def _snapshot_of(name: str) -> dict[str, Any]:
    return {
        "raw": get_preset(name),
        "resolved": config_from_dict(get_preset(name)).to_dict(),
        "parameters": preset_parameter_count(name),
    }


def _expected() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def _plain(value: Any) -> bool:
    """Only the types YAML's safe_dump and JSON write (config.yaml is written from these)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_preset_names_unchanged() -> None:
    assert set(PRESETS) == set(_expected())


@pytest.mark.parametrize("name", sorted(_expected()))
def test_preset_resolves_as_before(name: str) -> None:
    got = _snapshot_of(name)
    assert _plain(got["raw"]), f"{name}: get_preset must return plain dicts and lists"
    want = _expected()[name]
    # Section by section, so a failure names the block that moved.
    for key in ("raw", "resolved"):
        for section in sorted(set(want[key]) | set(got[key])):
            assert json.loads(json.dumps(got[key].get(section))) == want[key].get(section), f"{name}: {key}.{section}"
    assert got["parameters"] == want["parameters"]


def test_preset_is_frozen_and_get_preset_is_a_copy() -> None:
    preset = PRESETS["tabular-embeddings"]
    assert isinstance(preset, Preset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        preset.train["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        preset.train["early_stopping"]["patience"] = 1  # type: ignore[index]
    raw = get_preset("tabular-embeddings")
    raw["train"]["early_stopping"]["patience"] = 99
    raw["data"]["ood"].append("mnist")
    assert get_preset("tabular-embeddings") == _expected()["tabular-embeddings"]["raw"]


def test_preset_variants_share_their_base_without_copying_it() -> None:
    # A variant changes only the model; the rest is its base's (the same objects, not copies).
    for variant, base in (
        ("tabular-spline-breast-cancer", "tabular-breast-cancer"),
        ("maf-breast-cancer", "tabular-breast-cancer"),
        ("tabular-spline-embeddings", "tabular-embeddings"),
        ("maf-embeddings", "tabular-embeddings"),
    ):
        v, b = PRESETS[variant], PRESETS[base]
        assert v.train is b.train and v.data is b.data
        assert v.model != b.model and v.name == variant


def test_preset_fields() -> None:
    paper = [p for p in PRESETS.values() if p.paper]
    assert {p.name for p in paper} >= {"realnvp-fashionmnist", "glow-celeba", "tabular-miniboone"}
    assert all(p.reference for p in paper), "a paper preset names where in the paper/original it comes from"
    for p in PRESETS.values():
        assert p.name in PRESETS and PRESETS[p.name] is p
        assert p.to_dict()["description"].startswith(p.description)
        if p.differences:
            assert p.to_dict()["description"].endswith(p.differences)


def test_unknown_preset_is_actionable() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; available: .*flowood presets"):
        get_preset("nope")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOT.write_text(json.dumps({n: _snapshot_of(n) for n in PRESETS}, indent=1, sort_keys=True) + "\n")
