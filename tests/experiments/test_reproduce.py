"""`flowood reproduce` wiring on tiny models: results.json, summary.md, figures, model reuse."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from flowood.cli.app import main
from flowood.experiments import embedding_demo
from flowood.experiments.aux_models import EmbeddingFlowSettings
from flowood.experiments.reproduce import EXPERIMENTS, reproduce
from flowood.features import FeatureSettings

TINY = ["model.num_blocks=1", "model.mid_channels=4", "data.limit=64", "data.test_limit=64"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce")


@pytest.mark.slow  # end to end
@pytest.mark.parametrize("name", ["likelihood-failure", "latents", "couplings", "cycle-mask", "negative-training"])
def test_image_experiments_write_results(out, name):
    result = reproduce(name, out, device="cpu", quiet=True, overrides=TINY)
    exp_dir = out / name
    saved = json.loads((exp_dir / "results.json").read_text())
    assert saved["experiment"] == name and isinstance(saved["holds"], bool)
    assert saved["statement"] == result["statement"]
    assert "finding holds" in (exp_dir / "summary.md").read_text()
    for fig in result["figures"]:
        assert (exp_dir / fig).stat().st_size > 1000
    # every experiment reuses the one baseline model
    assert (out / "runs" / "baseline-quick" / "report.json").is_file()


def test_likelihood_failure_direction_on_an_almost_untrained_flow(out):
    """Two steps of training leave the flow ranking images by the logit-preprocessing density, where MNIST's
    black backgrounds cost more bits than FashionMNIST's: the paper's failure has *not* appeared yet (it
    needs real training: tests/cli/test_demo_finding.py). The experiment must report that direction."""
    result = reproduce("likelihood-failure", out, device="cpu", quiet=True, overrides=TINY)
    bpd, auroc = result["numbers"]["median_bits_per_dim"], result["numbers"]["auroc_log_likelihood"]
    assert bpd["mnist-mini"] > bpd["fashionmnist-mini"] + 0.5
    assert auroc["mnist-mini"] > 0.9 and result["holds"] is False
    # The AUROC is that of the run's own per-sample scores, in-distribution positive, higher = likelier.
    with np.load(out / "runs" / "baseline-quick" / "scores.npz") as scores:
        s_in, s_ood = -scores["fashionmnist-mini"], -scores["mnist-mini"]
    y = np.r_[np.ones(s_in.size), np.zeros(s_ood.size)]
    assert auroc["mnist-mini"] == pytest.approx(roc_auc_score(y, np.r_[s_in, s_ood]), abs=1e-9)


def test_latents_and_couplings_findings_hold_on_a_tiny_flow(out):
    """A barely trained flow is close to the identity (z ≈ x) and its first coupling's shift already
    interpolates the hidden pixels: both findings are known to hold here."""
    lat = reproduce("latents", out, device="cpu", quiet=True, overrides=TINY)
    assert lat["holds"] is True and min(lat["numbers"]["pearson_r_input_vs_latent"].values()) > 0.9
    cpl = reproduce("couplings", out, device="cpu", quiet=True, overrides=TINY)
    corr = cpl["numbers"]["corr_neg_t_x_first_layer"]
    assert cpl["holds"] is True and min(corr.values()) > 0.3


def test_variant_comparison_reports_both_models(out):
    result = reproduce("cycle-mask", out, device="cpu", quiet=True, overrides=TINY)
    nums = result["numbers"]
    assert set(nums) == {"baseline", "cycle-mask", "auroc_gain_95ci"}
    assert nums["baseline"]["test_bits_per_dim"] != nums["cycle-mask"]["test_bits_per_dim"]
    # The gain and its interval come from the two runs' per-sample scores and agree with their reports.
    for name, gain in nums["auroc_gain_95ci"].items():
        assert gain["auroc_a"] == pytest.approx(nums["baseline"]["auroc"][name], abs=1e-9)
        assert gain["auroc_b"] == pytest.approx(nums["cycle-mask"]["auroc"][name], abs=1e-9)
        assert gain["low"] <= gain["delta"] <= gain["high"]
    first = next(iter(nums["auroc_gain_95ci"]))
    assert result["holds"] == (
        nums["auroc_gain_95ci"][first]["low"] > 0
        and nums["cycle-mask"]["test_bits_per_dim"] > nums["baseline"]["test_bits_per_dim"]
    )


def test_negative_training_scores_held_out_half(out):
    result = reproduce("negative-training", out, device="cpu", quiet=True, overrides=TINY)
    report = json.loads((out / "runs" / "negative-quick" / "report.json").read_text())
    assert report["ood"]["mnist-mini"]["bits_per_dim"]["n"] == 1000  # the half-test split
    assert result["numbers"]["trained_against"] == "mnist-mini"
    # Pushing MNIST's likelihood down during training raises its bits/dim on held-out MNIST images.
    base = json.loads((out / "runs" / "baseline-quick" / "report.json").read_text())
    neg_bpd = report["ood"]["mnist-mini"]["bits_per_dim"]["mean"]
    assert neg_bpd > base["ood"]["mnist-mini"]["bits_per_dim"]["mean"]
    assert result["holds"] == (
        result["numbers"]["negative_training_auroc"]["mnist-mini"] > result["numbers"]["baseline_auroc"]["mnist-mini"]
    )


def test_tabular_quick(out):
    result = reproduce("tabular", out, device="cpu", quiet=True)
    aurocs = result["numbers"]["tabular-breast-cancer"]["auroc"]
    # Malignant tumours are far from the benign training distribution: App. K's finding holds on this table.
    assert result["holds"] is True and min(aurocs.values()) > 0.9


@pytest.mark.slow  # end to end
def test_embeddings_quick_with_tiny_extractor(out, monkeypatch):
    monkeypatch.setattr(
        embedding_demo,
        "SETTINGS",
        embedding_demo.EmbeddingDemoSettings(
            features=FeatureSettings(extractor="random-cnn", size=32, train_limit=256, test_limit=32),
            flow=EmbeddingFlowSettings(preset="tabular-embeddings", max_steps=5, minutes=1.0),
            ood_limit=32,
        ),
    )
    result = reproduce("embeddings", out, device="cpu", quiet=True, overrides=TINY)
    assert set(result["numbers"]) == {"auroc_pixel_flow", "auroc_embedding_flow"}


def test_cli_list_and_errors(capsys, tmp_path):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)
    assert main(["reproduce", "claim-99", "--out", str(tmp_path)]) == 2
    assert "unknown experiment" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["baseline", "bottleneck", "cycle-mask", "horizontal-mask", "negative"])
def test_paper_budget_configs_validate(tmp_path, variant):
    """The GPU budget cannot run here (full datasets), but its configs must be valid and paper-sized."""
    from flowood.experiments.reproduce import Context
    from flowood.train.config import config_from_dict

    cfg = config_from_dict(Context(tmp_path, "paper").config(variant))
    assert cfg.data.dataset == "fashionmnist" and "mnist" in cfg.data.ood
    if variant == "baseline":
        assert cfg.model.options["num_blocks"] == 6 and cfg.model.options["mid_channels"] == 64
        assert cfg.train.epochs == 81 and cfg.train.lr == 5e-5


@pytest.mark.slow  # end to end
def test_rerun_continues_an_interrupted_training_and_reuses_a_finished_one(tmp_path, monkeypatch):
    """`reproduce` run again after a Ctrl-C continues from the checkpoint (no steps lost), and a model that
    finished training but was not evaluated is evaluated, not retrained."""
    import os
    import signal

    from flowood.errors import TrainingInterruptedError
    from flowood.experiments.reproduce import Context
    from flowood.train.trainer import Trainer

    ctx = Context(tmp_path, "quick", device="cpu", quiet=True, overrides=(*TINY, "data.limit=256", "train.max_steps=3"))
    step = Trainer.train_step
    calls = {"n": 0}

    def interrupted_step(self, batch, ood_batch):
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first step: it finishes, then a checkpoint
        return step(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(TrainingInterruptedError):
        ctx.model("baseline")
    run = tmp_path / "runs" / "baseline-quick"
    assert (run / "checkpoints" / "last.pt").is_file() and not (run / "report.json").exists()

    assert ctx.model("baseline") == run  # continued, not started over: one step before + the rest now
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    # 1 step before the interrupt and 2 after it (a restart would have taken 1 + 3)
    assert calls["n"] == 3 and rows[-1]["step"] == "3"
    assert (run / "report.json").is_file()

    (run / "report.json").unlink()
    stamp = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert ctx.model("baseline") == run
    assert (run / "report.json").is_file()
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp  # evaluated only, not retrained
