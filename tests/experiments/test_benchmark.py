"""``flowood benchmark``: shipped protocols, synthetic far-OOD sets, and a tiny protocol end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from flowood.data import dataset_info, load_dataset
from flowood.errors import ConfigError
from flowood.experiments.benchmark import available_protocols, load_protocol
from flowood.ood import detection_metrics
from flowood.ood.detectors import DETECTORS
from tests.tiny import TINY_OVERRIDES


@pytest.fixture(autouse=True)
def _one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWOOD_CACHE", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shipped_protocols_name_registered_detectors_and_at_least_ten():
    assert {"fashionmnist", "cifar10"} <= set(available_protocols())
    for name in ("fashionmnist", "cifar10"):
        for budget in ("quick", "full"):
            p = load_protocol(name, budget)
            assert len(p.detectors) >= 10 and set(p.detectors) <= set(DETECTORS)
            assert p.near and p.far
    quick = load_protocol("fashionmnist", "quick")
    assert quick.in_distribution == "fashionmnist-mini" and "mnist-mini" in quick.near
    assert {"uniform-noise", "gaussian-noise", "constant-images", "invert:fashionmnist-mini"} <= set(quick.far)
    with pytest.raises(ConfigError, match="no budget"):
        load_protocol("fashionmnist", "huge")
    with pytest.raises(ConfigError, match="unknown protocol"):
        load_protocol("imagenet-everything")


def test_synthetic_sets():
    u = load_dataset("uniform-noise", "test", limit=200, seed=0)
    assert u.data.shape == (200, 1, 28, 28) and u.data.dtype == torch.uint8
    assert 100 < float(u.data.float().mean()) < 155 and int(u.data.max()) == 255
    c = load_dataset("constant-images", "test", limit=20)
    flat = c.data.reshape(20, -1)
    assert (flat == flat[:, :1]).all() and len(set(flat[:, 0].tolist())) > 5
    g = load_dataset("gaussian-noise", "train", limit=10, channels=3, size=32)
    assert g.data.shape == (10, 3, 32, 32)
    base = load_dataset("fashionmnist-mini", "test", limit=30, seed=3)
    inv = load_dataset("invert:fashionmnist-mini", "test", limit=30, seed=3)
    assert torch.equal(inv.data, 255 - base.data)
    assert torch.equal(load_dataset("hflip:fashionmnist-mini", "test", limit=30, seed=3).data, base.data.flip(-1))
    assert torch.equal(load_dataset("vflip:fashionmnist-mini", "test", limit=30, seed=3).data, base.data.flip(-2))
    again = load_dataset("uniform-noise", "test", limit=200, seed=0)
    assert torch.equal(again.data, u.data)  # seeded: the same images every time
    assert dataset_info("invert:fashionmnist-mini").available_now


PROTOCOL = """
name: tiny
in_distribution: fashionmnist-mini
ood:
  near: [mnist-mini]
  far: [uniform-noise, invert:fashionmnist-mini, notmnist, cifar-1000]
detectors: [log_likelihood, input_complexity, compressed_size, typicality, dose]
budgets:
  quick:
    preset: demo
    overrides: [{overrides}]
    limit: 64
    n_boot: 20
    settings: {{dose: {{train_limit: 64}}, typicality: {{m: 4, batches: 10}}}}
