"""The public Python API README documents: ``flowood.load_run`` for a trained run (imported on first use, so
``import flowood`` stays light) and the pytorch-ood adapter from ``flowood.ood`` (issue 25, ecosystem)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import flowood
from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.ood import PytorchOODDetector, detection_metrics
from tests.tiny import HANG_SECONDS, TINY_TRAIN_ARGS

SRC = Path(__file__).resolve().parents[1] / "src"


def test_load_run_and_the_adapter_from_the_package_root(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run_dir), *TINY_TRAIN_ARGS]) == 0
    run = flowood.load_run(run_dir)
    assert isinstance(run, flowood.Run) and run.config.data.dataset == "fashionmnist-mini" and run.steps == 2
    images = load_dataset("fashionmnist-mini", "test", limit=8).as_float()
    with torch.no_grad():
        bpd = run.flow.bits_per_dim(images)
    assert bpd.shape == (8,) and bool(torch.isfinite(bpd).all())
    detector = PytorchOODDetector(run.flow, "log_likelihood")
    detector.fit([images])
    assert detector.predict(images).shape == (8,)
    assert set(detection_metrics(-bpd.numpy(), -bpd.numpy() + 1)) >= {"auroc", "fpr95"}
    assert np.isfinite(detection_metrics(-bpd.numpy(), -bpd.numpy() + 1)["auroc"])


def test_import_flowood_does_not_load_the_experiments():
    code = "import json, sys, flowood; print(json.dumps(sorted(m for m in sys.modules if m.startswith('flowood.'))))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, timeout=HANG_SECONDS
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "flowood.flows" in loaded and not any(m.startswith("flowood.experiments") for m in loaded), loaded
