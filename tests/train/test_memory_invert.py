"""``train.memory=invert`` trains as ``store`` does: curves, EMA, clipping, the non-finite guard, resume, bf16."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from flowood.errors import ConfigError
from flowood.train import step as step_mod
from flowood.train.config import config_from_dict
from flowood.train.trainer import resume, train
from tests.train.conftest import tiny_raw

# Random st-net output layers (the original's init): identity couplings would invert exactly and prove nothing.
MODEL = {"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4, "init_zeros": False}
GLOW = {"name": "glow", "num_scales": 2, "num_steps": 2, "num_blocks": 1, "mid_channels": 4, "init_zeros": False}


def _cfg(memory: str, model=MODEL, **train_kw):
    train_kw = {"epochs": 1, "sample_every": 0, **train_kw}  # 3 steps
    return config_from_dict(tiny_raw(model=dict(model), memory=memory, **train_kw))


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _close(a_dir, b_dir, name="model.safetensors", tol=1e-4):
    a, b = load_file(str(a_dir / name)), load_file(str(b_dir / name))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=tol, atol=tol), k


def _same_curves(a_dir, b_dir, rel=2e-4):
    for a, b in zip(_rows(a_dir), _rows(b_dir), strict=True):
        for key in ("train_bpd", "test_bpd"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=rel), key


def test_invert_trains_like_store_with_ema_and_clipping(tmp_path):
    # grad_clip below the gradient norm: clipping acts on every step; the EMA copy follows the same weights.
    # Weights are compared loosely: Adam divides by the gradient's RMS, so parameters whose gradient is ~0 move by
    # the learning rate in the direction of rounding noise (as two store runs with another summation order would).
    kw = {"ema_decay": 0.9, "grad_clip": 0.5}
    store = train(_cfg("store", GLOW, **kw), tmp_path / "store", quiet=True)
    invert = train(_cfg("invert", GLOW, **kw), tmp_path / "invert", quiet=True)
    assert invert.steps == store.steps == 3 and not invert.notes
    _same_curves(tmp_path / "store", tmp_path / "invert")
    _close(tmp_path / "store", tmp_path / "invert", tol=1e-2)
    _close(tmp_path / "store", tmp_path / "invert", "model_ema.safetensors", tol=1e-2)


def test_invert_resume_is_exact(tmp_path):
    train(_cfg("invert"), tmp_path / "full", quiet=True)
    train(_cfg("invert", max_steps=2), tmp_path / "split", quiet=True)
    resume(tmp_path / "split", quiet=True, overrides=["train.max_steps=null"])
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_invert_nonfinite_steps_are_skipped(tmp_path, monkeypatch):
    real = step_mod.compute_loss
    calls = {"n": 0}

    def loss_with_nan(flow, batch, ood_batch, cfg):
        loss, logs = real(flow, batch, ood_batch, cfg)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 2 else loss), logs

    monkeypatch.setattr(step_mod, "compute_loss", loss_with_nan)
    result = train(_cfg("invert", nonfinite="skip"), tmp_path / "run", quiet=True)
    assert result.nonfinite_steps == 1 and result.epochs_completed == 1
    assert not result.notes  # NaN gradients are the guard's business, not a reconstruction error
    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "run" / "model.safetensors")).values())


def test_invert_under_bf16_autocast_trains_like_store(tmp_path):
    # Glow: its highway st-nets have no batch norm, whose preceding biases get only rounding noise as gradient,
    # which Adam's first step turns into ±lr whichever the mode (measured: 2e-3 on those biases, at lr 1e-3).
    train(_cfg("store", GLOW, precision="bf16"), tmp_path / "store", quiet=True)
    result = train(_cfg("invert", GLOW, precision="bf16"), tmp_path / "invert", quiet=True)
    # bf16 rounding flips amplify reconstruction errors: the check may cut a segment (keep one tensor), not store.
    assert all("its own input is kept (one tensor)" in note for note in result.notes)
    _same_curves(tmp_path / "store", tmp_path / "invert")


def test_blocks_past_the_tolerance_fall_back_with_a_warning(tmp_path):
    result = train(_cfg("invert", max_steps=1, invert_tolerance=1e-12), tmp_path / "run", quiet=True)
    assert result.steps == 1
    assert any("train.invert_tolerance=1e-12; keeps its activations" in n for n in result.notes)


def test_memory_setting_is_checked():
    with pytest.raises(ConfigError, match=r"train\.memory"):
        _cfg("recompute")
    with pytest.raises(ConfigError, match=r"train\.invert_tolerance"):
        _cfg("invert", invert_tolerance=0)
