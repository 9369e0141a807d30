"""Test helpers for flowood.features."""

from __future__ import annotations

import numpy as np


class FakeImageDataset:
    """Same shape as flowood.data.ArrayDataset, for tests that must not depend on it."""

    def __init__(self, data: np.ndarray, labels: np.ndarray, name: str = "fake", split: str = "train") -> None:
        self.data = data
        self.labels = labels
        self.kind = "image" if data.ndim == 4 else "vector"
        self.shape = tuple(data.shape[1:])
        self.name = name
        self.split = split

    def __len__(self) -> int:
        return len(self.data)

    def as_float(self) -> np.ndarray:
        return self.data.astype(np.float32) / 255.0
