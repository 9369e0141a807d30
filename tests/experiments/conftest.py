"""Fixtures for the experiments tests: one intra-op thread and one tiny trained image run per module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowood.cli.app import main
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
