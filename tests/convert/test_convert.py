"""``flowood convert`` and ``flowood.convert``: original checkpoints → run directories the other commands accept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from flowood.convert import OriginalArchitecture, from_flows_ood, load_original_checkpoint
from flowood.errors import CheckpointError
from flowood.experiments.runs import load_run

# The golden RealNVP in the original's flags (index.json: num_scales=2, mid_channels=8, num_blocks=2, 28×28).
REALNVP_FLAGS = ["--flow", "RealNVP", "--dataset", "FashionMNIST", "--num_blocks", "2", "--num_mid_channels", "8"]
GLOW_FLAGS = [
    *("--flow", "Glow", "--dataset", "FashionMNIST", "--num_scales", "2", "--num_coupling_layers_per_scale", "2"),
    *("--num_blocks", "2", "--num_mid_channels", "16", "--st_type", "highway"),
]


def _ll(flow, golden: Path, name: str) -> torch.Tensor:
    data = np.load(golden / f"{name}.npz")
    images = torch.from_numpy(data["images_uint8"]).float() / 255.0
    with torch.no_grad():
        return flow.log_likelihood_8bit(images, torch.from_numpy(data["noise"]))


@pytest.mark.slow  # end to end
def test_convert_then_evaluate_visualize_report(golden, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["convert", str(golden / "realnvp.pt"), "--out", str(run), *REALNVP_FLAGS]
    assert main([*args, "--data", "fashionmnist-mini", "--ood", "mnist-mini"]) == 0
    assert "85,736 parameters" in capsys.readouterr().out
    loaded = load_run(run)
    direct, _ = from_flows_ood(
        golden / "realnvp.pt", OriginalArchitecture(dataset="FashionMNIST", num_blocks=2, num_mid_channels=8)
    )
    assert torch.equal(_ll(loaded.flow, golden, "realnvp"), _ll(direct, golden, "realnvp"))
    assert main(["evaluate", str(run), "--limit", "32", "--device", "cpu", "--quiet"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["in_distribution"]["dataset"] == "fashionmnist-mini"
    assert report["ood"]["mnist-mini"]["bits_per_dim"]["n"] == 32
    assert np.isfinite(report["in_distribution"]["bits_per_dim"]["mean"])
    capsys.readouterr()
    assert main(["visualize", str(run), "--num-examples", "2", "--num-stats", "16", "--num-scores", "32",
                 "--num-samples", "4"]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out and any((run / "figures").iterdir())
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").stat().st_size > 1000


def test_glow_converts_and_keeps_its_function(golden, tmp_path):
    run = tmp_path / "glow"
    assert main(["convert", str(golden / "glow.pt"), "--out", str(run), *GLOW_FLAGS]) == 0
    flow = load_run(run).flow
    ref = np.load(golden / "glow.npz")
    with torch.no_grad():
        lp = flow.log_prob(torch.from_numpy(ref["logit_input"]))
    assert (lp - torch.from_numpy(ref["log_prob_flow"])).abs().max() < 1e-3
    assert flow.config["lu_decomposed"] is False


def test_with_and_without_the_dataparallel_prefix(golden, tmp_path):
    state, _ = load_original_checkpoint(golden / "realnvp.pt")
    assert all(k.startswith("module.") for k in state)
    bare = tmp_path / "bare.pt"
    torch.save({"net": {k.removeprefix("module."): v for k, v in state.items()}, "epoch": 7}, bare)
    arch = OriginalArchitecture(dataset="FashionMNIST", num_blocks=2, num_mid_channels=8)
    a, _ = from_flows_ood(golden / "realnvp.pt", arch)
    b, epoch_b = from_flows_ood(bare, arch)
    assert epoch_b == 7
    assert torch.equal(_ll(a, golden, "realnvp"), _ll(b, golden, "realnvp"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        # one channel too many: the first st-net conv does not fit
        (
            ["--num_mid_channels", "16"],
            "checkpoint tensor module.body.2.0.module1.st_net.in_conv.conv.bias has shape (8)",
        ),
        # too few blocks: the checkpoint's block 1 has no place
        (["--num_blocks", "1"], "checkpoint tensor module.body.2.0.module1.st_net.blocks.1."),
        # too many blocks: flowood's block 2 finds nothing
        (["--num_blocks", "3"], "expect a tensor for transform.layers.0.st_net.blocks.2."),
    ],
)
def test_flags_that_do_not_fit_name_the_first_tensor(golden, tmp_path, capsys, flags, message):
    base = ["--flow", "RealNVP", "--dataset", "FashionMNIST", "--num_blocks", "2", "--num_mid_channels", "8"]
    assert main(["convert", str(golden / "realnvp.pt"), "--out", str(tmp_path / "r"), *base, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_wrong_layer_count_and_wrong_family(golden, tmp_path, capsys):
    three_steps = [*GLOW_FLAGS, "--num_coupling_layers_per_scale", "3"]  # the last flag wins: 3 steps, not 2
    assert main(["convert", str(golden / "glow.pt"), "--out", str(tmp_path / "g"), *three_steps]) == 2
    err = capsys.readouterr().err
    assert "checkpoint has 12 layers with weights but the flags build 18" in err
    assert "check --num_scales / --num_coupling_layers_per_scale" in err
    one_scale = [*GLOW_FLAGS, "--num_scales", "1"]
    assert main(["convert", str(golden / "glow.pt"), "--out", str(tmp_path / "g"), *one_scale]) == 2
    assert "checkpoint tensor module.body.7.0.module1.bias belongs to layer 7 of 12" in capsys.readouterr().err
    assert main(["convert", str(golden / "glow.pt"), "--out", str(tmp_path / "g"), *REALNVP_FLAGS]) == 2
    assert "checkpoint layer module.body.3.0.module1 is an ActNorm where the flags put a coupling layer" in (
        capsys.readouterr().err
    )


def test_loading_never_runs_code(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    torch.save({"net": {"body.2.0.module1.x": Payload()}, "epoch": 0}, evil)
    with pytest.raises(CheckpointError, match="never code"):
        load_original_checkpoint(evil)
    assert main(["convert", str(evil), "--out", str(tmp_path / "r"), "--dataset", "FashionMNIST"]) == 2
    assert "never code" in capsys.readouterr().err
    assert not marker.exists()


def test_output_must_be_new(golden, tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("mine")
    assert main(["convert", str(golden / "realnvp.pt"), "--out", str(tmp_path / "r"), *REALNVP_FLAGS]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "r" / "x").read_text() == "mine"
