"""Scores with auxiliary models on a tiny trained run: the CLI ``--scores`` path, reuse of auxiliary models,
the embedding likelihood with the random CNN, and the ``flowood demo --all-scores`` wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.errors import ConfigError
from flowood.experiments import demo as demo_mod
from flowood.experiments.auxiliary import ScoreSettings
from flowood.experiments.evaluate import evaluate_run

from .conftest import TINY

METRIC_KEYS = {"auroc", "aupr_in", "aupr_out", "fpr95"}


def tiny_settings(**kw) -> ScoreSettings:
    """Auxiliary models of a few steps; the random CNN instead of efficientnet-lite0."""
    base = dict(
        ensemble_size=2,
        aux_max_steps=2,
        aux_test_limit=32,
        typicality_m=8,
        typicality_batches=20,
        typicality_train_limit=128,
        extractor="random-cnn",
        embedding_size=32,
        embedding_train_limit=64,
        embedding_test_limit=32,
        embedding_max_steps=3,
        embedding_overrides=[
            "model.num_couplings=2",
            "model.hidden_dim=8",
            "model.num_layers=1",
            "train.batch_size=32",
            "train.warmup_steps=0",
        ],
    )
    base.update(kw)
    return ScoreSettings(**base)


def test_cli_scores_end_to_end(tiny_run: Path, capsys):
    args = [
        "evaluate",
        str(tiny_run),
        "--ood",
        "mnist-mini",
        "--limit",
        "64",
        "--device",
        "cpu",
        "--quiet",
        "--scores",
        "bits_per_dim,likelihood_ratio,input_complexity",
        "--scores",
        "typicality,waic",
        "--ensemble-size",
        "2",
        "--typicality-m",
        "8",
        "--mutation-rate",
        "0.3",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "OOD AUROC by score" in out and "M=8" in out
    report = json.loads((tiny_run / "report.json").read_text())
    metrics = report["ood"]["mnist-mini"]["metrics"]
    assert set(metrics) == {
        "log_likelihood",
        "bits_per_dim",
        "likelihood_ratio",
        "input_complexity",
        "typicality",
        "waic",
    }
    for m in metrics.values():
        assert set(m) >= METRIC_KEYS and 0.0 <= m["auroc"] <= 1.0
    assert metrics["bits_per_dim"]["auroc"] == metrics["log_likelihood"]["auroc"]
    assert metrics["typicality"]["M"] == 8 and report["scores"]["typicality"]["M"] == 8
    assert report["scores"]["likelihood_ratio"]["mutation_rate"] == 0.3
    assert report["scores"]["waic"]["ensemble_size"] == 2
    for name in metrics:
        assert report["scores"][name]["direction"] and report["scores"][name]["cost"]
    # Auxiliary models are ordinary run directories, stored in the run and reused.
    assert (tiny_run / "background" / "model.safetensors").is_file()
    assert json.loads((tiny_run / "background" / "mutation.json").read_text())["mutation"]["mutation_rate"] == 0.3
    assert sorted(p.name for p in (tiny_run / "ensemble").iterdir()) == ["member-0", "member-1"]
    with np.load(tiny_run / "ood_scores.npz") as npz:
        assert npz["likelihood_ratio/mnist-mini"].shape == (64,)
        assert npz["typicality/fashionmnist-mini"].shape == (200,)  # per batch (the CLI's default count)
    stamp = (tiny_run / "background" / "model.safetensors").stat().st_mtime_ns
    again = [
        "evaluate",
        str(tiny_run),
        "--ood",
        "mnist-mini",
        "--limit",
        "64",
        "--device",
        "cpu",
        "--quiet",
        "--scores",
        "likelihood_ratio",
        "--mutation-rate",
        "0.3",
    ]
    assert main(again) == 0
    assert (tiny_run / "background" / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained


def test_cli_rejects_unknown_score(tiny_run: Path, capsys):
    assert main(["evaluate", str(tiny_run), "--ood", "mnist-mini", "--scores", "wiac", "--device", "cpu"]) == 2
    assert "unknown score 'wiac'" in capsys.readouterr().err


def test_embedding_likelihood_with_random_cnn(tiny_run: Path):
    settings = tiny_settings()
    report = evaluate_run(
        tiny_run,
        ["mnist-mini", "glyphs"],
        limit=48,
        device="cpu",
        scores=["embedding_likelihood"],
        score_settings=settings,
    )
    for name in ("mnist-mini", "glyphs"):
        m = report.ood[name].metrics["embedding_likelihood"]
        assert set(m.to_json()) >= METRIC_KEYS and m.nonfinite == 0
    assert report.scores is not None
    info = report.scores["embedding_likelihood"].facts
    assert info["extractor"] == "random-cnn" and info["size"] == 32
    emb = tiny_run / "embedding-flow"
    assert (emb / "standardize.json").is_file()
    assert (tiny_run / "embeddings" / "fashionmnist-mini" / "train.npz").is_file()
    stamp = (emb / "model.safetensors").stat().st_mtime_ns
    evaluate_run(
        tiny_run, ["mnist-mini"], limit=48, device="cpu", scores=["embedding_likelihood"], score_settings=settings
    )
    assert (emb / "model.safetensors").stat().st_mtime_ns == stamp
    # The default preset is the unit-norm one, capped below the 64 random-CNN features / 64 training images;
    # another preset retrains the flow instead of reusing one trained differently.
    assert (info["transform"], info["pca_dim"]) == ("l2", 63)
    again = evaluate_run(
        tiny_run,
        ["mnist-mini"],
        limit=48,
        device="cpu",
        scores=["embedding_likelihood"],
        score_settings=tiny_settings(embedding_preset="tabular-embeddings"),
    )
    assert (emb / "model.safetensors").stat().st_mtime_ns != stamp
    assert again.scores is not None and again.scores["embedding_likelihood"].facts["transform"] == "log"


def test_waic_needs_two_members_and_vector_runs_reject_image_scores(tiny_run: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="at least 2"):
        evaluate_run(
            tiny_run,
            ["mnist-mini"],
            limit=32,
            device="cpu",
            scores=["waic"],
            score_settings=tiny_settings(ensemble_size=1),
        )
    rng = np.random.default_rng(0)
    rows = ["a,b,c"] + [",".join(f"{v:.4f}" for v in x) for x in rng.normal(size=(80, 3))]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: tabular, num_couplings: 2, hidden_dim: 8, num_layers: 1}\n"
        f"data: {{dataset: 'table:{tmp_path / 't.csv'}', ood: ['table:{tmp_path / 't.csv'}']}}\n"
        "train: {epochs: 1, batch_size: 16, lr: 0.001}\ndevice: cpu\n"
    )
    vec = tmp_path / "vec"
    assert main(["train", "--config", str(cfg), "--out", str(vec), "--quiet"]) == 0
    with pytest.raises(ConfigError, match="only defined for image runs"):
        evaluate_run(vec, None, device="cpu", scores=["input_complexity"])
    report = evaluate_run(
        vec,
        None,
        device="cpu",
        scores=["typicality", "waic"],
        score_settings=tiny_settings(typicality_m=4, typicality_train_limit=None),
    )
    key = next(iter(report.ood))
    assert {"typicality", "waic"} <= set(report.ood[key].metrics)


def test_demo_all_scores_wiring(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(demo_mod, "DEMO_OOD_LIMIT", 48)
    monkeypatch.setattr(demo_mod, "demo_settings", tiny_settings)
    out = tmp_path / "demo"
    assert main(["demo", "--all-scores", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "OOD AUROC by score" in printed and "embedding_likelihood" in printed
    report = json.loads((out / "report.json").read_text())
    for name in ("mnist-mini", "glyphs"):
        metrics = report["ood"][name]["metrics"]
        assert set(metrics) == set(demo_mod.DEMO_SCORES)
        assert all(set(m) >= METRIC_KEYS for m in metrics.values())
    assert report["scores"]["typicality"]["M"] == 8
    assert report["conclusion"]
