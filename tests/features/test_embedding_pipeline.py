"""End to end: ``flowood embed`` → ``flowood train`` (tabular flow) → ``flowood evaluate`` on embedding files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.features import read_embeddings
from flowood.train.presets import get_preset, preset_parameter_count
from tests.conftest import write_embedding_file

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is as fast, shared CPUs stay free


@pytest.mark.slow  # end to end
def test_embed_train_evaluate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fm, mn, run = tmp_path / "fm.npz", tmp_path / "mn.npz", tmp_path / "run"
    common = ["--extractor", "random-cnn", "--limit", "120", "--no-progress", "--device", "cpu"]
    assert main(["embed", "--dataset", "fashionmnist-mini", "--splits", "train,test", "--out", str(fm), *common]) == 0
    assert main(["embed", "--dataset", "mnist-mini", "--splits", "test", "--out", str(mn), *common]) == 0
    bundle = read_embeddings(fm)
    assert bundle.embeddings["train"].shape == (120, 64) and bundle.embeddings["test"].shape == (120, 64)
    args = [
        "train",
        "--preset",
        "tabular-embeddings",
        "--out",
        str(run),
        "--device",
        "cpu",
        "-q",
        "--set",
        f"data.dataset=embeddings:{fm}",
        "--set",
        "data.transform=none",
        "--set",
        "model.hidden_dim=32",
        "--set",
        "train.epochs=3",
        "--set",
        "train.batch_size=32",
    ]
    assert main(args) == 0
    assert "0 non-finite steps" in capsys.readouterr().out
    assert (run / "standardize.json").is_file()
    assert main(["evaluate", str(run), "--ood", f"embeddings:{mn}", "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["in_distribution"]["bits_per_dim"]["n"] == 120
    entry = report["ood"][f"embeddings:{mn}"]
    assert entry["bits_per_dim"]["n"] == 120 and entry["bits_per_dim"]["nonfinite"] == 0
    assert 0.0 <= entry["metrics"]["log_likelihood"]["auroc"] <= 1.0
    scores = np.load(run / "scores.npz")
    assert all(np.isfinite(scores[k]).all() for k in scores.files)


def test_wrong_feature_dimension_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    fm = write_embedding_file(
        tmp_path / "fm8.npz",
        {"train": (rng.random((64, 8)), np.zeros(64)), "test": (rng.random((32, 8)), np.zeros(32))},
    )
    five = write_embedding_file(tmp_path / "five.npz", {"test": (rng.random((32, 5)), np.zeros(32))})
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "tabular-embeddings",
                "--out",
                str(run),
                "--device",
                "cpu",
                "-q",
                "--set",
                f"data.dataset=embeddings:{fm}",
                "--set",
                "model.hidden_dim=8",
                "--set",
                "train.epochs=1",
                "--set",
                "train.batch_size=32",
            ]
        )
        == 0
    )
    assert main(["evaluate", str(run), "--ood", f"embeddings:{five}", "--device", "cpu"]) == 2
    assert "expects (8,)" in capsys.readouterr().err


def test_embedding_preset_parameter_count() -> None:
    raw = get_preset("tabular-embeddings")
    assert raw["model"]["name"] == "tabular" and raw["data"]["transform"] == "log" and raw["data"]["whiten"]
    assert preset_parameter_count("tabular-embeddings") > 1_000_000
