"""`flowood reproduce modern-flows` on tiny models: the table, the figures, the paired intervals, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.experiments import modern_flows
from flowood.experiments.modern_flows import CONTENDERS, contender_configs, markdown_table, run_modern_flows
from flowood.ood.metrics import paired_auroc_difference
from flowood.train.config import apply_overrides

TINY_DATA = ["data.dataset=fashionmnist-mini", "data.ood=[mnist-mini, glyphs]", "data.limit=64", "data.test_limit=64"]
TINY_MODELS = {
    "realnvp": ["model.num_blocks=1", "model.mid_channels=4"],
    "glow": ["model.num_steps=1", "model.mid_channels=4"],
    "tarflow": ["model.patch_size=7", "model.num_blocks=2", "model.num_layers=1", "model.width=8", "model.heads=2"],
    "jet": ["model.patch_size=7", "model.num_couplings=2", "model.num_layers=1", "model.width=8", "model.heads=2"],
}


def tiny_configs():
    configs = contender_configs("quick", "cpu", TINY_DATA)
    for name, overrides in TINY_MODELS.items():
        configs[name] = apply_overrides(configs[name], [*overrides, "train.max_steps=2", "train.num_samples=4"])
    return configs


def run_tiny(out):
    exp_dir = out / "modern-flows"
    exp_dir.mkdir(parents=True, exist_ok=True)
    return run_modern_flows(
        out,
        exp_dir,
        "quick",
        device="cpu",
        quiet=True,
        log=lambda _: None,
        configs=tiny_configs(),
        scored=48,
        attention_images=8,
        latent_images=8,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("modern")
    return out, run_tiny(out)


def test_quick_budget_is_equal_cpu_time_as_steps():
    """Steps are fixed ahead from measured images per CPU-second, so each model gets the same CPU-minutes."""
    configs = contender_configs("quick")
    minutes = []
    for c in CONTENDERS:
        steps = configs[c.name]["train"]["max_steps"]
        assert steps == c.quick_steps() and configs[c.name]["train"]["max_minutes"] is None
        minutes.append(steps * 64 / c.images_per_cpu_second / 60)
    assert max(minutes) - min(minutes) < 0.01 and abs(minutes[0] - modern_flows.QUICK_CPU_MINUTES) < 0.01
    # RealNVP is the slowest per image: it trains the fewest steps in the same time.
    assert min(configs, key=lambda n: configs[n]["train"]["max_steps"]) == "realnvp"


@pytest.mark.slow  # end to end: four tiny models trained and scored (about 30 s on 2 cores)
def test_tiny_run_writes_table_and_figures(tiny):
    out, result = tiny
    nums = result["numbers"]
    assert list(nums["models"]) == ["realnvp", "glow", "tarflow", "jet"]
    for name, row in nums["models"].items():
        assert row["steps"] == 2 and row["images_seen"] == 2 * 64 and not row["partial"]
        assert set(nums["auroc"][name]["log_likelihood"]) == {"mnist-mini", "glyphs"}
    # per_scale only where there are scales; every other detector for every model
    assert "per_scale" in nums["auroc"]["realnvp"] and "per_scale" not in nums["auroc"]["tarflow"]
    assert {"dose", "typicality_m1", "input_complexity"} <= set(nums["auroc"]["jet"])
    assert set(nums["auroc_vs_reference_95ci"]) == {"glow", "tarflow", "jet"}
    assert set(nums["attention_distance"]) == {"tarflow", "jet"}
    per_block = nums["attention_distance"]["tarflow"]["fashionmnist-mini"]["per_block"]
    assert list(per_block) == ["0", "1"] and all(0 <= v["distance"] <= 5 for v in per_block.values())
    for fig in result["figures"]:
        assert (out / "modern-flows" / fig).stat().st_size > 1000, fig
    assert {"attention_tarflow.png", "attention_jet.png", "latents_jet.png"} <= set(result["figures"])
    table = (out / "modern-flows" / "table.md").read_text()
    assert table.count("\n| tarflow") == 1 and "(reference)" in table and "| dose |" in table


@pytest.mark.slow
def test_paired_interval_is_the_runs_own_scores(tiny):
    """The reported Δ is recomputed from the two runs' per-sample scores: the same images, paired."""
    out, result = tiny
    with (
        np.load(out / "runs" / "modern-realnvp-quick" / "scores.npz") as a,
        np.load(out / "runs" / "modern-jet-quick" / "scores.npz") as b,
    ):
        expected = paired_auroc_difference(
            -a["fashionmnist-mini"], -a["mnist-mini"], -b["fashionmnist-mini"], -b["mnist-mini"]
        )
    got = result["numbers"]["auroc_vs_reference_95ci"]["jet"]["mnist-mini"]
    assert got["delta"] == pytest.approx(expected["delta"]) and got["low"] == pytest.approx(expected["low"])


