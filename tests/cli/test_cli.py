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
    # A cap of a few microseconds: the epoch is cut after its first step, whatever the machine.
    assert main([*args, "--minutes", "1e-9"]) == 0
    printed = capsys.readouterr().out
    training = json.loads((out / "report.json").read_text())["training"]
    assert training["stopped_by"] == "train.max_minutes" and training["partial_steps"] == 1
    assert training["epochs_completed"] == 0 and training["planned_steps"] == 4
    assert "Training: PARTIAL - stopped by train.max_minutes after 0 of 1 epochs + 1 steps" in printed
    # Lifting the cap finishes the same run (the cap is a safety, not part of the model): no --force needed.
    assert main([*args, "--minutes", "10"]) == 0
    assert json.loads((out / "report.json").read_text())["training"]["stopped_by"] == "epochs"


def _demo_args(out, *extra):
    tiny = ["--set", "model.num_blocks=1", "--set", "model.mid_channels=4", "--set", "data.limit=64"]
    return ["demo", "--out", str(out), "--quiet", "--device", "cpu", "--set", "data.test_limit=64", *tiny, *extra]


def test_demo_reuses_its_run_and_never_replaces_another_silently(tmp_path, capsys, monkeypatch):
    """Issue 25, item 4: `demo --all-scores` after `make demo` scores the same model (one config for both);
    a demo onto a run of another config is refused unless --force; a folder that is not a run never is."""
    from flowood.experiments import demo as demo_mod
    from tests.experiments.conftest import tiny_aux

    out = tmp_path / "flowood-demo"
    assert main(_demo_args(out)) == 0
    weights = (out / "model.safetensors").read_bytes()
    monkeypatch.setattr(demo_mod, "demo_aux", lambda: tiny_aux())
    monkeypatch.setattr(demo_mod, "DEMO_SCORES", ["log_likelihood", "waic"])
    assert main([*_demo_args(out), "--all-scores"]) == 0
    assert (out / "model.safetensors").read_bytes() == weights  # the same model, reused
    assert "waic" in json.loads((out / "report.json").read_text())["scores"]

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".flowood.lock"}
    capsys.readouterr()
    assert main(_demo_args(out, "--set", "train.lr=0.01")) == 2
    err = capsys.readouterr().err
    assert "already holds another run" in err and "train.lr: 0.001 -> 0.01" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before
    assert main(_demo_args(out, "--set", "train.lr=0.01", "--force")) == 0
    assert (out / "model.safetensors").read_bytes() != weights

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: settings\n")
    (mine / "metrics.csv").write_text("a,b\n1,2\n")
    assert main(_demo_args(mine, "--force")) == 2
    assert "not a flowood" in capsys.readouterr().err
    assert (mine / "metrics.csv").read_text() == "a,b\n1,2\n"


def test_demo_next_line_names_the_command_as_the_user_runs_it(tmp_path, capsys, monkeypatch):
    """After `make`, flowood is `.venv/bin/flowood` (not on PATH): the "Next:" line must say so."""
    monkeypatch.setattr(sys, "argv", [".venv/bin/flowood", "demo"])
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(_demo_args(tmp_path / "d")) == 0
    assert f"Next: .venv/bin/flowood visualize {tmp_path / 'd'}" in capsys.readouterr().out


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


TABLES = [["presets"], ["datasets"], ["datasets", "--verbose"], ["embed", "--list-extractors"]]


@pytest.mark.parametrize("command", TABLES)
def test_tables_never_cut_a_name_at_80_columns(command, capsys, monkeypatch):
    """Piped output is 80 columns wide: the names users copy into commands are printed whole all the same."""
    from flowood.data import list_datasets
    from flowood.features import EXTRACTORS
    from flowood.train.presets import PRESETS

    monkeypatch.setenv("COLUMNS", "80")
    assert main(command) == 0
    out = capsys.readouterr().out
    names = {"presets": list(PRESETS), "datasets": [i.name for i in list_datasets()], "embed": list(EXTRACTORS)}
    for name in names[command[0]]:
        assert f" {name} " in out, name
    assert "…" not in out
