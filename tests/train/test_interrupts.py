"""Interrupts save (``flowood.train.interrupts`` and the trainer's signal handling): a signal finishes the step,
writes a checkpoint, says how to resume;
the resumed run equals an uninterrupted one; train.max_minutes bounds the end-of-epoch evaluation too."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import flowood.train.objective as objective_mod
import flowood.train.trainer as trainer_mod
from flowood.errors import TrainingInterruptedError
from flowood.train.checkpoint import load_checkpoint
from flowood.train.config import config_from_dict
from flowood.train.trainer import Trainer, resume, train
from tests.tiny import HANG_SECONDS
from tests.train.conftest import tiny_raw


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _cfg(**train_kw):
    return config_from_dict(tiny_raw(**{"sample_every": 0, "eval_batch_size": 16, **train_kw}))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 2-epoch run (3 steps per epoch) to compare resumed runs with."""
    out = tmp_path_factory.mktemp("full") / "run"
    train(_cfg(), out, quiet=True)
    return out


def _same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # The epoch means too: resume restores the running sums, so the logged train bpd is the same.
    key = [(r["epoch"], r["train_bpd"], r["test_bpd"], r["partial"]) for r in _rows(a)]
    assert key == [(r["epoch"], r["train_bpd"], r["test_bpd"], r["partial"]) for r in _rows(b)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_saves_and_resume_is_exact(tmp_path, full_run, monkeypatch, signum):
    real = Trainer.train_step
    calls = {"n": 0}

    def step_then_signal(self, batch, ood_batch):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signum)  # arrives during the step; the step still completes
        return real(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterruptedError, match=rf"continue with: flowood train --resume {run}") as err:
        train(_cfg(), run, quiet=True)
    assert signal.Signals(signum).name in str(err.value)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (2, 0, 2)
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) != trainer_mod.StopSignals._handle
    monkeypatch.undo()
    resume(run, quiet=True)
    _same_run(full_run, run)


def test_signal_during_end_of_epoch_evaluation_keeps_the_epoch(tmp_path, full_run, monkeypatch):
    real = objective_mod.nll_bpd
    sent = {"done": False}

    def eval_then_signal(flow, batch):
        if not sent["done"]:
            sent["done"] = True
            os.kill(os.getpid(), signal.SIGINT)
        return real(flow, batch)

    monkeypatch.setattr(objective_mod, "nll_bpd", eval_then_signal)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterruptedError):
        train(_cfg(), run, quiet=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)  # steps kept, evaluation pending
    assert _rows(run) == []  # no row for an epoch whose evaluation was abandoned
    monkeypatch.undo()
    resume(run, quiet=True)
    _same_run(full_run, run)


def test_max_minutes_bounds_the_end_of_epoch_evaluation(tmp_path, monkeypatch, capsys):
    # The trainer's clock is the test's: training takes no time on it, whatever the machine's load (issue 25,
    # item 13), and the first evaluation batch "takes" 2 minutes of the 1-minute budget.
    now = [0.0]
    monkeypatch.setattr(trainer_mod, "time", SimpleNamespace(monotonic=lambda: now[0]))
    real = objective_mod.nll_bpd

    def slow_eval(flow, batch):
        now[0] += 120.0
        return real(flow, batch)

    monkeypatch.setattr(objective_mod, "nll_bpd", slow_eval)
    result = train(_cfg(epochs=3, max_minutes=1.0), tmp_path / "run")
    assert result.stopped_by == "train.max_minutes" and result.epochs_completed == 1
    assert any("cut short by train.max_minutes" in n for n in result.notes)
    assert "note: epoch 1: test evaluation cut short by train.max_minutes" in capsys.readouterr().out
    rows = _rows(tmp_path / "run")
    assert len(rows) == 1 and rows[0]["test_bpd"] == "" and rows[0]["partial"] == "0"


def test_cap_reached_during_training_skips_the_evaluation(tmp_path, capsys):
    result = train(_cfg(epochs=2, max_minutes=1e-9), tmp_path / "run", quiet=True)
    assert result.stopped_by == "train.max_minutes" and result.partial_steps == 1
    rows = _rows(tmp_path / "run")
    assert [(r["epoch"], r["test_bpd"], r["partial"]) for r in rows] == [("1", "", "1")]
    assert "test bits/dim not evaluated, train.max_minutes reached" in capsys.readouterr().out  # also with quiet


def test_real_sigint_to_a_training_process(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    args = [sys.executable, "-m", "flowood", "train", "--preset", "demo", "--out", str(run), "--device", "cpu"]
    sets = ["model.num_blocks=1", "model.mid_channels=4", "data.limit=64", "data.test_limit=32"]
    sets += ["train.batch_size=8", "train.max_minutes=null", "train.epochs=1000", "train.sample_every=0"]
    args += [a for s in sets for a in ("--set", s)] + ["--quiet"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_SECONDS
        while not (run / "tensorboard").exists():  # created inside the loop's signal handling
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=HANG_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"continue with: flowood train --resume {run}" in err and "Traceback" not in err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["global_step"] >= 1
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