@pytest.mark.slow
def test_rerun_reuses_models_and_gives_the_same_numbers(tiny):
    """A rerun reuses the models and their saved evaluations (read back from the run's files) and, where the
    evaluation is gone (jet's report), scores again: either way the same numbers."""
    out, result = tiny
    (out / "runs" / "modern-jet-quick" / "report.json").unlink()
    said: list[str] = []
    exp_dir = out / "modern-flows"
    again = run_modern_flows(
        out,
        exp_dir,
        "quick",
        device="cpu",
        quiet=True,
        log=said.append,
        configs=tiny_configs(),
        scored=48,
        attention_images=8,
        latent_images=8,
    )
    assert sum("evaluation reused" in line for line in said) == 3
    assert (out / "runs" / "modern-jet-quick" / "report.json").is_file()
    assert json.dumps(again["numbers"], sort_keys=True, default=float) == json.dumps(
        result["numbers"], sort_keys=True, default=float
    )


def test_markdown_table_marks_partial_and_reference():
    row = {
        "parameters": 10,
        "steps": 3,
        "batch_size": 2,
        "partial": True,
        "test_bits_per_dim_mean": 4.0,
        "ood_bits_per_dim_median": {"m": 3.0},
    }
    numbers = {
        "in_distribution": "f",
        "models": {"realnvp": row, "jet": {**row, "partial": False}},
        "auroc": {"realnvp": {"log_likelihood": {"m": 0.1}}, "jet": {"log_likelihood": {"m": 0.2}, "dose": {"m": 0.9}}},
        "auroc_vs_reference_95ci": {"jet": {"m": {"delta": 0.1, "low": 0.05, "high": 0.15}}},
        "latent_pearson_r": {"realnvp": {"f": 0.5, "m": 0.6}, "jet": {"f": 0.7, "m": 0.8}},
        "attention_distance": {"jet": {"f": {"mean": 1.5, "uniform_mean": 3.0}}},
    }
    table = markdown_table(numbers)
    assert "| realnvp (partial) |" in table and "0.100 (reference)" in table
    assert "0.200 (+0.100 [+0.050, +0.150])" in table and "1.50 (3.00)" in table
    assert "| dose | - | 0.900 |" in table


def test_cli_refuses_a_missing_dataset_before_training(tmp_path, capsys):
    code = main(["reproduce", "modern-flows", "--out", str(tmp_path / "o"), "--set", "data.ood=[notmnist]"])
    assert code == 2
    err = capsys.readouterr().err
    assert "notmnist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "runs").exists()


def test_cli_refuses_a_model_key_one_architecture_lacks(tmp_path, capsys):
    code = main(["reproduce", "modern-flows", "--out", str(tmp_path / "o"), "--set", "model.num_couplings=2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "num_couplings" in err and len(err.strip().splitlines()) == 1


def test_paper_budget_is_equal_images_and_validates():
    from flowood.train.config import config_from_dict

    configs = contender_configs("paper")
    typed = {name: config_from_dict(raw) for name, raw in configs.items()}
    assert {cfg.train.epochs for cfg in typed.values()} == {modern_flows.PAPER_EPOCHS}
    assert all(cfg.train.max_steps is None and cfg.data.dataset == "fashionmnist" for cfg in typed.values())
    assert typed["jet"].model.name == "jet" and typed["tarflow"].model.name == "tarflow"


def test_quick_ood_falls_back_to_the_embedded_digits(monkeypatch):
    import dataclasses

    from flowood.data import dataset_info

    def absent_10k(name, root=None):
        info = dataset_info(name, root)
        return info if name != "mnist-10k" else dataclasses.replace(info, available_now=False)

    monkeypatch.setattr(modern_flows, "dataset_info", absent_10k)
    assert contender_configs("quick")["jet"]["data"]["ood"] == ["mnist-mini", "glyphs"]
    # an explicit choice is kept as it is
    assert contender_configs("quick", overrides=["data.ood=[glyphs]"])["jet"]["data"]["ood"] == ["glyphs"]


def test_reproduce_all_skips_modern_flows_without_its_data(tmp_path, monkeypatch, capsys):
    """`reproduce all` keeps working on the embedded bundle alone: modern-flows is left out, saying why."""
    import dataclasses

    from flowood.data import dataset_info
    from flowood.experiments import reproduce as reproduce_module

    def no_full_fashion(name, root=None):
        info = dataset_info(name, root)
        return dataclasses.replace(info, available_now=False) if name == "fashionmnist" else info

    ran: list[str] = []

    def fake(name, out, **kwargs):
        ran.append(name)
        return {"holds": True, "claim": "x", "statement": "s", "seconds": 0.0}

    monkeypatch.setattr(modern_flows, "dataset_info", no_full_fashion)
    monkeypatch.setattr(reproduce_module, "reproduce", fake)
    assert main(["reproduce", "all", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert "[modern-flows] skipped: modern-flows needs dataset fashionmnist" in capsys.readouterr().out
    assert "modern-flows" not in ran and ran == [n for n in reproduce_module.EXPERIMENTS if n != "modern-flows"]
