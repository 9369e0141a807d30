"""Real offline table: scikit-learn's breast cancer, benign in-distribution, malignant OOD."""

from __future__ import annotations

from pathlib import Path

import torch

from flowood.cli.app import main
from flowood.data import load_dataset


def test_breast_cancer_dataset_splits_are_fixed() -> None:
    parts = {s: load_dataset("breast-cancer", s) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 569
    assert parts["train"].shape == (30,)
    assert parts["test"].labels.bincount().tolist() == [64, 107]  # malignant, benign
    again = load_dataset("breast-cancer", "test", seed=123)
    assert torch.equal(again.data, parts["test"].data)


def test_breast_cancer_preset_end_to_end(tmp_path: Path, capsys) -> None:
    run = tmp_path / "bc"
    assert main(["train", "--preset", "tabular-breast-cancer", "--out", str(run), "--device", "cpu", "-q"]) == 0
    assert "0 non-finite steps" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    import json

    report = json.loads((run / "report.json").read_text())
    entry = report["ood"]["breast-cancer[classes=0]"]
    assert entry["bits_per_dim"]["n"] == 64 and report["in_distribution"]["bits_per_dim"]["n"] == 107
    assert entry["metrics"]["log_likelihood"]["auroc"] > 0.9
