"""``flowood.experiments.derived_runs``: :func:`train_or_reuse`, the one way every auxiliary model, the
benchmark's main model, ``reproduce`` and the demos obtain a run — reused only when its saved config is the
wanted one, continued from a checkpoint of the same config, retrained otherwise; ``--force`` clears a run's
auxiliary models with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from flowood.cli.app import main
from flowood.errors import TrainingInterruptedError
from flowood.experiments.aux_models import AuxBudget, AuxSettings
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.experiments.runs import load_run, read_config, training_summary
from flowood.ood.detectors import get_detector
from flowood.runs import RunDir
from flowood.train.checkpoint import load_checkpoint
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer
from tests.tiny import TINY_OVERRIDES

from .conftest import TINY, tiny_aux


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


# -- issue 25, item 6: an interrupted auxiliary model, an interrupted benchmark and a benchmark --out onto another
# protocol's output resume or retrain (through train_or_reuse); none is taken for finished.


def _interrupt_first_step(monkeypatch: pytest.MonkeyPatch, folder_name: str) -> None:
    """Ctrl-C during the first training step of the run whose directory is named ``folder_name``."""
    step = Trainer.train_step
    sent: list[Path] = []

    def maybe_interrupted(self, batch, ood_batch):
        if not sent and self.run_dir.name == folder_name:
            sent.append(self.run_dir)
            os.kill(os.getpid(), signal.SIGINT)  # the step finishes, the run saves its checkpoint and stops
        return step(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", maybe_interrupted)


AUX_CASES = {
    "waic member": (lambda: get_detector("waic", ensemble_size=2), "member-0", lambda r: r / "ensemble" / "member-0"),
    "general model": (
        lambda: get_detector("general_likelihood_ratio", dataset="glyphs"),
        "glyphs",
        lambda r: r / "general" / "glyphs",
    ),
    # Since issue 23 the embedding flow lives in its feature pipeline's folder: RUN/features/<pipeline>/embedding-flow.
    "embedding flow": (
        lambda: get_detector("embedding_likelihood"),
        "embedding-flow",
        lambda r: next((r / "features").glob("*/embedding-flow")),
    ),
}


@pytest.mark.parametrize("case", list(AUX_CASES))
def test_an_interrupted_auxiliary_model_is_continued(tmp_path, tiny_run, monkeypatch, capsys, case):
    detector, folder, where = AUX_CASES[case]
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    kw = dict(aux=tiny_aux(), scoring=ScoringOptions(limit=16), device="cpu")
    _interrupt_first_step(monkeypatch, folder)
    with pytest.raises(TrainingInterruptedError, match="run the same command again"):
        evaluate_run(run, ["mnist-mini"], detectors=[detector()], **kw)  # type: ignore[arg-type]
    aux = where(run)
    assert load_checkpoint(RunDir(aux).checkpoint)["global_step"] == 1  # its weights exist, after 1 step
    evaluate_run(run, ["mnist-mini"], detectors=[detector()], **kw)  # type: ignore[arg-type]
    summary = training_summary(aux)
    assert summary is not None and not summary.partial and summary.steps == summary.planned_steps > 1, summary


def _protocol(tmp: Path, name: str, in_distribution: str, near: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nin_distribution: {in_distribution}\nood: {{near: [{near}]}}\n"
        "detectors: [log_likelihood, compressed_size]\n"
        f"budgets: {{quick: {{preset: demo, overrides: [{', '.join(TINY_OVERRIDES)}], limit: 32, n_boot: 10}}}}\n"
    )
    return path


def _benchmark(protocol: Path, out: Path) -> list[str]:
    return ["benchmark", str(protocol), "--budget", "quick", "--out", str(out), "--device", "cpu", "--quiet"]


def test_an_interrupted_benchmark_continues_its_main_flow(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    protocol = _protocol(tmp_path, "fm", "fashionmnist-mini", "mnist-mini")
    _interrupt_first_step(monkeypatch, "run")
    assert main(_benchmark(protocol, out)) == 130
    assert load_checkpoint(RunDir(out / "run").checkpoint)["global_step"] == 1
    monkeypatch.undo()
    assert main(_benchmark(protocol, out)) == 0
    assert load_run(out / "run").steps == 2  # finished, not reused half-trained
    board = json.loads((out / "leaderboard.json").read_text())
    training = board["units"]["main"]["training"]  # issue 23's leaderboard: one entry per unit
    assert "train_seconds" in training and training["stopped_by"] != "reused" and not training["partial"]
    assert (out / "report.html").is_file()


def test_benchmark_out_onto_another_protocols_output_retrains(tmp_path):
    out = tmp_path / "bench"
    assert main(_benchmark(_protocol(tmp_path, "fm", "fashionmnist-mini", "mnist-mini"), out)) == 0
    first = stamp(out / "run")
    assert main(_benchmark(_protocol(tmp_path, "inv", "invert:fashionmnist-mini", "mnist-mini"), out)) == 0
    assert stamp(out / "run") != first  # a new main flow, not the other protocol's
    assert read_config(out / "run").data.dataset == "invert:fashionmnist-mini"
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["in_distribution"] == "invert:fashionmnist-mini" and board["protocol"] == "inv"
