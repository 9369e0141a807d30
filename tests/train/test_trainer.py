"""Training loop: outputs, exact resume, atomic checkpoints, non-finite handling, negative training."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

import flowood.train.checkpoint as ckpt_mod
import flowood.train.step as step_mod
from flowood.errors import ConfigError
from flowood.flows import build_flow
from flowood.train.checkpoint import load_checkpoint
from flowood.train.nonfinite import TrainingDivergedError
from flowood.train.optim import parameter_groups
from flowood.train.trainer import Trainer, resume, train


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_run_directory_contents(tmp_path, tiny_config):
    result = train(tiny_config(), tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    assert result.epochs_completed == 2 and result.steps == 6
    for name in (
        "config.yaml",
        "metrics.csv",
        "model.safetensors",
        "checkpoints/last.pt",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["test_bpd"]) > 0 for r in rows)


def test_training_lowers_bits_per_dim(tmp_path, tiny_config):
    cfg = tiny_config(epochs=3, lr=3e-3)
    cfg.data.limit = 256
    train(cfg, tmp_path / "run", quiet=True)
    rows = _rows(tmp_path / "run")
    assert float(rows[-1]["test_bpd"]) < float(rows[0]["test_bpd"]) or float(rows[-1]["train_bpd"]) < float(
        rows[0]["train_bpd"]
    )


def test_resume_is_exact(tmp_path, tiny_config):
    train(tiny_config(epochs=3), tmp_path / "full", quiet=True)
    train(tiny_config(epochs=1), tmp_path / "split", quiet=True)
    resume(tmp_path / "split", quiet=True, epochs=3)
    full, split = _rows(tmp_path / "full"), _rows(tmp_path / "split")
    assert [(r["train_bpd"], r["test_bpd"]) for r in full] == [(r["train_bpd"], r["test_bpd"]) for r in split]
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_mid_epoch_is_exact(tmp_path, tiny_config):
    train(tiny_config(epochs=2), tmp_path / "full", quiet=True)
    train(tiny_config(epochs=2, max_steps=4), tmp_path / "split", quiet=True)  # stops inside epoch 2
    resume(tmp_path / "split", quiet=True, overrides=["train.max_steps=null"])
    assert "max_steps: null" in (tmp_path / "split" / "config.yaml").read_text()  # a later resume keeps it
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in _rows(tmp_path / "split")] == ["1", "2"]


def test_resume_says_which_limit_stopped_the_run(tmp_path, tiny_config):
    assert train(tiny_config(epochs=2, max_steps=4), tmp_path / "steps", quiet=True).stopped_by == "train.max_steps"
    with pytest.raises(ConfigError, match=r"max_steps=4; continue it with --set train.max_steps=N"):
        resume(tmp_path / "steps", quiet=True)
    with pytest.raises(ConfigError, match=r"can only change train\.epochs"):
        resume(tmp_path / "steps", quiet=True, overrides=["train.lr=0.1"])
    assert resume(tmp_path / "steps", quiet=True, overrides=["train.max_steps=5"]).steps == 5
    assert train(tiny_config(epochs=1, max_steps=3), tmp_path / "done", quiet=True).stopped_by == "epochs"
    with pytest.raises(ConfigError, match=r"finished its 1 epochs; continue it with --epochs N"):
        resume(tmp_path / "done", quiet=True)


def test_resume_of_a_time_capped_run_needs_a_larger_cap(tmp_path, tiny_config):
    # max_minutes counts the whole run's training time, so the same cap leaves nothing to do. (1e-9 minutes:
    # any step is longer, however fast or loaded the machine.)
    assert (
        train(tiny_config(epochs=5, max_minutes=1e-9), tmp_path / "run", quiet=True).stopped_by == "train.max_minutes"
    )
    with pytest.raises(ConfigError, match=r"train.max_minutes=1e-09 .*--set train.max_minutes=M"):
        resume(tmp_path / "run", quiet=True)
    result = resume(tmp_path / "run", quiet=True, overrides=["train.max_minutes=null"])
    assert result.epochs_completed == 5


def test_kill_during_checkpoint_write_keeps_previous(tmp_path, tiny_config, monkeypatch):
    trainer = Trainer(tiny_config(epochs=1), tmp_path / "run", quiet=True)
    trainer.run()
    before = load_checkpoint(trainer.ckpt_path)

    def dying_save(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"partial garbage")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ckpt_mod.torch, "save", dying_save)
    trainer.global_step += 1
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.undo()
    after = load_checkpoint(trainer.ckpt_path)
    assert after["global_step"] == before["global_step"]
    assert not [p for p in trainer.ckpt_path.parent.iterdir() if p.name.endswith(".tmp")]


def _inject_nan(monkeypatch, bad_steps):
    calls = {"n": 0}
    real = step_mod.compute_loss

    def loss_with_nan(flow, batch, ood_batch, cfg):
        loss, logs = real(flow, batch, ood_batch, cfg)
        calls["n"] += 1
        if calls["n"] in bad_steps:
            loss = loss * float("nan")
        return loss, logs

    monkeypatch.setattr(step_mod, "compute_loss", loss_with_nan)


def test_nonfinite_skip_counts_and_continues(tmp_path, tiny_config, monkeypatch):
    _inject_nan(monkeypatch, {2, 3})
    result = train(tiny_config(nonfinite="skip"), tmp_path / "run", quiet=True)
    assert result.nonfinite_steps == 2 and result.epochs_completed == 2
    assert _rows(tmp_path / "run")[-1]["nonfinite_steps"] == "2"
    state = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_nonfinite_rollback_lowers_lr(tmp_path, tiny_config, monkeypatch):
    _inject_nan(monkeypatch, {3})
    trainer = Trainer(tiny_config(nonfinite="rollback", rollback_lr_factor=0.5), tmp_path / "run", quiet=True)
    trainer.run()
    assert trainer.nonfinite_steps == 1 and trainer.lr_scale == 0.5


def test_nonfinite_raise_gives_clear_error(tmp_path, tiny_config, monkeypatch):
    _inject_nan(monkeypatch, {2})
    with pytest.raises(TrainingDivergedError, match="non-finite loss or gradients at step 1"):
        train(tiny_config(nonfinite="raise"), tmp_path / "run", quiet=True)


def test_negative_training_logs_both_likelihoods(tmp_path, tiny_config):
    cfg = tiny_config(epochs=1)
    cfg.data.negative_dataset = "mnist-mini"
    cfg.data.negative_threshold = -1e9
    train(cfg, tmp_path / "run", quiet=True)
    row = _rows(tmp_path / "run")[0]
    assert float(row["train_bpd"]) > 0
    assert float(row["ood_train_bpd"]) > 0


def test_init_from_a_trained_run(tmp_path, tiny_config):
    train(tiny_config(epochs=1), tmp_path / "base", quiet=True)
    cfg = tiny_config(epochs=1)
    cfg.train.init_from = str(tmp_path / "base")
    trainer = Trainer(cfg, tmp_path / "fine", quiet=True)
    base = load_file(str(tmp_path / "base" / "model.safetensors"))
    state = trainer.flow.state_dict()
    assert all(torch.equal(state[k].cpu(), v) for k, v in base.items())
    cfg.train.init_from = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no weights at"):
        Trainer(cfg, tmp_path / "bad", quiet=True)


def test_weight_decay_only_on_weight_norm_gains():
    flow = build_flow("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, mid_channels=4)
    groups = parameter_groups(flow, 5e-5)
    names = {id(p): n for n, p in flow.named_parameters()}
    decayed = [names[id(p)] for p in groups[1]["params"]]
    assert groups[1]["weight_decay"] == 5e-5 and groups[0]["weight_decay"] == 0.0
    assert decayed and all(n.endswith("parametrizations.weight.original0") for n in decayed)
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(flow.parameters()))


def test_ema_weights_written(tmp_path, tiny_config):
    train(tiny_config(epochs=1, ema_decay=0.9), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "model_ema.safetensors").is_file()


def test_redirected_output_gets_plain_heartbeat_lines(tmp_path, tiny_config, capsys):
    # Under nohup/SLURM stderr is a file: no carriage-return progress bar, but a plain line now and then.
    trainer = Trainer(tiny_config(epochs=1, sample_every=0), tmp_path / "run")
    assert not trainer.interactive  # pytest captures stderr
    trainer.heartbeat_seconds = 0.0
    trainer.run()
    out = capsys.readouterr()
    beats = [line for line in out.out.splitlines() if "steps/s" in line]
    # 3 steps; the first only sets the clock.
    assert len(beats) == 2, out.out
    assert beats[0].startswith("epoch 1/1 step 2/3: bpd ") and "0 non-finite" in beats[0]
    assert "\r" not in out.err


def test_heartbeat_waits_for_its_interval_and_respects_quiet(tmp_path, tiny_config, capsys):
    trainer = Trainer(tiny_config(epochs=1, sample_every=0), tmp_path / "run")
    assert trainer.heartbeat_seconds == 60.0
    trainer.heartbeat_seconds = 3600.0  # an interval no 3-step run reaches, however loaded the machine
    trainer.run()
    assert "steps/s" not in capsys.readouterr().out
    quiet = Trainer(tiny_config(epochs=1, sample_every=0), tmp_path / "quiet", quiet=True)
    quiet.heartbeat_seconds = 0.0
    quiet.run()
    assert capsys.readouterr().out == ""
