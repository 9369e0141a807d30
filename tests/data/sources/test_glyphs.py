"""``flowood.data.sources.glyphs``: the rendered notMNIST stand-in."""

from __future__ import annotations

import torch

from flowood.data import load_dataset


def test_glyphs_deterministic_and_varied() -> None:
    a = load_dataset("glyphs", "test")
    b = load_dataset("glyphs", "test", seed=5)
    assert a.data.shape == (2000, 1, 28, 28) and torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert a.labels.bincount().tolist() == [200] * 10 and "stand-in for notMNIST" in a.source
    assert torch.unique(a.data[a.labels == 0].flatten(1), dim=0).shape[0] > 150  # varied by font/size/offset
    assert not torch.equal(load_dataset("glyphs", "train", count=50).data, a.data[:50])
    assert load_dataset("glyphs", "test", count=30, system_fonts=False).data.shape == (30, 1, 28, 28)
