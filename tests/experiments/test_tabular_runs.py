"""Vector runs end to end (``flowood.experiments.evaluate`` on tabular flows): the paper's appendix K protocol (one
class in-distribution, the other OOD, in-class statistics) on the UCI loaders' fixture files and a user CSV, the
real offline breast-cancer table, and spline couplings and MAF on the same protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.evaluation import EvaluationReport
from flowood.experiments.evaluate import evaluate_run
from flowood.flows import MaskedAutoregressiveTransform, SplineCoupling
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer, train

FAST = ["train.epochs=3", "model.hidden_dim=32", "model.num_couplings=4", "train.lr=1e-3", "device=cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is as fast, shared CPUs stay free


def _run(tmp_path: Path, preset: str, extra: list[str]) -> EvaluationReport:
    cfg = config_from_dict(apply_overrides(get_preset(preset), FAST + extra))
    result = train(cfg, tmp_path / "run", quiet=True)
    assert result.nonfinite_steps == 0
    return evaluate_run(tmp_path / "run", device="cpu").report


def _hepmass_files(root: Path) -> None:
    """MAF layout: hepmass/1000_train.csv and 1000_test.csv, label column first (1 = signal)."""
    rng = np.random.default_rng(0)
    d = root / "hepmass"
    d.mkdir(parents=True)
    for fname, n in (("1000_train.csv", 1200), ("1000_test.csv", 300)):
        labels = (np.arange(n) % 2).astype(float)
        feats = rng.normal(size=(n, 6)) + labels[:, None] * 2.0
        feats[:, 5] = 1000.0  # constant mass column, removed by the MAF rule
        rows = np.hstack([labels[:, None], feats])
        header = "# label," + ",".join(f"f{i}" for i in range(6))
        (d / fname).write_text(header + "\n" + "\n".join(",".join(f"{v:.6g}" for v in r) for r in rows) + "\n")


def test_hepmass_one_class_protocol(tmp_path: Path) -> None:
    _hepmass_files(tmp_path / "data")
    report = _run(tmp_path, "tabular-hepmass", [f"data.root={tmp_path / 'data'}"])
    assert report.in_distribution.dataset == "hepmass"
    entry = report.ood["hepmass[classes=0]"]
    assert entry.bits_per_dim.n == 150
    assert entry.metrics["log_likelihood"].auroc > 0.8


def test_miniboone_one_class_protocol(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    d = tmp_path / "data" / "miniboone"
    d.mkdir(parents=True)
    sig, bkg = rng.normal(size=(600, 5)) + 1.5, rng.normal(size=(700, 5))
    lines = ["600 700"] + [" ".join(f"{v:.5E}" for v in r) for r in np.vstack([sig, bkg])]
    (d / "MiniBooNE_PID.txt").write_text("\n".join(lines) + "\n")
    report = _run(tmp_path, "tabular-miniboone", [f"data.root={tmp_path / 'data'}"])
    assert report.ood["miniboone[classes=0]"].metrics["log_likelihood"].auroc > 0.8


def test_user_table_with_label_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 1000
    y = (np.arange(n) % 2).astype(int)
    x = rng.normal(size=(n, 4)) + y[:, None] * 3.0
    csv = tmp_path / "table.csv"
    csv.write_text(
        "a,b,c,d,kind\n" + "\n".join(",".join(f"{v:.5f}" for v in r) + f",{c}" for r, c in zip(x, y, strict=True))
    )
    name = f"table:{csv}?label=kind"
    cfg = config_from_dict(
        apply_overrides(
            get_preset("tabular-breast-cancer"),
            [
                f"data.dataset={name}",
                f'data.ood=["{name}"]',
                "data.classes=[0]",
                "data.ood_classes=[1]",
                "data.transform=none",
                "train.epochs=10",
                "device=cpu",
            ],
        )
    )
    train(cfg, tmp_path / "run", quiet=True)
    report = evaluate_run(tmp_path / "run", device="cpu").report
    (entry,) = report.ood.values()
    assert entry.metrics["log_likelihood"].auroc > 0.9


@pytest.mark.parametrize("preset", ["tabular-miniboone", "tabular-hepmass"])
def test_paper_presets_are_the_papers_architecture(preset: str) -> None:
    raw = get_preset(preset)
    assert raw["model"] == {"name": "tabular", "num_couplings": 6, "hidden_dim": 256, "num_layers": 2}
    assert raw["data"]["options"] == {"in_class": 1} and raw["data"]["classes"] == [1]
    assert raw["data"]["ood"] == [raw["data"]["dataset"]] and raw["data"]["ood_classes"] == [0]


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
