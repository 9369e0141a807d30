"""Every command that writes into a run directory (``evaluate``, ``visualize``, ``report``) holds the run's lock
while it works, writes each file whole or not at all, and on a full disk or a read-only run says so in one line
with nothing lost (issue 25, items 2, 3 and 9)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

import flowood.experiments.evaluate as evaluate_mod
from flowood.cli.app import main
from flowood.runs import RunDir
from flowood.train.trainer import Trainer
from tests.disk import disk_full_below, files_below, read_only_below
from tests.tiny import TINY_TRAIN_ARGS

EVALUATE = ["--device", "cpu", "--limit", "8", "--quiet"]
VISUALIZE = ["--num-stats", "8", "--num-scores", "8", "--num-samples", "4", "--num-examples", "1", "--layers", "0"]
WAIC = ["--scores", "waic", "--ensemble-size", "2", "--score-setting", "aux.ensemble.max_steps=1"]

COMMANDS = {
    "evaluate": ["evaluate", "{run}", *EVALUATE],
    "evaluate --scores waic": ["evaluate", "{run}", *EVALUATE, *WAIC],
    "visualize": ["visualize", "{run}", *VISUALIZE],
    "report": ["report", "{run}"],
}


@pytest.fixture(scope="module")
def finished(tiny_run: Path) -> Path:
    """The tiny run with every file the commands write: report.json, scores.npz, histogram.png, figures/,
    report.html."""
    assert main(["evaluate", str(tiny_run), *EVALUATE]) == 0
    assert main(["visualize", str(tiny_run), *VISUALIZE]) == 0
    assert main(["report", str(tiny_run)]) == 0
    return tiny_run


def _args(command: str, run: Path) -> list[str]:
    return [a.format(run=run) for a in COMMANDS[command]]


def _copy(run: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(run, tmp / "run"))


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return err


FILLS_AT = [
    ("evaluate", None),
    ("evaluate", "scores.npz"),
    ("evaluate", "histogram.png"),
    ("evaluate --scores waic", None),
    ("evaluate --scores waic", "last.pt"),  # torch.save of a member's checkpoint
    ("evaluate --scores waic", "ood_scores.npz"),
    ("visualize", None),
    ("visualize", "latents.png"),
    ("visualize", "coupling_stats.json"),
    ("report", None),
]


@pytest.mark.parametrize(("command", "only"), FILLS_AT, ids=[f"{c}-{o or 'first write'}" for c, o in FILLS_AT])
def test_a_full_disk_keeps_every_file_whole(finished, tmp_path, monkeypatch, capsys, command, only):
    run = _copy(finished, tmp_path)
    before = files_below(run)
    capsys.readouterr()
    with disk_full_below(monkeypatch, run, only=only):
        assert main(_args(command, run)) == 2
    err = _one_line(capsys)
    assert "no space left on device" in err or "disk full" in err
    after = files_below(run)
    for name, data in before.items():  # each file is the old one or a whole new one, never half of either
        assert name in after
        if only is None or only in name:
            assert after[name] == data, name
    new = set(after) - set(before)
    assert not any(name.endswith(".tmp") for name in new), new
    assert only is None or not any(only in name for name in new), new


@pytest.mark.parametrize("command", ["evaluate", "visualize", "report"])
def test_a_read_only_run_is_one_line_that_fits_the_command(finished, tmp_path, monkeypatch, capsys, command):
    run = _copy(finished, tmp_path)
    before = files_below(run)
    capsys.readouterr()
    with read_only_below(monkeypatch, run):
        assert main(_args(command, run)) == 2
    err = _one_line(capsys)
    assert "read-only file system" in err and f"flowood {command}" in err
    # Only `report` can write elsewhere; the others must not send the user to an option they do not have.
    assert ("--out FILE.html" in err) == (command == "report")
    assert "--out DIR" not in err and "writable --out" not in err
    assert files_below(run) == before


@pytest.mark.parametrize("command", ["evaluate", "visualize", "report"])
def test_a_run_in_use_is_refused_before_any_work(finished, tmp_path, capsys, command):
    """A run being trained (``train --resume``) or evaluated is refused, naming the process."""
    run = _copy(finished, tmp_path)
    before = files_below(run)
    with RunDir(run).hold("train"):  # as `train --resume` or another `evaluate` holds it
        capsys.readouterr()
        assert main(_args(command, run)) == 2
    err = _one_line(capsys)
    assert "is being written by process" in err and f"run `flowood {command}` again" in err
    assert files_below(run) == before


def test_evaluate_holds_the_lock_while_it_scores(finished, tmp_path, monkeypatch, capsys):
    """While `evaluate` works, neither `train --resume` nor a second `evaluate` can start on the run."""
    run = _copy(finished, tmp_path)
    seen: list[str] = []
    real = evaluate_mod.score_samples

    def scoring(*args, **kwargs):
        if not seen:
            assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
            assert main(["evaluate", str(run), *EVALUATE]) == 2
            seen.append(capsys.readouterr().err)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "score_samples", scoring)
    assert main(["evaluate", str(run), *EVALUATE]) == 0
    assert seen and seen[0].count("is being written by process") == 2, seen
    RunDir(run).hold("evaluate").release()  # released once the evaluation is done


def test_report_of_a_run_stopped_in_its_first_epoch(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the first epoch leaves a TensorBoard step curve and no metrics.csv row: the page says so."""
    real = Trainer.train_step
    calls = {"n": 0}

    def step_then_signal(self, batch, ood_batch):
        calls["n"] += 1
        if calls["n"] == 11:
            os.kill(os.getpid(), signal.SIGINT)  # the step completes, the run saves and stops
        return real(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    run = tmp_path / "run"
    tiny = [*TINY_TRAIN_ARGS, "--set", "train.batch_size=4", "--set", "train.sample_every=0"]
    assert main(["train", "--preset", "demo", "--out", str(run), *tiny]) == 130
    monkeypatch.undo()
    assert RunDir(run).read_metrics() == []
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Training curves" in page and "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["benchmark", "fashionmnist", "--device", "cpu", "--quiet", "--out"],
        ["reproduce", "likelihood-failure", "--device", "cpu", "--quiet", "--out"],
    ],
    ids=["benchmark", "reproduce"],
)
def test_an_output_folder_in_use_is_refused_before_any_work(tmp_path, capsys, command):
    """Two benchmarks (or reproduces) into one --out would interleave their runs and leaderboards."""
    out = tmp_path / "out"
    with RunDir(out).hold_output("benchmark"):
        capsys.readouterr()
        assert main([*command, str(out)]) == 2
    err = _one_line(capsys)
    assert "is being written by process" in err and f"flowood {command[0]}" in err
    assert [p.name for p in out.iterdir()] == [".flowood.lock"]


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ("evaluate", "flowood.experiments.evaluate.plot_bpd_histograms"),  # after scores.npz is written
        ("visualize", "flowood.experiments.visualize.plot_samples"),  # after latents and couplings
        ("report", "flowood.analysis.html_report.render_html"),
    ],
)
def test_ctrl_c_leaves_every_file_whole_and_the_run_free(finished, tmp_path, monkeypatch, capsys, command, where):
    run = _copy(finished, tmp_path)
    before = files_below(run)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    capsys.readouterr()
    assert main(_args(command, run)) == 130
    assert "interrupted" in capsys.readouterr().err
    after = files_below(run)
    assert set(after) == set(before)  # no half-written or temporary file
    assert after["report.json"] == before["report.json"]  # the report only follows a complete evaluation
    RunDir(run).hold(command).release()  # the lock went with the process's work
