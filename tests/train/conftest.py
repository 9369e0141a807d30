from __future__ import annotations

from typing import Any

import pytest

from flowood.train.config import config_from_dict


def tiny_raw(model: dict[str, Any] | None = None, data: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    """A run config small enough to train in a second or two on a CPU."""
    return {
        "model": model or {"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4},
        "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini"], "limit": 96, "test_limit": 64, **(data or {})},
        "train": {"epochs": 2, "batch_size": 32, "lr": 1e-3, "num_samples": 4, **train},
        "device": "cpu",
        "seed": 0,
    }


@pytest.fixture
def tiny_config():
    def make(**kwargs: Any):
        return config_from_dict(tiny_raw(**kwargs))

    return make
