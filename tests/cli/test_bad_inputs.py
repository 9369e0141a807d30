"""Bad input → one clear line and exit 2, never a traceback (every command of ``flowood.cli``).

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


# -- helpers for the rest of the table (inputs that were already clear stay so)
def _train(*opts: str) -> Setup:
    return lambda tmp, run: ["train", "--preset", "demo", "--out", str(tmp / "o"), *TINY_TRAIN_ARGS, *opts]


def _set(*overrides: str) -> Setup:
    return _train(*[arg for o in overrides for arg in ("--set", o)])


def _config(text: str) -> Setup:
    return lambda tmp, run: ["train", "--config", _yaml(tmp, text), "--out", str(tmp / "o"), "--quiet"]


def _on_run(*opts: str, command: str = "evaluate") -> Setup:
    extra = ["--device", "cpu", "--limit", "8"] if command == "evaluate" else []
    return lambda tmp, run: [command, str(_copy(run, tmp)), *extra, *opts]


def _npz(**arrays: np.ndarray) -> Setup:
    def setup(tmp: Path, run: Path) -> list[str]:
        np.savez(tmp / "u.npz", **arrays)
        return _set(f"data.dataset=npz:{tmp / 'u.npz'}")(tmp, run)

    return setup


def _npz_bytes(content: bytes | None) -> Setup:
    """An ``npz:`` dataset file holding ``content`` (None: a real npz cut in half)."""

    def setup(tmp: Path, run: Path) -> list[str]:
        if content is None:
            np.savez(tmp / "u.npz", x=np.zeros((64, 1, 28, 28), np.uint8))
            data = (tmp / "u.npz").read_bytes()
            (tmp / "u.npz").write_bytes(data[: len(data) // 2])
        else:
            (tmp / "u.npz").write_bytes(content)
        return _set(f"data.dataset=npz:{tmp / 'u.npz'}")(tmp, run)

    return setup


def _csv(header: str | None, rows: list[str], query: str = "") -> Setup:
    def setup(tmp: Path, run: Path) -> list[str]:
        path = tmp / "u.csv"
        path.write_text("".join(f"{line}\n" for line in ([header] if header is not None else []) + rows))
        return _csv_cfg(tmp, f"table:{path}{query}")

    return setup


def _broken_run(change: Callable[[Path], object], command: str = "evaluate") -> Setup:
    def setup(tmp: Path, run: Path) -> list[str]:
        r = _copy(run, tmp)
        change(r)
        if command == "resume":
            return ["train", "--resume", str(r), "--epochs", "2", "--quiet"]
        return [command, str(r), *(["--device", "cpu", "--limit", "8"] if command == "evaluate" else [])]

    return setup


def _wider_model(run: Path) -> None:
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("mid_channels: 4", "mid_channels: 8"))


def _file(tmp: Path) -> Path:
    (tmp / "taken.txt").write_text("a user's file")
    return tmp / "taken.txt"


def _protocol(text: str) -> Setup:
    def setup(tmp: Path, run: Path) -> list[str]:
        (tmp / "p.yaml").write_text(text)
        return ["benchmark", str(tmp / "p.yaml"), "--out", str(tmp / "b"), "--device", "cpu", "--quiet"]

    return setup


def _convert(content: object, *opts: str) -> Setup:
    def setup(tmp: Path, run: Path) -> list[str]:
        if isinstance(content, bytes):
            (tmp / "c.pt").write_bytes(content)
        elif content is not None:
            torch.save(content, tmp / "c.pt")
        return ["convert", str(tmp / "c.pt"), "--out", str(tmp / "cv"), *opts]

    return setup


def _embed(*opts: str) -> Setup:
    return lambda tmp, run: ["embed", "--out", str(tmp / "e.npz"), *opts]


def _one_image_ood(tmp: Path, run: Path) -> list[str]:
    np.savez(tmp / "one.npz", x=np.zeros((1, 1, 28, 28), np.uint8))
    return _on_run("--ood", f"npz:{tmp / 'one.npz'}")(tmp, run)


def _preset_on_csv(tmp: Path, run: Path) -> list[str]:
    path = _table(tmp, "u.csv", "a,b,c,y", [f"{i},{i % 7},{i % 3},{i % 2}" for i in range(60)])
    args = ["train", "--preset", "tabular-breast-cancer", "--out", str(tmp / "o"), "--device", "cpu", "--quiet"]
    return [*args, "--set", f"data.dataset=table:{path}?label=y"]


def _truncated_pt(tmp: Path, run: Path) -> list[str]:
    torch.save({"net": {"w": torch.zeros(4096)}, "epoch": 3}, tmp / "c.pt")
    data = (tmp / "c.pt").read_bytes()
    (tmp / "c.pt").write_bytes(data[: len(data) // 2])
    return ["convert", str(tmp / "c.pt"), "--out", str(tmp / "cv"), "--dataset", "FashionMNIST"]


def _output_rows(command: list[str]) -> list[tuple[str, Setup, list[str]]]:
    """``--out`` a file and ``--device tpu`` for a command that writes an output folder: refused before any work."""
    name = command[0]
    return [
        (
            f"{name} --out a file",
            lambda t, r: [*command, "--out", str(_file(t)), "--device", "cpu"],
            ["--out", "f.txt is a file", f"flowood {name}"],
        ),
        (
            f"{name} --device tpu",
            lambda t, r: [*command, "--out", str(t / "o"), "--device", "tpu"],
            ["unknown device 'tpu'"],
        ),
    ]


def _keep(path: Path) -> list[str]:
    """A user's file at ``path`` (the row's command must refuse to overwrite it); no extra arguments."""
    path.write_bytes(b"the user's own file")
    return []


def _file(tmp: Path) -> Path:
    (tmp / "f.txt").write_text("not a run\n")
    return tmp / "f.txt"


_PROTOCOL = (
    "name: p\nin_distribution: fashionmnist-mini\nood: {near: [mnist-mini]}\ndetectors: [%s]\nbudgets: {quick: {}}\n"
)
_MODEL = "model: {name: realnvp}\n"
STRAY = '"cat'
"""A label cell opening a quote that no later cell closes."""
_IMAGES = np.zeros((64, 1, 28, 28), np.uint8)


ROWS: list[tuple[str, Setup, list[str]]] = [
    # -- inputs that once gave tracebacks or misleading messages
    ("evaluate --limit 0", _evaluate("--limit", "0"), ["--limit must be >= 1", "got 0"]),
    ("evaluate --batch-size 0", _evaluate("--batch-size", "0"), ["--batch-size must be >= 1", "got 0"]),
    ("evaluate --batch-size -1", _evaluate("--batch-size", "-1"), ["--batch-size must be >= 1", "got -1"]),
    ("evaluate --precision fp8", _evaluate("--precision", "fp8"), ["--precision: 'fp8'", "bf16"]),
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
    # -- evaluate options
    ("evaluate --ood nope", _on_run("--ood", "nope"), ["unknown dataset 'nope'"]),
    ("evaluate --ood mnist-mini,nope", _on_run("--ood", "mnist-mini,nope"), ["unknown dataset 'nope'"]),
    ("evaluate --scores nope", _on_run("--scores", "nope"), ["unknown score 'nope'", "log_likelihood"]),
    ("evaluate --device tpu", _on_run("--device", "tpu"), ["unknown device 'tpu'"]),
    (
        "evaluate --data-root missing",
        _on_run("--data-root", "/nonexistent-root"),
        ["--data-root /nonexistent-root", "does not exist"],
    ),
    (
        "datasets --data-root missing",
        lambda tmp, run: ["datasets", "--data-root", str(tmp / "nope")],
        ["--data-root", "does not exist"],
    ),
    (
        "benchmark --data-root a file",
        lambda tmp, run: ["benchmark", "fashionmnist", "--data-root", str(run / "config.yaml")],
        ["is not a directory"],
    ),
    ("evaluate --limit -5", _evaluate("--limit", "-5"), ["--limit must be >= 1", "-5"]),
    ("evaluate --precision fp64", _evaluate("--precision", "fp64"), ["--precision: 'fp64'"]),
    ("evaluate --ensemble-size 0", _evaluate("--ensemble-size", "0"), ["--ensemble-size must be >= 2", "0"]),
    ("evaluate --ensemble-size 1", _evaluate("--ensemble-size", "1"), ["--ensemble-size must be >= 2", "1"]),
    ("evaluate --typicality-m 0", _evaluate("--typicality-m", "0"), ["--typicality-m must be >= 1", "0"]),
    ("evaluate --aux-minutes -1", _evaluate("--aux-minutes", "-1"), ["--aux-minutes must be > 0", "-1"]),
    ("evaluate --background-minutes 0", _evaluate("--background-minutes", "0"), ["--background-minutes must be > 0"]),
    (
        "evaluate --mutation-rate 2",
        _evaluate("--scores", "likelihood_ratio", "--mutation-rate", "2"),
        ["--mutation-rate must be in [0, 1]", "2"],
    ),
    (
        "evaluate --score-setting nope.x=1",
        _evaluate("--score-setting", "nope.x=1"),
        ["--score-setting nope", "a detector", "waic"],
    ),
    (
        "evaluate --score-setting without a section",
        _evaluate("--score-setting", "ensemble_size=2"),
        ["DETECTOR.FIELD=VALUE", "waic.ensemble_size=5"],
    ),
    ("evaluate --score-setting without =", _evaluate("--score-setting", "typicality.m"), ["key=value"]),
    (
        "evaluate --score-setting typicality.m=abc",
        _evaluate("--score-setting", "typicality.m=abc"),
        ["--score-setting typicality.m must be an integer", "'abc'"],
    ),
    (
        "evaluate --score-setting aux.embedding_flow.preset=demo",
        _evaluate("--score-setting", "aux.embedding_flow.preset=demo"),
        ["--score-setting aux.embedding_flow.preset", "'demo'", "tabular-embeddings-l2"],
    ),
    (
        "evaluate --score-setting waic.nope=1",
        _evaluate("--score-setting", "waic.nope=1"),
        ["unknown key --score-setting waic.nope", "ensemble_size"],
    ),
    ("evaluate --dose-estimator nope", _evaluate("--dose-estimator", "nope"), ["--dose-estimator: 'nope'", "ocsvm"]),
    (
        "evaluate --general-dataset nope",
        _on_run("--scores", "general_likelihood_ratio", "--general-dataset", "nope"),
        ["unknown dataset 'nope'"],
    ),
    ("evaluate a file", lambda t, r: ["evaluate", str(_file(t))], ["f.txt", "not a flowood run directory"]),
    # -- train options and --set values
    ("train --device tpu", _train("--device", "tpu"), ["device", "'tpu'"]),
    ("train --epochs 0", _train("--epochs", "0"), ["train.epochs must be >= 1", "got 0"]),
    ("train --epochs -1", _train("--epochs", "-1"), ["train.epochs must be >= 1", "got -1"]),
    ("--set train.lr=-1", _set("train.lr=-1"), ["train.lr must be > 0", "-1.0"]),
    ("--set train.lr=0", _set("train.lr=0"), ["train.lr must be > 0", "0.0"]),
    ("--set train.batch_size=0", _set("train.batch_size=0"), ["train.batch_size must be >= 1", "got 0"]),
    ("--set train.batch_size=-1", _set("train.batch_size=-1"), ["train.batch_size must be >= 1", "got -1"]),
    ("--set train.precision=fp8", _set("train.precision=fp8"), ["train.precision", "'fp8'", "bf16"]),
    ("--set train.optimizer=nope", _set("train.optimizer=nope"), ["train.optimizer", "'nope'", "adam"]),
    ("--set train.max_minutes=-1", _set("train.max_minutes=-1"), ["train.max_minutes must be > 0", "-1"]),
    ("--set train.max_steps=0", _set("train.max_steps=0"), ["train.max_steps must be >= 1", "got 0"]),
    ("--set data.limit=0", _set("data.limit=0"), ["data.limit must be >= 1", "got 0"]),
    ("--set data.test_limit=-5", _set("data.test_limit=-5"), ["data.test_limit must be >= 1", "got -5"]),
    ("--set train.epochs=1.5", _set("train.epochs=1.5"), ["train.epochs must be an integer", "1.5"]),
    ("--set model.name=nope", _set("model.name=nope"), ["model.name", "unknown flow 'nope'", "realnvp"]),
    ("--set seed=abc", _set("seed=abc"), ["seed must be an integer", "'abc'"]),
    ("device: tpu in YAML", _config(_MODEL + "device: tpu\n"), ["device must be", "'tpu'"]),
    ("--set of an unknown section", _set("nokey=1"), ["nokey", "valid: model, data, train"]),
    ("--set train=5", _set("train=5"), ["'train' must be a mapping", "5"]),
    # -- YAML files
    ("YAML: a list at the top", _config("- a\n- b\n"), ["c.yaml", "expected a mapping"]),
    ("YAML: a scalar at the top", _config("hello\n"), ["c.yaml", "expected a mapping"]),
    ("YAML: an empty file", _config(""), ["c.yaml", "expected a mapping"]),
    ("YAML: a tab", _config("model:\n\tname: realnvp\n"), ["c.yaml", "invalid YAML", "line 2"]),
    ("YAML: train is a list", _config(_MODEL + "train: [1, 2]\n"), ["'train' must be a mapping", "[1, 2]"]),
    ("YAML: data is a number", _config(_MODEL + "data: 5\n"), ["'data' must be a mapping"]),
    ("YAML: unknown top-level key", _config(_MODEL + "trian: {epochs: 1}\n"), ["trian", "valid:"]),
    ("YAML: epochs is a word", _config(_MODEL + "train: {epochs: abc}\n"), ["train.epochs", "'abc'"]),
    ("YAML: dataset is a number", _config(_MODEL + "data: {dataset: 5}\n"), ["data.dataset must be a string"]),
    (
        "YAML: ood is a number",
        _config(_MODEL + "data: {dataset: fashionmnist-mini, ood: 7}\n"),
        ["data.ood must be a list", "7"],
    ),
    ("train --set data.ood=[nope]", _train("--set", "data.ood=[nope]"), ["unknown dataset 'nope'"]),
    # -- user image files (npz)
    ("npz cut in half", _npz_bytes(None), ["u.npz", "corrupt or truncated"]),
    ("npz of 0 bytes", _npz_bytes(b""), ["u.npz", "corrupt or truncated"]),
    ("npz that is a text file", _npz_bytes(b"hello world\n"), ["u.npz", "corrupt or truncated"]),
    (
        "npz that does not exist",
        lambda t, r: _set(f"data.dataset=npz:{t / 'none.npz'}")(t, r),
        ["none.npz", "does not exist"],
    ),
    ("npz without an image array", _npz(a=_IMAGES), ["u.npz", "no image array", "'x'"]),
    ("npz images with 2 channels", _npz(x=np.zeros((64, 2, 28, 28), np.uint8)), ["u.npz", "(64, 2, 28, 28)"]),
    ("npz images with 5 axes", _npz(x=np.zeros((64, 1, 1, 28, 28), np.uint8)), ["u.npz", "(64, 1, 1, 28, 28)"]),
    ("npz images of NaN", _npz(x=np.full((64, 1, 28, 28), np.nan, np.float32)), ["u.npz", "NaN"]),
    ("npz images of complex numbers", _npz(x=_IMAGES.astype(np.complex64)), ["u.npz", "complex64"]),
    ("npz of Python objects", _npz(x=np.array([object()] * 64)), ["u.npz", "dtype=object"]),
    ("npz with fewer labels", _npz(x=_IMAGES, y=np.zeros(10, np.int64)), ["u.npz", "64 images but 10 labels"]),
    ("npz images of 27 px", _npz(x=np.zeros((64, 1, 27, 27), np.uint8)), ["num_scales=2", "(27, 27)"]),
    # -- user tables (CSV)
    ("CSV of 0 bytes", _csv(None, []), ["u.csv", "header row"]),
    ("CSV with a header only", _csv("a,b,c", []), ["u.csv", "header row"]),
    ("CSV with words", _csv("a,b", [f"{i},x{i}" for i in range(40)]), ["u.csv", "non-numeric", "'x0'"]),
    (
        "CSV with ragged rows",
        _csv("a,b,c", [f"{i},{i}" if i % 3 else f"{i},{i},{i},{i}" for i in range(40)]),
        ["u.csv", "3 fields", "line 2"],
    ),
    (
        "CSV with Inf",
        _csv("a,b,y", [f"{i},{'inf' if i % 4 == 0 else i},{i % 2}" for i in range(40)], "?label=y"),
        ["u.csv", "column 'b'", "10 rows", "remove or impute"],
    ),
    (
        "CSV with NaN in two columns",
        _csv("a,b,c", [f"{'nan' if i % 3 == 0 else i},{'nan' if i % 5 == 0 else 2 * i},{i % 3}" for i in range(40)]),
        ["u.csv", "column 'a', 'b'"],
    ),
    ("CSV without the label column", _csv("a,b", [f"{i},{i % 2}" for i in range(40)], "?label=zz"), ["u.csv", "'zz'"]),
    ("CSV that does not exist", lambda t, r: _csv_cfg(t, f"table:{t / 'none.csv'}"), ["none.csv", "does not exist"]),
    ("CSV of constant columns", _csv("a,b", ["1,2"] * 40), ["data.drop_constant", "constant"]),
    # -- run directories
    ("run without config.yaml", _broken_run(lambda r: (r / "config.yaml").unlink()), ["no config.yaml"]),
    (
        "run with garbage config.yaml",
        _broken_run(lambda r: (r / "config.yaml").write_text("model: [\n")),
        ["config.yaml", "invalid YAML"],
    ),
    (
        "config.yaml edited after training",
        _broken_run(_wider_model),
        ["model.safetensors does not fit", "config.yaml", "edited"],
    ),
    (
        "resume without checkpoints",
        _broken_run(lambda r: shutil.rmtree(r / "checkpoints"), "resume"),
        ["last.pt", "no checkpoint"],
    ),
    (
        "resume a truncated last.pt",
        _broken_run(lambda r: (r / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04" + bytes(496)), "resume"),
        ["last.pt", "unreadable"],
    ),
    (
        "resume with garbage config.yaml",
        _broken_run(lambda r: (r / "config.yaml").write_text("::\n- ["), "resume"),
        ["config.yaml", "invalid YAML"],
    ),
    (
        "resume with --preset",
        lambda t, r: ["train", "--resume", str(_copy(r, t)), "--preset", "demo"],
        ["--resume", "--preset"],
    ),
    (
        "visualize a truncated model",
        _broken_run(lambda r: (r / "model.safetensors").write_bytes(b"12345678"), "visualize"),
        ["model.safetensors is unreadable", "--resume"],
    ),
    ("visualize a missing run", lambda t, r: ["visualize", str(t / "nope")], ["nope does not exist"]),
    ("visualize --dataset nope", _on_run("--dataset", "nope", command="visualize"), ["unknown dataset 'nope'"]),
    ("visualize --ood nope", _on_run("--ood", "nope", command="visualize"), ["unknown dataset 'nope'"]),
    ("visualize --layers abc", _on_run("--layers", "abc", command="visualize"), ["--layers", "'abc'"]),
    ("visualize --layers 999", _on_run("--layers", "999", command="visualize"), ["layer index 999", "0..9"]),
    ("report a missing run", lambda t, r: ["report", str(t / "nope")], ["nope does not exist"]),
    # -- report (issue 25, item 9)
    (
        "report: config.yaml with invalid YAML",
        _broken_run(lambda r: (r / "config.yaml").write_text("model: [\n"), "report"),
        ["config.yaml", "invalid YAML", "line 2"],
    ),
    (
        "report: config.yaml with a python tag",
        _broken_run(
            lambda r: (r / "config.yaml").write_text("!!python/object/apply:os.system ['touch marker']\n"), "report"
        ),
        ["config.yaml", "python/object/apply"],
    ),
    (
        "report: config.yaml that is not UTF-8",
        _broken_run(lambda r: (r / "config.yaml").write_bytes(b"model: {name: realnvp}\n# caf\xe9\n"), "report"),
        ["config.yaml", "not UTF-8", "0xe9"],
    ),
    (
        "report --out a directory",
        lambda t, r: ["report", str(_copy(r, t)), "--out", str(t)],
        ["is a directory", "--out"],
    ),
    # -- embed --out (issue 25, item 4)
    (
        "embed --out an existing file",
        lambda t, r: [*_embed("-d", "fashionmnist-mini", "--limit", "4")(t, r), *_keep(t / "e.npz")],
        ["--out", "e.npz already exists", "--force"],
    ),
    (
        "embed --out a directory",
        lambda t, r: ["embed", "-d", "fashionmnist-mini", "--limit", "4", "--out", str(t)],
        ["is a directory", "--out"],
    ),
    # -- evaluate: results that would be meaningless (issue 25, item 7)
    (
        "evaluate --ood the in-distribution set",
        _on_run("--ood", "fashionmnist-mini"),
        ["--ood fashionmnist-mini is the run's in-distribution set", "data.ood_classes"],
    ),
    (
        "train --set data.ood=[the in-distribution set]",
        _set("data.ood=[fashionmnist-mini]"),
        ["data.ood fashionmnist-mini is the run's in-distribution set", "data.ood_classes"],
    ),
    ("evaluate --ood a set twice", _on_run("--ood", "mnist-mini,mnist-mini"), ["mnist-mini is given twice"]),
    ("evaluate --ood ''", _on_run("--ood", ""), ["--ood ''", "names no dataset"]),
    ("evaluate --scores ''", _on_run("--scores", ""), ["--scores ''", "names no detector"]),
    ("visualize --ood ''", _on_run("--ood", "", command="visualize"), ["--ood ''", "names no dataset"]),
    ("evaluate an OOD set of 1 image", _one_image_ood, ["OOD set npz:", "has 1 sample", "at least 2"]),
    ("evaluate --limit 1", _on_run("--limit", "1"), ["in-distribution test set has 1 sample", "--limit"]),
    (
        "CSV with a stray quote in a label",
        _csv("a,b,y", [f"{i},{i * 2},{STRAY if i == 5 else 'dog'}" for i in range(40)], "?label=y"),
        ["u.csv", "line 7 opens a quote", "lines 7-41"],
    ),
    ("npz of 0 images", _npz(x=np.zeros((0, 1, 28, 28), np.uint8)), ["u.npz", "holds no samples"]),
    (
        "tabular preset on a user CSV keeps the preset's OOD set",
        _preset_on_csv,
        ["data.ood: breast-cancer has 30 features", "has 3", "data.ood=[]"],
    ),
    (
        "--set model.mid_channels=100000",
        _set("model.mid_channels=100000"),
        ["model.mid_channels=100000", "more than this machine's memory"],
    ),
    # -- convert (issue 25, item 10)
    ("convert a truncated .pt", _truncated_pt, ["c.pt is truncated or corrupt", "copy the checkpoint again"]),
    (
        "convert flowood's own last.pt",
        lambda t, r: ["convert", str(r / "checkpoints" / "last.pt"), "--out", str(t / "cv"), "--dataset", "MNIST"],
        ["flowood training checkpoint", "needs no conversion", "`flowood evaluate`"],
    ),
    (
        "convert a model.safetensors",
        lambda t, r: ["convert", str(r / "model.safetensors"), "--out", str(t / "cv"), "--dataset", "MNIST"],
        ["weights file of a flowood run", "needs no conversion"],
    ),
    (
        "convert --out a file",
        lambda t, r: ["convert", str(t / "c.pt"), "--out", str(_file(t)), "--dataset", "MNIST"],
        ["--out", "f.txt exists and is not empty", "new directory"],
    ),
    # -- benchmark and reproduce: checked before anything is created (issue 25)
    *_output_rows(["benchmark", "fashionmnist"]),
    *_output_rows(["reproduce", "likelihood-failure"]),
    ("demo --out a file", lambda t, r: ["demo", "--out", str(_file(t)), "--device", "cpu"], ["f.txt", "--out"]),
    # -- output directories
    (
        "--out is a file",
        lambda t, r: ["train", "--preset", "demo", "--out", str(_file(t)), *TINY_TRAIN_ARGS],
        ["f.txt", "--out"],
    ),
    (
        "--out below a file",
        lambda t, r: ["train", "--preset", "demo", "--out", f"{_file(t)}/run", *TINY_TRAIN_ARGS],
        ["f.txt/run", "--out"],
    ),
    (
        "--out where nothing can be created",
        lambda t, r: ["train", "--preset", "demo", "--out", "/proc/flowood-run", *TINY_TRAIN_ARGS],
        ["/proc/flowood-run", "--out"],
    ),
    # -- benchmark protocols
    ("benchmark nope", lambda t, r: ["benchmark", "nope", "--out", str(t / "b")], ["'nope'", "fashionmnist"]),
    (
        "benchmark --budget huge",
        lambda t, r: ["benchmark", "fashionmnist", "--budget", "huge", "--out", str(t / "b")],
        ["'huge'", "quick, full"],
    ),
    ("benchmark a missing file", lambda t, r: ["benchmark", str(t / "none.yaml")], ["none.yaml", "not found"]),
    ("protocol with invalid YAML", _protocol("name: [\n"), ["p.yaml", "invalid YAML"]),
    ("protocol that is a scalar", _protocol("hello\n"), ["p.yaml", "expected a mapping"]),
    ("protocol without in_distribution", _protocol("name: p\nbudgets: {quick: {}}\n"), ["p.yaml", "in_distribution"]),
    ("protocol with budgets a list", _protocol("name: p\nbudgets: [quick]\n"), ["p.yaml", "budgets must map"]),
    ("protocol with an unknown detector", _protocol(_PROTOCOL % "nope"), ["p.yaml", "detectors", "'nope'"]),
    # issue 25 item 8: the whole protocol is checked before anything trains, errors naming the file and the key
    (
        "protocol with a detector: typo",
        _protocol(_PROTOCOL.replace("detectors:", "detector:") % "dose"),
        ["p.yaml", "detector is not a protocol key"],
    ),
    (
        "protocol with a budget key typo",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {limits: 5}}") % "dose"),
        ["p.yaml", "budgets.quick.limits"],
    ),
    (
        "protocol with ood: a list",
        _protocol(_PROTOCOL.replace("{near: [mnist-mini]}", "[mnist-mini]") % "dose"),
        ["p.yaml", "ood must be a mapping"],
    ),
    (
        "protocol with near: a string",
        _protocol(_PROTOCOL.replace("[mnist-mini]", "mnist-mini") % "dose"),
        ["p.yaml", "ood.near must be a list", "the string"],
    ),
    (
        "protocol with limit: abc",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {limit: abc}}") % "dose"),
        ["p.yaml", "budgets.quick.limit", "integer"],
    ),
    (
        "protocol with limit: -5",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {limit: -5}}") % "dose"),
        ["p.yaml", "budgets.quick.limit must be >= 1"],
    ),
    (
        "protocol with n_boot: abc",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {n_boot: abc}}") % "dose"),
        ["p.yaml", "budgets.quick.n_boot", "integer"],
    ),
    (
        "protocol with n_boot: 0",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {n_boot: 0}}") % "dose"),
        ["p.yaml", "budgets.quick.n_boot must be >= 1"],
    ),
    (
        "protocol with overrides: a string",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {overrides: train.lr=1}}") % "dose"),
        ["p.yaml", "budgets.quick.overrides must be a list"],
    ),
    (
        "protocol with a bad override",
        _protocol(_PROTOCOL.replace("{quick: {}}", "{quick: {overrides: [train.lrr=1]}}") % "dose"),
        ["p.yaml", "budgets.quick.overrides", "train.lrr"],
    ),
    (
        "protocol with OOD = in-distribution",
        _protocol(_PROTOCOL.replace("[mnist-mini]", "[fashionmnist-mini]") % "dose"),
        ["p.yaml", "ood.near", "in-distribution set"],
    ),
    (
        "protocol with a set twice",
        _protocol(_PROTOCOL.replace("[mnist-mini]", "[mnist-mini, mnist-mini]") % "dose"),
        ["p.yaml", "'mnist-mini' twice"],
    ),
    (
        "protocol with a set in two groups",
        _protocol(_PROTOCOL.replace("{near: [mnist-mini]}", "{near: [mnist-mini], far: [mnist-mini]}") % "dose"),
        ["p.yaml", "two groups"],
    ),
    (
        "protocol with only log_likelihood",
        _protocol(_PROTOCOL % "log_likelihood"),
        ["p.yaml", "detectors has nothing to compare"],
    ),
    (
        "protocol with a shift that is not one",
        _protocol(_PROTOCOL.replace("detectors:", "shift: [hflip:mnist-mini]\ndetectors:") % "dose"),
        ["p.yaml", "shift", "not a covariate shift"],
    ),
    (
        "protocol with a held-out class 12",
        _protocol(_PROTOCOL.replace("detectors:", "holdout: [1, 12]\ndetectors:") % "dose"),
        ["p.yaml", "holdout", "class 12"],
    ),
    (
        "protocol with holdout: a string",
        _protocol(_PROTOCOL.replace("detectors:", "holdout: '1'\ndetectors:") % "dose"),
        ["p.yaml", "holdout must be a list"],
    ),
    (
        "protocol with a reference that is no row",
        _protocol(_PROTOCOL.replace("detectors:", "reference: knn\ndetectors:") % "dose"),
        ["p.yaml", "reference", "'knn' is not a row"],
    ),
    (
        "protocol with a bad pipeline",
        _protocol(_PROTOCOL.replace("detectors:", "pipelines: {a: {extractor: nope}}\ndetectors:") % "knn"),
        ["p.yaml", "pipelines.a.extractor"],
    ),
    (
        "benchmark --max-minutes 0",
        lambda t, r: ["benchmark", "fashionmnist", "--max-minutes", "0", "--out", str(t / "b")],
        ["--max-minutes", "> 0"],
    ),
    (
        "protocol with a mutation rate of 2",
        _protocol(
            _PROTOCOL.replace("{quick: {}}", "{quick: {settings: {likelihood_ratio: {mutation_rate: 2}}}}")
            % "likelihood_ratio"
        ),
        ["p.yaml", "budgets.quick.settings.likelihood_ratio.mutation_rate must be in [0, 1]", "2"],
    ),
    # -- reproduce
    ("reproduce nope", lambda t, r: ["reproduce", "nope", "--out", str(t / "rp")], ["'nope'", "likelihood-failure"]),
    (
        "reproduce --budget huge",
        lambda t, r: ["reproduce", "all", "--budget", "huge", "--out", str(t / "rp")],
        ["--budget", "'huge'"],
    ),
    (
        "reproduce --set train.lrr=1",
        lambda t, r: ["reproduce", "all", "--set", "train.lrr=1", "--out", str(t / "rp")],
        ["train.lrr"],
    ),
    ("demo --set train.lrr=1", lambda t, r: ["demo", "--out", str(t / "d"), "--set", "train.lrr=1"], ["train.lrr"]),
    # -- convert
    ("convert without --dataset", _convert({"net": {}, "epoch": 1}), ["--data DATASET", "--dataset"]),
    ("convert a text file", _convert(b"hello", "--dataset", "FashionMNIST"), ["c.pt"]),
    ("convert a missing file", _convert(None, "--dataset", "FashionMNIST"), ["c.pt"]),
    ("convert a dict without net", _convert({"foo": 1}, "--dataset", "FashionMNIST"), ["c.pt"]),
    ("convert an empty net", _convert({"net": {}, "epoch": 1}, "--dataset", "FashionMNIST"), ["c.pt", "'net'"]),
    ("convert --flow Nope", _convert({"net": {}, "epoch": 1}, "--dataset", "FashionMNIST", "--flow", "Nope"), ["Nope"]),
    (
        "convert --dataset Nope",
        _convert({"net": {}, "epoch": 1}, "--dataset", "Nope"),
        ["--dataset Nope", "FashionMNIST", "--img_shape"],
    ),
    ("convert --img_shape abc", _convert({"net": {}, "epoch": 1}, "--img_shape", "abc"), ["--img_shape", "'abc'"]),
    # -- embed
    ("embed without --dataset", _embed(), ["--dataset NAME"]),
    ("embed --extractor nope", _embed("-d", "fashionmnist-mini", "-e", "nope"), ["unknown extractor 'nope'"]),
    ("embed --dataset nope", _embed("-d", "nope"), ["unknown dataset 'nope'"]),
    ("embed --batch-size 0", _embed("-d", "fashionmnist-mini", "--batch-size", "0"), ["batch_size", "got 0"]),
    ("embed --size 0", _embed("-d", "fashionmnist-mini", "--size", "0"), ["16 pixels", "got 0"]),
    ("embed --limit 0", _embed("-d", "fashionmnist-mini", "--limit", "0"), ["--limit", "got 0"]),
    ("embed --splits nope", _embed("-d", "fashionmnist-mini", "--splits", "nope"), ["unknown split 'nope'", "train"]),
    (
        "embed --weights missing.pth",
        lambda t, r: _embed("-d", "fashionmnist-mini", "--limit", "4", "--weights", str(t / "none.pth"))(t, r),
        ["none.pth", "not found"],
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
