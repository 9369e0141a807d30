"""Fixtures for feature-extraction tests (the private caches are the root conftest's)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def grey_images() -> np.ndarray:
    """Six 28×28 grey uint8 images (N, 1, H, W) with some structure."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 1, 28, 28), dtype=np.uint8)
    images[:, :, 8:20, 8:20] = 255
    return images
