"""Bad input → one clear line and exit 2, never a traceback (issue 17, items 5 and 9).

Each row: the files a user has, the command they type, and words the error must contain (the path or
option at fault and what to do). Rows needing a trained run share one tiny run (copied per row).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from tests.tiny import TINY_TRAIN_ARGS

Setup = Callable[[Path, Path], list[str]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    args = ["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY_TRAIN_ARGS]
    args += ["--set", "train.sample_every=0"]
    assert main(args) == 0
    return run


def _copy(run: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".flowood.lock"))
    return dst


def _yaml(tmp: Path, text: str) -> str:
    (tmp / "c.yaml").write_text(text)
    return str(tmp / "c.yaml")


def _table(tmp: Path, name: str, header: str, rows: list[str]) -> Path:
    (tmp / name).write_text("\n".join([header, *rows]) + "\n")
    return tmp / name


def _csv_cfg(tmp: Path, dataset: str, extra: str = "") -> list[str]:
    text = (
        "model: {name: tabular, num_couplings: 2, hidden_dim: 8, num_layers: 1}\n"
        f"data: {{dataset: '{dataset}', limit: 40{extra}}}\ntrain: {{epochs: 1, batch_size: 8}}\ndevice: cpu\n"
    )
    return ["train", "--config", _yaml(tmp, text), "--out", str(tmp / "out"), "--quiet"]


def _evaluate(*opts: str) -> Setup:
    return lambda tmp, run: ["evaluate", str(tmp / "never-read"), *opts]


def _crafted(tmp: Path, run: Path) -> list[str]:
    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(tmp / 'marker')!r}, 'w')",))

    r = _copy(run, tmp)
    torch.save({"model": Payload()}, r / "checkpoints" / "last.pt")
    return ["train", "--resume", str(r), "--epochs", "2", "--quiet"]


def _truncate(tmp: Path, run: Path) -> list[str]:
    r = _copy(run, tmp)
    data = (r / "model.safetensors").read_bytes()
    (r / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["evaluate", str(r), "--device", "cpu", "--limit", "8"]


def _missing_weights(tmp: Path, run: Path) -> list[str]:
    r = _copy(run, tmp)
    (r / "model.safetensors").unlink()
    return ["evaluate", str(r), "--device", "cpu", "--limit", "8"]


def _garbage_metrics(tmp: Path, run: Path) -> list[str]:
    r = _copy(run, tmp)
    (r / "metrics.csv").write_text("hello\nworld,1\n")
    return ["train", "--resume", str(r), "--epochs", "2", "--quiet"]


def _existing_out(tmp: Path, run: Path) -> list[str]:
    return ["train", "--preset", "demo", "--out", str(_copy(run, tmp)), *TINY_TRAIN_ARGS]


def _resume_finished(tmp: Path, run: Path) -> list[str]:
    return ["train", "--resume", str(_copy(run, tmp)), "--quiet"]


def _ood_vector_on_image_run(tmp: Path, run: Path) -> list[str]:
    return ["evaluate", str(_copy(run, tmp)), "--ood", "breast-cancer", "--device", "cpu", "--limit", "8"]


def _unlabelled_csv(tmp: Path, run: Path) -> list[str]:
    path = _table(tmp, "u.csv", "a,b", [f"{i},{i * 2 % 7}" for i in range(30)])
    return _csv_cfg(tmp, f"table:{path}", ", classes: [1]")


def _nan_csv(tmp: Path, run: Path) -> list[str]:
    rows = [f"{i},{'nan' if i % 5 == 0 else i * 0.5},{i % 2}" for i in range(40)]
    path = _table(tmp, "n.csv", "a,b,y", rows)
    return _csv_cfg(tmp, f"table:{path}?label=y")


def _corrupt_npz(tmp: Path, run: Path) -> list[str]:
    (tmp / "c.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return ["train", "--preset", "demo", "--out", str(tmp / "o"), "--set", f"data.dataset=npz:{tmp / 'c.npz'}"]


def _float_images_out_of_range(tmp: Path, run: Path) -> list[str]:
    np.savez(tmp / "f.npz", x=np.linspace(-3, 900, 64 * 28 * 28, dtype=np.float32).reshape(64, 1, 28, 28))
    return ["train", "--preset", "demo", "--out", str(tmp / "o"), "--set", f"data.dataset=npz:{tmp / 'f.npz'}"]


ROWS: list[tuple[str, Setup, list[str]]] = [
    # -- issue 17: tracebacks and misleading messages before
    ("evaluate --limit 0", _evaluate("--limit", "0"), ["--limit 0", ">= 1"]),
    ("evaluate --batch-size 0", _evaluate("--batch-size", "0"), ["--batch-size 0", ">= 1"]),
    ("evaluate --batch-size -1", _evaluate("--batch-size", "-1"), ["--batch-size -1"]),
    ("evaluate --precision fp8", _evaluate("--precision", "fp8"), ["--precision fp8", "bf16"]),
    (
        "model: 5 in YAML",
        lambda t, r: ["train", "--config", _yaml(t, "model: 5\n"), "--out", str(t / "o")],
        ["model must be a flow name"],
    ),
    (
        "--ood breast-cancer on an image run",
        _ood_vector_on_image_run,
        ["breast-cancer is a vector dataset", "image datasets only"],
    ),
    ("truncated model.safetensors", _truncate, ["model.safetensors is unreadable", "--resume"]),
    (
        "missing model.safetensors, last.pt present",
        _missing_weights,
        ["model.safetensors is missing", "last.pt exists", "--resume"],
    ),
    ("unlabelled CSV with data.classes", _unlabelled_csv, ["no samples with classes [1]", "data.classes=null"]),
    ("garbage metrics.csv on resume", _garbage_metrics, ["metrics.csv", "move it aside"]),
    ("crafted last.pt", _crafted, ["last.pt", "refuses to unpickle"]),
    ("--out onto an existing run", _existing_out, ["already holds a flowood run", "--force"]),
    ("NaN in a CSV column", _nan_csv, ["n.csv", "column 'b'", "8 rows", "remove or impute"]),
    ("float images outside [0,1] and [0,255]", _float_images_out_of_range, ["f.npz", "[0, 1]", "[0, 255]"]),
    # -- already clear before: kept so
    ("resume a finished run", _resume_finished, ["finished its 1 epochs", "--epochs N"]),
    ("unknown preset", lambda t, r: ["train", "--preset", "nope", "--out", str(t / "o")], ["unknown preset 'nope'"]),
    (
        "unknown dataset",
        lambda t, r: ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "data.dataset=imagenet1000"],
        ["unknown dataset"],
    ),
    (
        "non-number --set",
        lambda t, r: ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "train.lr=abc"],
        ["train.lr must be a number"],
    ),
    (
        "unknown config key",
        lambda t, r: ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "train.lrr=1"],
        ["train.lrr"],
    ),
    (
        "--set without =",
        lambda t, r: ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "train.lr"],
        ["key=value"],
    ),
    (
        "malformed YAML",
        lambda t, r: ["train", "--config", _yaml(t, "model: {name: [\n"), "--out", str(t / "o")],
        ["invalid YAML"],
    ),
    (
        "missing config file",
        lambda t, r: ["train", "--config", str(t / "none.yaml"), "--out", str(t / "o")],
        ["none.yaml does not exist"],
    ),
    ("no --out", lambda t, r: ["train", "--preset", "demo"], ["--out DIR is required"]),
    ("preset and config", lambda t, r: ["train", "--preset", "demo", "--config", "x.yaml", "--out", "o"], ["not both"]),
    ("evaluate a missing run", lambda t, r: ["evaluate", str(t / "nope")], ["not a flowood run directory"]),
    ("resume a missing run", lambda t, r: ["train", "--resume", str(t / "nope")], ["not a flowood run directory"]),
    (
        "resume with --set train.lr",
        lambda t, r: ["train", "--resume", str(_copy(r, t)), "--set", "train.lr=1"],
        ["can only change"],
    ),
    ("corrupt npz", _corrupt_npz, ["c.npz", "corrupt or truncated"]),
    (
        "unknown model option",
        lambda t, r: ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "model.wings=2"],
        ["model.wings"],
    ),
    (
        "cuda without a GPU",
        lambda t, r: (
            ["train", "--preset", "demo", "--out", str(t / "o"), "--set", "device=cuda:7", "--set", "data.limit=64"]
            if not torch.cuda.is_available()
            else ["train", "--preset", "nope", "--out", "o"]
        ),
        ["cuda" if not torch.cuda.is_available() else "nope"],
    ),
]


@pytest.mark.parametrize(("setup", "words"), [pytest.param(s, w, id=i) for i, s, w in ROWS])
def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, trained, setup, words):
    monkeypatch.chdir(tmp_path)
    args = setup(tmp_path, trained)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "marker").exists()
