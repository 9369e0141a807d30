"""``flowood demo --embeddings`` wiring, with a tiny pixel flow and the random-weight CNN (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowood.experiments.demo as demo_mod
import flowood.experiments.embedding_demo as embedding_demo
from flowood.cli.app import main
from flowood.evaluation import EvaluationReport
from flowood.experiments.aux_models import EmbeddingFlowSettings
from flowood.experiments.embedding_demo import EmbeddingDemoSettings, comparison_rows, cpu_threads
from flowood.features import FeatureSettings
from flowood.runs import RunDir

TINY_PIXEL = [
    "model.mid_channels=4",
    "model.num_blocks=1",
    "data.limit=64",
    "data.test_limit=64",
    "train.num_samples=4",
]


@pytest.mark.slow  # end to end
def test_demo_embeddings_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(
        embedding_demo,
        "SETTINGS",
        EmbeddingDemoSettings(
            features=FeatureSettings(extractor="random-cnn", size=32, train_limit=128, test_limit=64),
            flow=EmbeddingFlowSettings(
                preset="tabular-embeddings",
                max_steps=15,
                # No early stopping: the demo's step cap is what this test checks.
                overrides=(
                    "data.transform=none",
                    "model.hidden_dim=16",
                    "train.batch_size=32",
                    "train.early_stopping=null",
                ),
            ),
            ood_limit=64,
            threads=1,
        ),
    )
    # Score only 64 images per set with the tiny pixel flow (the full sets take most of the time).
    monkeypatch.setattr(demo_mod, "DEMO_OOD_LIMIT", 64, raising=False)
    out = tmp_path / "demo"
    args = ["demo", "--embeddings", "--out", str(out), "--device", "cpu", "--quiet"]
    for item in TINY_PIXEL:
        args += ["--set", item]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pixel flow" in printed and "embedding flow" in printed and "mahalanobis" in printed

    report = json.loads((out / "report.json").read_text())
    assert set(report["ood"]) == {"mnist-mini", "glyphs"}
    for name in ("mnist-mini", "glyphs"):
        metrics = report["ood"][name]["metrics"]
        assert set(metrics) == {
            "log_likelihood",
            "embedding_log_likelihood",
            "embedding_knn",
            "embedding_mahalanobis",
            "embedding_gaussian",
        }  # the feature baselines beside the flow, on the same features (issue 23)
        assert set(metrics["embedding_log_likelihood"]) >= {"auroc", "aupr_in", "aupr_out", "fpr95"}
        assert report["embedding_flow"]["ood"][name]["bits_per_dim"]["n"] == 64
    summary = report["embedding_flow"]
    assert summary["extractor"] == "random-cnn" and summary["feature_dim"] == 64
    assert summary["steps"] == 15 and summary["nonfinite_steps"] == 0
    assert "conclusion" in report and "embedding_conclusion" in report
    typed = EvaluationReport.load(out / "report.json")
    rows = comparison_rows(typed)
    assert [r[0] for r in rows] == ["mnist-mini", "glyphs"]
    # Each row pairs the pixel flow's AUROC with the embedding flow's on the *same* OOD set.
    for name, pixel, emb in rows:
        assert pixel == report["ood"][name]["metrics"]["log_likelihood"]["auroc"]
        assert emb == report["embedding_flow"]["ood"][name]["metrics"]["auroc"]
    assert typed.embedding_conclusion == report["embedding_conclusion"]

    # The embedding flow is an ordinary run directory next to the pixel run; embedding files are flowood-embed files.
    run = out / "embedding-flow"
    for name in ("config.yaml", "standardize.json", "model.safetensors", "report.json", "scores.npz"):
        assert (run / name).is_file(), name
    files = RunDir(out)
    for split in ("train", "test"):
        assert (files.embeddings("fashionmnist-mini", "random-cnn-32px-train128-test64") / f"{split}.npz").is_file()
    for name in ("mnist-mini", "glyphs"):
        assert (files.embeddings(name, "random-cnn-32px-test64") / "test.npz").is_file(), name
    assert (out / "model.safetensors").is_file()  # the pixel run


def test_the_demos_flow_is_the_one_embedding_likelihood_derives(tmp_path: Path) -> None:
    """Same settings, same config: `evaluate --scores embedding_likelihood` with the demo's settings reuses the
    flow `demo --embeddings` trained (one derivation for both)."""
    import numpy as np

    from flowood.experiments.aux_models import embedding_flow_config

    folder = tmp_path / "emb"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(
            folder / f"{split}.npz",
            embeddings=rng.random((40, 8)).astype(np.float32),
            labels=np.zeros(40, dtype=np.int64),
        )
    flow = EmbeddingFlowSettings(preset="tabular-embeddings")
    demo = embedding_demo.embedding_config({"fashionmnist-mini": folder}, EmbeddingDemoSettings(flow=flow), "cpu")
    assert demo == embedding_flow_config(flow, folder, seed=0, device="cpu")


def test_cpu_threads_restores() -> None:
    import torch

    before = torch.get_num_threads()
    with cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
