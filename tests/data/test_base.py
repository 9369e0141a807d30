"""``flowood.data.base``: ``ArrayDataset`` (items, transforms, the conversion note), seeded subsets and splits,
channel conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.data import ArrayDataset
from flowood.data.base import balanced_subset, carve_indices, convert_channels, subset
from flowood.errors import DatasetError


def _images(n: int = 6) -> ArrayDataset:
    data = torch.arange(n * 4, dtype=torch.uint8).reshape(n, 1, 2, 2)
    return ArrayDataset(data, np.arange(n) % 3, kind="image", name="x", split="test", source="s")


def test_items_are_float_in_unit_range_and_int_labels() -> None:
    ds = _images()
    x, y = ds[1]
    assert x.dtype == torch.float32 and torch.allclose(x * 255, ds.data[1].float()) and y == 1
    assert ds.conversion_note() is None
    with pytest.raises(DatasetError, match=r"x: image data must be uint8 \(N, C, H, W\)"):
        ArrayDataset(np.zeros((2, 2, 2), np.uint8), None, kind="image", name="x", split="t", source="s")
    with pytest.raises(DatasetError, match="x: 6 samples but 2 labels"):
        ArrayDataset(ds.data, [0, 1], kind="image", name="x", split="t", source="s")


def test_transforms_apply_to_items_only_and_follow_subsets() -> None:
    ds = _images()
    ds.transform = lambda x: x * 2
    ds.target_transform = lambda y: -1 - y
    x, y = ds[2]
    assert torch.allclose(x, ds.data[2].float() / 255 * 2) and y == -3
    assert torch.equal(ds.as_float(), ds.data.float() / 255)  # whole-set access is untransformed
    part = subset(ds, np.array([2]))
    assert part[0][1] == -3 and torch.allclose(part[0][0], x)
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert batch_y.tolist() == [-1, -2, -3, -1, -2, -3] and batch_x.shape == (6, 1, 2, 2)


def test_conversion_note_names_set_split_and_every_conversion() -> None:
    ds = _images()
    ds.conversions += ["grey -> RGB", "resized 2x2 -> 4x4 (bilinear)"]
    assert ds.conversion_note() == "note: x (test): grey -> RGB; resized 2x2 -> 4x4 (bilinear)"
    assert subset(ds, np.array([0])).conversions == ds.conversions


def test_balanced_subset_is_seeded_and_balanced() -> None:
    labels = np.repeat(np.arange(4), [10, 10, 10, 2])
    idx = balanced_subset(labels, 10, seed=0)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 2, 2]  # equal shares, the small class whole
    assert np.array_equal(idx, balanced_subset(labels, 10, seed=0))
    assert not np.array_equal(idx, balanced_subset(labels, 10, seed=1))
    assert np.array_equal(balanced_subset(labels, 50, seed=0), np.arange(32))


def test_carve_indices_partitions() -> None:
    fit, val = carve_indices(20, (0.9, 0.1), seed=3)
    assert len(val) == 2 and sorted(np.concatenate([fit, val]).tolist()) == list(range(20))
    assert not np.array_equal(val, carve_indices(20, (0.9, 0.1), seed=4)[1])


def test_convert_channels_luma() -> None:
    rgb = torch.tensor([[[[255]], [[0]], [[0]]]], dtype=torch.uint8)
    assert convert_channels(rgb, 1, "x").item() == round(0.299 * 255)
    assert convert_channels(convert_channels(rgb, 1, "x"), 3, "x").shape == (1, 3, 1, 1)
