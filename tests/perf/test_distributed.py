"""Data-parallel training through torchrun on the CPU (gloo, 2 processes) matches a 1-process run."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flowood.flows.preprocess import Dequantize
from flowood.train.config import config_from_dict
from flowood.train.data import TensorBatches
from flowood.train.trainer import train
from tests.tiny import HANG_SECONDS
from tests.train.conftest import tiny_raw

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun() -> list[str] | None:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else ([shutil.which("torchrun")] if shutil.which("torchrun") else None)


def test_shards_partition_each_global_batch():
    data = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    tb = TensorBatches(data, "image", torch.device("cpu"))
    full = list(tb.epoch(8, seed=3, epoch=1))
    parts = [list(tb.epoch(8, seed=3, epoch=1, shard=(r, 2))) for r in range(2)]
    for b, whole in enumerate(full):
        assert torch.equal(torch.cat([parts[0][b], parts[1][b]]), whole)
    skipped = list(tb.epoch(8, seed=3, epoch=1, skip=2, shard=(1, 2)))
    assert torch.equal(skipped[0], parts[1][2])


def test_dequantize_shard_noise_equals_global_noise():
    x = torch.full((6, 1, 2, 2), 0.5)
    whole = Dequantize()
    whole.generator = torch.Generator().manual_seed(0)
    ref, _ = whole(x)
    pieces = []
    for rank in range(2):
        d = Dequantize()
        d.generator = torch.Generator().manual_seed(0)
        d.shard = (rank, 2)
        pieces.append(d(x[:3])[0])
    assert torch.equal(torch.cat(pieces), ref)


# No batch norm: per-rank batch statistics would (legitimately) differ from one process's.
DDP_MODELS = {
    "realnvp": {"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4, "use_batch_norm": False},
    "tarflow": {"name": "tarflow", "patch_size": 7, "num_blocks": 2, "num_layers": 1, "width": 16, "heads": 2},
    "jet": {"name": "jet", "patch_size": 7, "num_couplings": 2, "num_layers": 1, "width": 16, "heads": 2},
}


@pytest.mark.timeout(HANG_SECONDS)
@pytest.mark.parametrize(("model", "memory"), [*((m, "store") for m in sorted(DDP_MODELS)), ("realnvp", "invert")])
def test_torchrun_two_processes_match_one_process(tmp_path, model, memory):
    """``memory=invert``: the two ranks backpropagate by inversion and still match one process that stores."""
    runner = _torchrun()
    if runner is None:
        pytest.skip("torchrun not found")
    raw = tiny_raw(model=DDP_MODELS[model], epochs=1, batch_size=32)
    raw["data"]["limit"] = 96
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump({**raw, "train": {**raw["train"], "memory": memory}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [
        *runner,
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "flowood",
        "train",
        "--config",
        str(cfg_path),
        "--out",
        str(tmp_path / "ddp"),
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done:") == 1  # only rank 0 reports

    single = train(config_from_dict(raw), tmp_path / "single", quiet=True)

    ddp_dir = tmp_path / "ddp"
    assert len(list((ddp_dir / "tensorboard").iterdir())) == 1  # one writer
    assert len(list((ddp_dir / "samples").iterdir())) == 1
    assert not [p for p in ddp_dir.rglob("*") if p.name.endswith(".tmp")]
    with (ddp_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and int(rows[0]["step"]) == single.steps == 3
    assert float(rows[0]["train_bpd"]) == pytest.approx(single.train_bpd, abs=1e-4)
    assert float(rows[0]["test_bpd"]) == pytest.approx(single.test_bpd, abs=1e-4)
    a = load_file(str(ddp_dir / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
