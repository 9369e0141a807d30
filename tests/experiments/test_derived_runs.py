"""``flowood.experiments.derived_runs``: :func:`train_or_reuse`, the one way every auxiliary model, the
benchmark's main model, ``reproduce`` and the demos obtain a run — reused only when its saved config is the
wanted one, continued from a checkpoint of the same config, retrained otherwise; ``--force`` clears a run's
auxiliary models with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from flowood.cli.app import main
from flowood.errors import TrainingInterruptedError
from flowood.experiments.aux_models import AuxBudget, AuxSettings
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.experiments.runs import load_run, read_config
from flowood.ood.detectors import get_detector
from flowood.runs import RunDir
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer
from tests.tiny import TINY_OVERRIDES

from .conftest import TINY


def tiny_config(*extra: str):
    raw = apply_overrides(get_preset("demo"), [*TINY_OVERRIDES, "train.epochs=1", "device=cpu", *extra])
    return config_from_dict(raw)


def stamp(run: Path) -> int:
    return (run / "model.safetensors").stat().st_mtime_ns


def test_same_config_is_reused_another_is_retrained(tmp_path: Path):
    run = tmp_path / "run"
    first = train_or_reuse(run, tiny_config())
    assert first.action == "trained" and first.result is not None and first.result.steps == 2
    before = stamp(run)
    assert train_or_reuse(run, tiny_config()).action == "reused" and stamp(run) == before
    changed = train_or_reuse(run, tiny_config("train.lr=0.002"))
    assert changed.action == "trained" and stamp(run) != before
    assert read_config(run).train.lr == 0.002


def test_an_interrupted_run_is_continued_not_taken_for_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run = tmp_path / "run"
    step = Trainer.train_step
    calls = {"n": 0}

    def interrupted(self, batch, ood_batch):
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first step: it finishes, a checkpoint is saved
        return step(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(TrainingInterruptedError):
        train_or_reuse(run, tiny_config("train.epochs=2"))
    monkeypatch.setattr(Trainer, "train_step", step)
    again = train_or_reuse(run, tiny_config("train.epochs=2"))
    assert again.action == "resumed" and again.result is not None and again.result.steps == 4
    assert train_or_reuse(run, tiny_config("train.epochs=2")).action == "reused"
    assert load_run(run).steps == 4


def test_force_clears_the_auxiliary_models_and_evaluate_then_trains_new_members(tmp_path: Path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY]) == 0
    aux = AuxSettings(ensemble=AuxBudget(minutes=1.0, max_steps=2), test_limit=32)
    kw = dict(aux=aux, scoring=ScoringOptions(limit=32), device="cpu")
    evaluate_run(run, ["mnist-mini"], detectors=[get_detector("waic", ensemble_size=2)], **kw)  # type: ignore[arg-type]
    member = RunDir(run).ensemble_member(0)
    old = stamp(member)
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run), "--force", *TINY]) == 0
    for name in (RunDir.ENSEMBLE, RunDir.BACKGROUND, RunDir.GENERAL, RunDir.EMBEDDING_FLOW, RunDir.EMBEDDINGS):
        assert not (run / name).exists(), name
    evaluate_run(run, ["mnist-mini"], detectors=[get_detector("waic", ensemble_size=2)], **kw)  # type: ignore[arg-type]
    assert stamp(member) != old  # new members for the replaced run, not the old run's


def test_data_root_reaches_every_auxiliary_model(tmp_path: Path, tiny_run: Path):
    root = tmp_path / "data"
    root.mkdir()
    aux = AuxSettings(ensemble=AuxBudget(minutes=1.0, max_steps=1), test_limit=16)
    evaluate_run(
        tiny_run,
        ["mnist-mini"],
        detectors=[get_detector("waic", ensemble_size=2)],
        aux=aux,
        scoring=ScoringOptions(limit=16),
        device="cpu",
        data_root=str(root),
    )
    for k in range(2):
        assert read_config(RunDir(tiny_run).ensemble_member(k)).data.root == str(root)
