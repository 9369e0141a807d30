"""End-to-end command-line runs on tiny configs, and the errors users see."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from flowood.cli.app import main
from tests.tiny import TINY_TRAIN_ARGS

TINY = TINY_TRAIN_ARGS


def test_presets_json(capsys):
    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert abs(rows["realnvp-fashionmnist"]["parameters"] - 14.7e6) / 14.7e6 < 0.02
    assert {"realnvp-celeba", "glow-fashionmnist", "glow-celeba"} <= set(rows)


@pytest.mark.slow  # end to end
def test_train_evaluate_resume_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY]) == 0
    assert "done: 1 epochs" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--ood", "mnist-mini,glyphs", "--limit", "64", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mnist-mini" in out and "AUROC" in out
    report = json.loads((run / "report.json").read_text())
    assert report["in_distribution"]["dataset"] == "fashionmnist-mini"
    for name in ("mnist-mini", "glyphs"):
        entry = report["ood"][name]
        assert set(entry["bits_per_dim"]) >= {"mean", "median", "n", "nonfinite"}
        assert set(entry["metrics"]["log_likelihood"]) >= {"auroc", "aupr_in", "aupr_out", "fpr95"}
        assert entry["bits_per_dim"]["n"] == 64
    assert (run / "histogram.png").stat().st_size > 1000
    scoring = report["scoring"]
    n_in = report["in_distribution"]["bits_per_dim"]["n"]
    assert scoring["images"] == n_in + 2 * 64 and scoring["seconds"] > 0
    assert scoring["images_per_second"] == pytest.approx(scoring["images"] / scoring["seconds"], rel=0.05)
    assert f"scored {scoring['images']} samples" in out
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert "done: 2 epochs" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--set", "train.batch_size=8"]) == 2
    assert "a resumed run can only change train.epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "train.epochs=3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "done: 3 epochs" in out and "stopped by" not in out
    assert main(["train", "--resume", str(run), "--epochs", "5", "--set", "train.max_steps=8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"stopped by train.max_steps; continue with: flowood train --resume {run} --set train.max_steps=N" in out


def test_config_file_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: tabular, num_couplings: 2, hidden_dim: 8, num_layers: 1}\n"
        "data: {dataset: 'table:" + str(tmp_path / "t.csv") + "?label=y', limit: 40}\n"
        "train: {epochs: 1, batch_size: 16, lr: 0.001}\ndevice: cpu\n"
    )
    import numpy as np

    rng = np.random.default_rng(0)
    rows = ["a,b,c,y"] + [f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{i % 2}" for i, x in enumerate(rng.normal(size=(60, 3)))]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "standardize.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
        (["train", "--preset", "demo", "--out", "x", "--set", "train.lr=abc"], "train.lr must be a number"),
        (["train", "--preset", "demo", "--out", "x", "--set", "data.dataset=imagenet1000"], "unknown dataset"),
        (["train", "--preset", "demo"], "--out DIR is required"),
        (["evaluate", "/nonexistent/run"], "not a flowood run directory"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "flowood", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("flowood ")


def test_demo_wiring_on_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--quiet",
        "--device",
        "cpu",
        "--set",
        "model.num_blocks=1",
        "--set",
        "model.mid_channels=4",
        "--set",
        "data.limit=64",
        "--set",
        "data.test_limit=64",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert set(report["ood"]) == {"mnist-mini", "glyphs"}
    assert report["conclusion"] in printed
    assert "AUROC" in report["conclusion"]
    assert (out / "histogram.png").is_file() and (out / "config.yaml").is_file()
    training = report["training"]
    assert training["stopped_by"] == "epochs" and training["epochs_completed"] == training["epochs"]
    assert "complete" in printed.splitlines()[0]


def test_demo_cut_by_its_time_cap_says_partial(tmp_path, capsys):
    out = tmp_path / "demo"
    tiny = ["--set", "model.num_blocks=1", "--set", "model.mid_channels=4", "--set", "data.limit=256"]
    args = ["demo", "--out", str(out), "--quiet", "--device", "cpu", "--set", "data.test_limit=64", *tiny]
    # One step (batch 64 of 256 images) and then the cap: the epoch is cut after its first step.
    assert main([*args, "--set", "train.max_steps=1"]) == 0
    printed = capsys.readouterr().out
    training = json.loads((out / "report.json").read_text())["training"]
    assert training["stopped_by"] == "train.max_steps" and training["partial_steps"] == 1
    assert training["epochs_completed"] == 0
    assert printed.splitlines()[0].startswith("Training: PARTIAL - stopped by train.max_steps")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_evaluate_shows_scoring_progress_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY]) == 0
    capsys.readouterr()
    args = ["evaluate", str(run), "--ood", "mnist-mini", "--limit", "64", "--batch-size", "16", "--device", "cpu"]
    assert main(args) == 0
    assert "score mnist-mini" not in capsys.readouterr().err  # redirected: no bar
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(args) == 0
    shown = terminal.getvalue()
    assert "score fashionmnist-mini" in shown and "score mnist-mini" in shown and "/64 " in shown
    assert main([*args, "--quiet"]) == 0
    assert terminal.getvalue() == shown  # --quiet: nothing more
