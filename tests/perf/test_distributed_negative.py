"""Negative training under torchrun (gloo, 2 CPU processes) equals one process: each rank pushes down
its own slice of the global OOD batch, not a copy of the same slice (issue 15, item 7)."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flowood.train.config import config_from_dict
from flowood.train.trainer import train
from tests.perf.test_distributed import REPO, _free_port, _torchrun
from tests.tiny import HANG_SECONDS
from tests.train.conftest import tiny_raw


@pytest.mark.timeout(HANG_SECONDS)
def test_torchrun_negative_training_matches_one_process(tmp_path):
    runner = _torchrun()
    if runner is None:
        pytest.skip("torchrun not found")
    # No batch norm: per-rank batch statistics would (legitimately) differ from one process's.
    raw = tiny_raw(
        model={"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4, "use_batch_norm": False},
        data={"limit": 64, "negative_dataset": "mnist-mini", "negative_threshold": -1e9},
        epochs=1,
        batch_size=32,
        sample_every=0,
    )
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [*runner, "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "flowood", "train"]
    cmd += ["--config", str(cfg_path), "--out", str(tmp_path / "ddp"), "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr[-3000:]

    train(config_from_dict(raw), tmp_path / "single", quiet=True)
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
