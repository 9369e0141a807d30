"""Fixtures for the experiments tests: one intra-op thread and one tiny trained image run per module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowood.cli.app import main
from flowood.experiments.aux_models import AuxBudget, AuxSettings, EmbeddingFlowSettings
from flowood.features import FeatureSettings
from tests.tiny import TINY_TRAIN_ARGS

TINY = TINY_TRAIN_ARGS
"""Overrides that make the demo preset train in about a second (2 steps of a 4-channel RealNVP)."""


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The models here are tiny: one intra-op thread is as fast and avoids oversubscribing shared CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RealNVP run on 64 FashionMNIST images, trained once per test module (tests add auxiliary models
    and reports to it; none depends on another's)."""
    run = tmp_path_factory.mktemp("scores") / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY]) == 0
    return run


def tiny_aux(**kw) -> AuxSettings:
    """Auxiliary models of a few steps; the random CNN instead of efficientnet-lite0."""
    base = dict(
        background=AuxBudget(max_steps=2),
        ensemble=AuxBudget(max_steps=2),
        general=AuxBudget(max_steps=2),
        test_limit=32,
        features=FeatureSettings(extractor="random-cnn", size=32, train_limit=64, test_limit=32),
        embedding_flow=EmbeddingFlowSettings(
            max_steps=3,
            overrides=(
                "model.num_couplings=2",
                "model.hidden_dim=8",
                "model.num_layers=1",
                "train.batch_size=32",
                "train.warmup_steps=0",
            ),
        ),
    )
    base.update(kw)
    return AuxSettings(**base)  # type: ignore[arg-type]
