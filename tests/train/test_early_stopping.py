"""Early stopping on a validation split held out of the training split (``train.early_stopping``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.errors import ConfigError
from flowood.train.checkpoint import load_checkpoint
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.data import Standardizer, split_validation
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer, resume

# Breast cancer, benign rows: 214 training vectors. A high learning rate and many epochs overfit fast.
OVERFIT = ["train.lr=3e-3", "train.epochs=40", "train.warmup_steps=0", "train.input_noise=0.0"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is as fast, shared CPUs stay free


def _cfg(*overrides: str):
    raw = apply_overrides(get_preset("tabular-breast-cancer"), ["device=cpu", *overrides])
    return config_from_dict(raw)


def _val_column(run: Path) -> list[float]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [float(r["val_bpd"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{patience: 0}", "patience must be >= 1"),
        ("{val_fraction: 0.9}", r"val_fraction must be in \(0, 0.5\]"),
        ("{min_delta: -1}", "min_delta must be >= 0"),
        ("{patiense: 3}", "unknown key.*train.early_stopping.patiense"),
        ("{patience: 2.5}", "train.early_stopping.patience must be an integer"),
    ],
)
def test_bad_settings_are_one_line_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(f"train.early_stopping={value}")


def test_bad_setting_exits_2_from_the_cli(tmp_path: Path, capsys) -> None:
    args = ["train", "--preset", "tabular-breast-cancer", "--out", str(tmp_path / "r"), "-q"]
    assert main([*args, "--set", "train.early_stopping={patience: 0}"]) == 2
    assert "patience must be >= 1" in capsys.readouterr().err


def test_validation_split_is_a_seeded_partition() -> None:
    x = torch.arange(50.0).unsqueeze(1)
    train, val = split_validation(x, 0.2, seed=3)
    assert len(val) == 10 and len(train) == 40
    assert sorted(torch.cat([train, val]).flatten().tolist()) == x.flatten().tolist()
    again_train, again_val = split_validation(x, 0.2, seed=3)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(split_validation(x, 0.2, seed=4)[1], val)
    with pytest.raises(ConfigError, match="leaves no training samples"):
        split_validation(x[:1], 0.5, seed=0)


def test_validation_rows_are_held_out_of_training_and_statistics(tmp_path: Path) -> None:
    cfg = _cfg("train.early_stopping={patience: 2, val_fraction: 0.25}", "train.epochs=1")
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    rows = load_dataset("breast-cancer", "train", classes=[1], seed=cfg.seed).data.float()
    train_rows, val_rows = split_validation(rows, 0.25, cfg.seed)
    assert trainer.val_data is not None and len(trainer.val_data) == len(val_rows) == round(0.25 * len(rows))
    assert len(trainer.train_data) == len(train_rows)
    # The standardiser saw only the training part: its statistics are those rows' mean and std.
    std = Standardizer.load(tmp_path / "run" / "standardize.json")
    torch.testing.assert_close(std.mean, train_rows.double().mean(0).float())
    torch.testing.assert_close(trainer.val_data.data, std(val_rows))


def test_early_stopping_keeps_the_best_validation_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _cfg(*OVERFIT, "train.early_stopping={patience: 3, val_fraction: 0.2}")
    result = Trainer(cfg, run, quiet=True).run()
    assert result.stopped_by == "train.early_stopping" and result.epochs_completed < 40
    vals = _val_column(run)
    # The last `patience` epochs did not improve on the best one, which is what the run kept.
    assert result.best_epoch is not None and result.val_bpd is not None
    assert len(vals) == result.epochs_completed and len(vals) - result.best_epoch == 3
    assert result.best_epoch == 0 or math.isclose(vals[result.best_epoch - 1], result.val_bpd, rel_tol=1e-5)
    assert result.val_bpd <= min(vals) + 1e-6
    assert vals[-1] > result.val_bpd  # ... and the run overfitted afterwards: the kept weights are not the last
    # model.safetensors holds the kept weights: re-scoring the validation rows reproduces the best value.
    trainer = Trainer(cfg, tmp_path / "again", quiet=True)
    trainer.flow.load_state_dict(load_file(str(run / "model.safetensors")))
    trainer.flow.eval()
    with torch.no_grad():
        ll = trainer.flow.log_likelihood(trainer.val_data.data)
    bpd = float((-ll / (trainer.flow.num_dims * math.log(2))).mean())
    assert math.isclose(bpd, result.val_bpd, rel_tol=1e-5)
    # The checkpoint still holds the last training state (so `resume` continues the same run).
    last = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    kept = load_file(str(run / "model.safetensors"))
    assert any(not torch.equal(last[k], kept[k]) for k in kept)


def test_evaluate_scores_the_kept_weights(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    args = ["train", "--preset", "tabular-breast-cancer", "--out", str(run), "--device", "cpu", "-q"]
    sets = [f"--set={o}" for o in OVERFIT] + ["--set=train.early_stopping={patience: 2, val_fraction: 0.2}"]
    assert main([*args, *sets]) == 0
    out = capsys.readouterr().out
    assert "early stopping: kept the weights of epoch" in out and "--resume" not in out
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["ood"]["breast-cancer[classes=0]"]["metrics"]["log_likelihood"]["auroc"] > 0.9


def test_resume_with_early_stopping_is_exact(tmp_path: Path) -> None:
    es = "train.early_stopping={patience: 2, val_fraction: 0.2}"
    whole = Trainer(_cfg(*OVERFIT, es), tmp_path / "whole", quiet=True).run()
    assert whole.stopped_by == "train.early_stopping"
    # Cut the run in its last epoch, after the first of the two epochs without improvement: the patience count
    # and the best weights so far must come back from the checkpoint for the continued run to stop there too.
    cut_epoch = whole.epochs_completed - 1
    steps_per_epoch = whole.steps // whole.epochs_completed
    cut = _cfg(*OVERFIT, es, f"train.max_steps={cut_epoch * steps_per_epoch + 2}")  # stops mid-epoch
    first = Trainer(cut, tmp_path / "cut", quiet=True).run()
    assert first.stopped_by == "train.max_steps"
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["early_stopping"]["bad_epochs"] == 1
    again = resume(tmp_path / "cut", quiet=True, overrides=["train.max_steps=null"])
    assert (again.best_epoch, again.steps, again.stopped_by) == (whole.best_epoch, whole.steps, whole.stopped_by)
    assert again.val_bpd == pytest.approx(whole.val_bpd, rel=1e-6)
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_the_initial_weights_are_a_candidate(tmp_path: Path) -> None:
    # A learning rate this large makes every epoch worse than the start: the run keeps its initial weights.
    cfg = _cfg("train.lr=0.5", "train.epochs=6", "train.warmup_steps=0", "train.early_stopping={patience: 2}")
    result = Trainer(cfg, tmp_path / "run", quiet=True).run()
    assert result.best_epoch == 0 and result.stopped_by == "train.early_stopping"
    assert result.val_bpd is not None and result.val_bpd < min(_val_column(tmp_path / "run"))
    initial = Trainer(cfg, tmp_path / "fresh", quiet=True).flow.state_dict()  # same seed: the same initial weights
    kept = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.equal(kept[k], initial[k].cpu()) for k in kept)
