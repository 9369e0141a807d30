"""``flowood.data.sources.synthetic``: the generated far-OOD sets."""

from __future__ import annotations

import pytest
import torch

from flowood.data import load_dataset


@pytest.mark.parametrize("name", ["uniform-noise", "gaussian-noise", "constant-images"])
def test_generated_sets_are_fixed_by_name_and_split(name: str) -> None:
    te = load_dataset(name, "test")
    assert te.data.shape == (2000, 1, 28, 28) and len(load_dataset(name, "train")) == 5000
    assert torch.equal(load_dataset(name, "test", seed=9).data, te.data)  # not the load seed: the name
    assert not torch.equal(load_dataset(name, "train").data[:2000], te.data)
    big = load_dataset(name, "test", size=32, limit=5)
    assert big.data.shape == (5, 1, 32, 32) and big.conversions == []  # generated at 32 px, not resized


def test_generated_statistics() -> None:
    u = load_dataset("uniform-noise", "test").data.float()
    assert abs(float(u.mean()) - 127.5) < 2 and int(u.min()) == 0 and int(u.max()) == 255
    g = load_dataset("gaussian-noise", "test").data.float()
    assert abs(float(g.mean()) - 128) < 2 and abs(float(g.std()) - 40) < 2
    c = load_dataset("constant-images", "test").data
    assert (c == c[:, :, :1, :1]).all() and torch.unique(c[:, 0, 0, 0]).numel() > 200
