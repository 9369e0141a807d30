"""``flowood.experiments.aux_models``: each auxiliary model's config is derived from the evaluated run's *typed*
config (so evaluate-time values such as ``--data-root`` carry through), with its documented seed, data and
budget; the benchmark's main model gets ``--data-root`` too."""

from __future__ import annotations

from pathlib import Path

from flowood.experiments.aux_models import (
    AuxBudget,
    AuxSettings,
    background_config,
    general_config,
    member_config,
    mutated_dataset,
)
from flowood.experiments.benchmark import load_protocol, main_config
from flowood.experiments.runs import load_run


def test_derived_configs_keep_evaluate_time_values_and_say_everything(tiny_run: Path):
    run = load_run(tiny_run)
    run.config.data.root = "/data/root"  # what evaluate_run does with --data-root
    aux = AuxSettings(background=AuxBudget(max_steps=5), test_limit=20, overrides=("train.lr=0.003",))
    bg = background_config(run, 0.3, 2, aux, "cpu")
    member = member_config(run, 1, aux, "cpu")
    general = general_config(run, "glyphs", aux, "cpu")
    for cfg in (bg, member, general):
        assert cfg.data.root == "/data/root" and cfg.device == "cpu"
        assert cfg.data.ood == [] and cfg.data.negative_dataset is None and cfg.data.test_limit == 20
        assert cfg.train.sample_every == 0 and cfg.train.lr == 0.003
    assert bg.data.dataset == "mutate-0.3-x2:fashionmnist-mini" == mutated_dataset("fashionmnist-mini", 0.3, 2)
    assert (bg.seed, member.seed, general.seed) == (run.config.seed + 100, run.config.seed + 102, run.config.seed + 200)
    # Every auxiliary flow trains as long as the main model (its steps), capped by its budget's max_steps; no
    # wall-clock limit unless one is given as a safety (issue 25, item 5).
    assert bg.train.max_steps == min(run.steps or 0, 5) and bg.train.max_minutes is None
    assert general.train.max_steps == run.steps and general.data.classes is None
    assert member.train.max_steps == run.steps and member.train.max_minutes is None
    capped = member_config(run, 1, AuxSettings(ensemble=AuxBudget(minutes=0.5, max_steps=1)), "cpu")
    assert (capped.train.max_steps, capped.train.max_minutes) == (1, 0.5)


def test_the_benchmarks_main_model_gets_the_data_root():
    protocol = load_protocol("fashionmnist", "quick")
    cfg = main_config(protocol, ["glyphs"], "cpu", "/data/root")
    assert cfg.data.root == "/data/root" and cfg.data.dataset == protocol.in_distribution
    assert cfg.data.ood == ["glyphs"]
