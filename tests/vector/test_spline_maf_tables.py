"""Spline couplings and MAF on the UCI loaders' fixture files (shapes and the one-class protocol end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowood.experiments.evaluate import evaluate_run
from flowood.flows import MaskedAutoregressiveTransform, SplineCoupling
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer

from .test_tabular_protocol import _hepmass_files

MODELS = {
    "spline": ({"name": "tabular", "coupling": "spline", "num_couplings": 4, "hidden_dim": 16}, SplineCoupling),
    "maf-affine": ({"name": "maf", "num_layers": 3, "hidden_dim": 16}, MaskedAutoregressiveTransform),
    "maf-spline": (
        {"name": "maf", "num_layers": 2, "hidden_dim": 16, "transform": "spline", "num_bins": 4},
        MaskedAutoregressiveTransform,
    ),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_hepmass_fixture_with_spline_and_maf(tmp_path: Path, kind: str) -> None:
    _hepmass_files(tmp_path / "data")
    model, layer_type = MODELS[kind]
    raw = get_preset("tabular-hepmass")
    raw["model"] = dict(model)
    overrides = [f"data.root={tmp_path / 'data'}", "train.epochs=3", "train.lr=1e-3", "device=cpu"]
    cfg = config_from_dict(apply_overrides(raw, overrides))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    # The MAF rule drops the constant mass column: 5 of the fixture's 6 features reach the flow.
    assert trainer.input_shape == (5,) and trainer.flow.input_shape == (5,)
    assert any(isinstance(m, layer_type) for m in trainer.flow.modules())
    result = trainer.run()
    assert result.nonfinite_steps == 0
    report = evaluate_run(tmp_path / "run", device="cpu").report
    entry = report.ood["hepmass[classes=0]"]
    assert entry.bits_per_dim.n == 150
    assert entry.metrics["log_likelihood"].auroc > 0.8
