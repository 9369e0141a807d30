"""``flowood.experiments.evaluate`` (and ``flowood evaluate``) on a tiny trained run: every detector through one
loop, the report and the per-sample arrays it returns, what it writes, the CLI's settings flags, refusals before
anything trains, and the ``flowood demo --all-scores`` wiring."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.errors import ConfigError
from flowood.experiments import demo as demo_mod
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.ood.detectors import get_detector

from .conftest import TINY, tiny_aux

METRIC_KEYS = {"auroc", "aupr_in", "aupr_out", "fpr95"}


@pytest.mark.slow  # end to end
def test_cli_scores_end_to_end(tiny_run: Path, capsys):
    args = ["evaluate", str(tiny_run), "--ood", "mnist-mini", "--limit", "64", "--device", "cpu", "--quiet"]
    args += ["--scores", "bits_per_dim,likelihood_ratio,input_complexity", "--scores", "typicality,waic"]
    args += ["--ensemble-size", "2", "--typicality-m", "8", "--mutation-rate", "0.3"]
    args += ["--score-setting", "aux.background.max_steps=2", "--score-setting", "aux.ensemble.max_steps=2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "OOD AUROC by score" in out and "M=8" in out
    report = json.loads((tiny_run / "report.json").read_text())
    metrics = report["ood"]["mnist-mini"]["metrics"]
    assert list(metrics) == [
        "log_likelihood",
        "bits_per_dim",
        "likelihood_ratio",
        "input_complexity",
        "typicality",
        "waic",
    ]
    for m in metrics.values():
        assert set(m) >= METRIC_KEYS and 0.0 <= m["auroc"] <= 1.0
    assert metrics["bits_per_dim"]["auroc"] == metrics["log_likelihood"]["auroc"]
    assert metrics["typicality"]["M"] == 8 and report["scores"]["typicality"]["M"] == 8
    assert report["scores"]["likelihood_ratio"]["mutation_rate"] == 0.3
    assert report["scores"]["waic"]["ensemble_size"] == 2
    # Every setting that decided the scores is recorded: each detector's own and the auxiliary models'.
    assert report["score_settings"]["waic"] == {"ensemble_size": 2}
    assert report["score_settings"]["aux"]["ensemble"] == {"minutes": None, "max_steps": 2}
    for name in metrics:
        assert report["scores"][name]["direction"] and report["scores"][name]["cost"]
    # Auxiliary models are ordinary run directories in the run; the background's data is a derived dataset.
    bg_config = (tiny_run / "background" / "config.yaml").read_text()
    assert "mutate-0.3:fashionmnist-mini" in bg_config
    assert sorted(p.name for p in (tiny_run / "ensemble").iterdir()) == ["member-0", "member-1"]
    with np.load(tiny_run / "ood_scores.npz") as npz:
        assert npz["likelihood_ratio/mnist-mini"].shape == (64,)
        assert npz["typicality/fashionmnist-mini"].shape == (200,)  # per batch (the default count)
    stamp = (tiny_run / "background" / "model.safetensors").stat().st_mtime_ns
    again = ["evaluate", str(tiny_run), "--ood", "mnist-mini", "--limit", "64", "--device", "cpu", "--quiet"]
    again += ["--scores", "likelihood_ratio", "--mutation-rate", "0.3", "--score-setting", "aux.background.max_steps=2"]
    assert main(again) == 0
    assert (tiny_run / "background" / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained


def test_one_loop_returns_the_arrays_it_wrote_and_scores_the_baseline_once(tiny_run: Path):
    evaluation = evaluate_run(
        tiny_run,
        ["mnist-mini"],
        detectors=["bits_per_dim", "compressed_size"],
        scoring=ScoringOptions(limit=40),
        device="cpu",
    )
    scores, bpd = evaluation.scores, evaluation.bits_per_dim
    assert list(scores) == ["log_likelihood", "bits_per_dim", "compressed_size"]
    np.testing.assert_array_equal(scores["log_likelihood"]["mnist-mini"], -bpd["mnist-mini"])
    with np.load(tiny_run / "ood_scores.npz") as o, np.load(tiny_run / "scores.npz") as s:
        assert set(o.files) == set(evaluation.flat_scores())
        np.testing.assert_array_equal(o["compressed_size/mnist-mini"], scores["compressed_size"]["mnist-mini"])
        np.testing.assert_array_equal(s["fashionmnist-mini"], bpd["fashionmnist-mini"])
    m = evaluation.report.ood["mnist-mini"].metrics
    assert m["log_likelihood"] == m["bits_per_dim"]


def test_a_plain_evaluation_writes_the_same_report_as_before_apart_from_timings(tiny_run: Path):
    """report.json of an evaluation with the baseline only has no detector sections (as before the one-loop
    evaluation) and is byte-identical between two runs once the timings are removed."""

    def without_timings(path: Path) -> dict:
        report = json.loads(path.read_text())
        for key in ("seconds", "images_per_second"):
            report["scoring"].pop(key)
        return report

    evaluate_run(tiny_run, ["mnist-mini", "glyphs"], scoring=ScoringOptions(limit=32), device="cpu")
    first = without_timings(tiny_run / "report.json")
    assert "scores" not in first and "score_settings" not in first
    evaluate_run(tiny_run, ["mnist-mini", "glyphs"], scoring=ScoringOptions(limit=32), device="cpu")
    assert without_timings(tiny_run / "report.json") == first


def test_cli_rejects_unknown_score(tiny_run: Path, capsys):
    assert main(["evaluate", str(tiny_run), "--ood", "mnist-mini", "--scores", "wiac", "--device", "cpu"]) == 2
    assert "unknown score 'wiac'" in capsys.readouterr().err


def test_embedding_likelihood_with_random_cnn(tiny_run: Path):
    kw = dict(detectors=["embedding_likelihood"], scoring=ScoringOptions(limit=48), device="cpu")
    report = evaluate_run(tiny_run, ["mnist-mini", "glyphs"], aux=tiny_aux(), **kw).report  # type: ignore[arg-type]
    for name in ("mnist-mini", "glyphs"):
        m = report.ood[name].metrics["embedding_likelihood"]
        assert set(m.to_json()) >= METRIC_KEYS and m.nonfinite == 0
    assert report.scores is not None
    info = report.scores["embedding_likelihood"].facts
    assert info["extractor"] == "random-cnn" and info["size"] == 32
    pipeline = tiny_run / "features" / "random-cnn-32px-train64-test32"
    emb = pipeline / "embedding-flow"
    assert (emb / "standardize.json").is_file()
    assert (pipeline / "train.npz").is_file() and (pipeline / "test.npz").is_file()
    stamp = (emb / "model.safetensors").stat().st_mtime_ns
    evaluate_run(tiny_run, ["mnist-mini"], aux=tiny_aux(), **kw)  # type: ignore[arg-type]
    assert (emb / "model.safetensors").stat().st_mtime_ns == stamp
    # The default preset is the unit-norm one, capped below the 64 random-CNN features / 64 training images;
    # another preset retrains the flow instead of reusing one trained differently.
    assert (info["transform"], info["pca_dim"]) == ("l2", 63)
    other = tiny_aux(embedding_flow=replace(tiny_aux().embedding_flow, preset="tabular-embeddings"))
    again = evaluate_run(tiny_run, ["mnist-mini"], aux=other, **kw).report  # type: ignore[arg-type]
    assert (emb / "model.safetensors").stat().st_mtime_ns != stamp
    assert again.scores is not None and again.scores["embedding_likelihood"].facts["transform"] == "log"


def test_refusals_come_before_any_auxiliary_model_trains(tiny_run: Path, tmp_path: Path):
    shutil.rmtree(tiny_run / "ensemble", ignore_errors=True)
    # typicality's M exceeds the scored sets: refused although waic (listed first) would train members.
    with pytest.raises(ConfigError, match="fewer than M=50"):
        evaluate_run(
            tiny_run,
            ["mnist-mini"],
            detectors=["waic", get_detector("typicality", m=50)],
            scoring=ScoringOptions(limit=32),
            aux=tiny_aux(),
            device="cpu",
        )
    assert not (tiny_run / "ensemble").exists()


def test_vector_runs_reject_image_scores_and_run_the_others(tmp_path: Path):
    rng = np.random.default_rng(0)
    for name, shift in (("t.csv", 0.0), ("o.csv", 3.0)):  # in-distribution, and a shifted OOD table
        rows = ["a,b,c"] + [",".join(f"{v:.4f}" for v in x) for x in rng.normal(shift, size=(80, 3))]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: tabular, num_couplings: 2, hidden_dim: 8, num_layers: 1}\n"
        f"data: {{dataset: 'table:{tmp_path / 't.csv'}', ood: ['table:{tmp_path / 'o.csv'}']}}\n"
        "train: {epochs: 1, batch_size: 16, lr: 0.001}\ndevice: cpu\n"
    )
    vec = tmp_path / "vec"
    assert main(["train", "--config", str(cfg), "--out", str(vec), "--quiet"]) == 0
    with pytest.raises(ConfigError, match="only defined for image runs"):
        evaluate_run(vec, None, device="cpu", detectors=["input_complexity"])
    report = evaluate_run(
        vec,
        None,
        device="cpu",
        detectors=[get_detector("typicality", m=4, train_limit=None), get_detector("waic", ensemble_size=2)],
        aux=tiny_aux(),
    ).report
    key = next(iter(report.ood))
    assert {"typicality", "waic"} <= set(report.ood[key].metrics)


@pytest.mark.slow  # end to end
def test_demo_all_scores_wiring(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(demo_mod, "DEMO_OOD_LIMIT", 48)
    monkeypatch.setattr(demo_mod, "demo_aux", tiny_aux)
    out = tmp_path / "demo"
    assert main(["demo", "--all-scores", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "OOD AUROC by score" in printed and "embedding_likelihood" in printed
    report = json.loads((out / "report.json").read_text())
    for name in ("mnist-mini", "glyphs"):
        metrics = report["ood"][name]["metrics"]
        assert set(metrics) == set(demo_mod.DEMO_SCORES)
        assert all(set(m) >= METRIC_KEYS for m in metrics.values())
    assert report["scores"]["typicality"]["M"] == 10
    assert report["conclusion"]