"""


@pytest.mark.slow  # end to end
def test_tiny_protocol_end_to_end(tmp_path: Path, capsys):
    proto = tmp_path / "tiny.yaml"
    proto.write_text(PROTOCOL.format(overrides=", ".join(TINY_OVERRIDES)))
    out = tmp_path / "bench"
    args = ["benchmark", str(proto), "--budget", "quick", "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "AUROC, near OOD" in printed and "Missing datasets" in printed
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["ood"] == {
        "holdout": [],
        "near": ["mnist-mini"],
        "far": ["uniform-noise", "invert:fashionmnist-mini"],
        "shift": [],
    }
    missing = {m["name"]: m for m in board["missing"]}
    assert set(missing) == {"notmnist", "cifar-1000"}  # reported, never skipped silently
    assert missing["notmnist"]["how_to_get"] and missing["cifar-1000"]["why"] == "not a dataset flowood knows"
    assert set(board["detectors"]) == {"log_likelihood", "input_complexity", "compressed_size", "typicality", "dose"}
    assert all(d["seconds"] is not None for d in board["detectors"].values())
    # The leaderboard's numbers are the metrics of the stored per-sample scores, and the gains are paired
    # differences to log_likelihood on the same samples.
    by = {(r["detector"], r["ood"]): r for r in board["results"]}
    with np.load(out / "run" / "ood_scores.npz") as npz:
        for (det, key), row in by.items():
            m = detection_metrics(npz[f"{det}/fashionmnist-mini"], npz[f"{det}/{key}"])
            for name in ("auroc", "aupr_in", "aupr_out", "fpr95"):  # each column from its own metric
                assert row[name] == pytest.approx(m[name]), (det, key, name)
            if det in ("log_likelihood", "typicality"):
                assert "gain" not in row  # the baseline itself; per-batch detectors are not paired
            else:
                g = row["gain"]["auroc"]
                assert g["delta"] == pytest.approx(row["auroc"] - by[("log_likelihood", key)]["auroc"])
                assert g["low"] <= g["delta"] <= g["high"]
                assert set(row["gain"]) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    # DoSE is fitted on the training statistics: uniform noise is far from them.
    assert by[("dose", "uniform-noise")]["auroc"] > 0.95
    html = (out / "report.html").read_text()
    assert 'id="benchmark"' in html and "Missing: <b>notmnist</b>" in html
    md = (out / "leaderboard.md").read_text()
    assert "| `dose` |" in md and "## Time" in md and "## Provenance" in md
    # A second run reuses the trained flow.
    stamp = (out / "run" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "run" / "model.safetensors").stat().st_mtime_ns == stamp


def test_cli_list_and_errors(tmp_path: Path, capsys):
    assert main(["benchmark", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fashionmnist" in out and all(name in out for name in DETECTORS)
    assert main(["benchmark"]) == 2
    assert "name a protocol" in capsys.readouterr().err
    # CIFAR-10 is not on this machine: the in-distribution set missing is an error that says how to get it.
    if not dataset_info("cifar10").available_now:
        assert main(["benchmark", "cifar10", "--out", str(tmp_path / "c"), "--device", "cpu", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "cifar10" in err and "not on this machine" in err


def test_auxiliary_training_cpu_labels_rows_with_and_without_a_pipeline():
    """A protocol without pipelines (``fashionmnist``) has plain rows: its embedding flow is ``embedding_flow``, not
    ``embedding_flow@`` (the leaderboard printed a dangling ``@``)."""
    from types import SimpleNamespace

    from flowood.experiments.leaderboard import auxiliary_training_cpu

    def evaluation(row: str, facts: dict) -> SimpleNamespace:
        return SimpleNamespace(report=SimpleNamespace(scores={row: SimpleNamespace(facts=facts)}))

    learned = {"learned": {"training": {"cpu_seconds": 5.0}}}
    plain = [evaluation("embedding_likelihood", {"train_cpu_seconds": 14.0}), evaluation("knn", learned)]
    assert auxiliary_training_cpu(plain) == {"embedding_flow": 14.0, "learned": 5.0}
    piped = [evaluation("embedding_likelihood@pretrained", {"train_cpu_seconds": None}), evaluation("knn@l", learned)]
    assert auxiliary_training_cpu(piped) == {"embedding_flow@pretrained": None, "learned@l": 5.0}


def test_run_benchmark_holds_its_output_lock(tmp_path):
    """``run_benchmark`` (the API, not only the CLI) takes OUT's lock before it writes: a second writer is refused
    with one line naming the holder, and nothing is trained."""
    from flowood.errors import RunInUseError
    from flowood.experiments.benchmark import run_benchmark
    from flowood.runs import RunDir

    out = tmp_path / "out"
    with RunDir(out).hold_output("benchmark"), pytest.raises(RunInUseError):
        run_benchmark("fashionmnist", out, device="cpu", quiet=True)
    assert not (out / "run").exists()
