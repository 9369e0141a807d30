"""Fixtures for feature-extraction tests: a private feature cache and an empty torch hub per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FLOWOOD_CACHE and TORCH_HOME at empty per-test directories."""
    monkeypatch.setenv("FLOWOOD_CACHE", str(tmp_path / "flowood-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path


@pytest.fixture
def grey_images() -> np.ndarray:
    """Six 28×28 grey uint8 images (N, 1, H, W) with some structure."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 1, 28, 28), dtype=np.uint8)
    images[:, :, 8:20, 8:20] = 255
    return images
