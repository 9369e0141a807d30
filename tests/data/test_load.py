"""``flowood.data.load``: ``load_dataset``'s shared options (carved splits, classes, limit, channels, size),
its checks, the conversions it returns without printing, and ``transform`` / ``target_transform``."""

from __future__ import annotations

import pytest
import torch

from flowood.data import ArrayDataset, load_dataset
from flowood.data.base import convert_channels
from flowood.errors import DatasetError


def test_limit_classes_seed_and_carved_splits() -> None:
    sub = load_dataset("fashionmnist-mini", "test", limit=53, seed=1)
    counts = sub.labels.bincount()
    assert len(sub) == 53 and int(counts.max()) - int(counts.min()) <= 1 and int(counts.sum()) == 53
    again = load_dataset("fashionmnist-mini", "test", limit=53, seed=1)
    other = load_dataset("fashionmnist-mini", "test", limit=53, seed=2)
    assert torch.equal(sub.data, again.data) and not torch.equal(sub.data, other.data)
    only = load_dataset("fashionmnist-mini", "test", classes=[3, 7], limit=10)
    assert set(only.labels.tolist()) == {3, 7} and only.labels.bincount()[3:8:4].tolist() == [5, 5]
    val0, val0b = load_dataset("fashionmnist-mini", "val", seed=0), load_dataset("fashionmnist-mini", "val", seed=0)
    fit0 = load_dataset("fashionmnist-mini", "fit", seed=0)
    assert torch.equal(val0.data, val0b.data) and (len(val0), len(fit0)) == (1000, 9000)  # VAL_FRACTION of train
    assert not torch.equal(val0.data, load_dataset("fashionmnist-mini", "val", seed=1).data)
    assert (val0.split, fit0.split) == ("val", "fit")
    full = load_dataset("fashionmnist-mini", "train").data.flatten(1)
    both = torch.cat([val0.data, fit0.data]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(full, dim=0).shape[0]  # a partition of train
    with pytest.raises(DatasetError, match="no samples with classes"):
        load_dataset("mnist-mini", "test", classes=[42])


def test_channels_and_resize() -> None:
    rgb = load_dataset("mnist-mini", "test", limit=20, channels=3)
    assert rgb.data.shape == (20, 3, 28, 28) and torch.equal(rgb.data[:, 0], rgb.data[:, 2])
    back = load_dataset("mnist-mini", "test", limit=20, channels=3, size=32)
    assert back.data.shape == (20, 3, 32, 32) and back[0][0].shape == (3, 32, 32)
    grey = ArrayDataset(rgb.data, rgb.labels, kind="image", name="x", split="t", source="s")
    assert torch.equal(convert_channels(grey.data, 1, "x"), load_dataset("mnist-mini", "test", limit=20).data)
    with pytest.raises(DatasetError, match="channels must be 1 or 3"):
        load_dataset("mnist-mini", "test", channels=2)
    with pytest.raises(DatasetError, match="limit must be >= 0"):
        load_dataset("mnist-mini", "test", limit=-1)


def test_conversions_are_returned_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """Loading says what it converted in ``conversions`` and prints nothing; the commands print the note
    (``flowood.train.data.load_split``, ``flowood.features.embed``)."""
    ds = load_dataset("mnist-mini", "test", channels=3, size=32, limit=8)
    assert ds.conversions == ["grey -> RGB", "resized 28x28 -> 32x32 (bilinear)"]
    assert ds.conversion_note() == "note: mnist-mini (test): grey -> RGB; resized 28x28 -> 32x32 (bilinear)"
    same = load_dataset("mnist-mini", "test", channels=1, size=28, limit=8)
    assert same.conversions == [] and same.conversion_note() is None
    flipped = load_dataset("hflip:mnist-mini", "test", channels=3, limit=8)
    assert flipped.conversion_note() == "note: hflip:mnist-mini (test): grey -> RGB"  # carried through derivation
    assert capsys.readouterr() == ("", "")


def test_split_and_option_errors_name_the_dataset() -> None:
    with pytest.raises(DatasetError, match=r"fashionmnist-mini: unknown split 'nope'; available: train, test"):
        load_dataset("fashionmnist-mini", "nope")
    with pytest.raises(DatasetError, match=r"fashionmnist-mini: unknown option\(s\) \['in_class'\]; accepted: none"):
        load_dataset("fashionmnist-mini", "test", in_class=1)


def test_transform_and_target_transform_as_torchvision() -> None:
    """pytorch-ood's ``ToUnknown()`` is a target transform: every label becomes -1 for an OOD set."""
    ood = load_dataset("mnist-mini", "test", limit=6, transform=lambda x: x.flatten(), target_transform=lambda y: -1)
    x, y = ood[0]
    assert x.shape == (784,) and y == -1
    assert torch.equal(x, ood.data[0].flatten().float() / 255)
    plain = load_dataset("mnist-mini", "test", limit=6)
    assert plain.transform is None and plain.target_transform is None and plain[0][1] == int(plain.labels[0])
    loader = torch.utils.data.DataLoader(ood, batch_size=6)
    xs, ys = next(iter(loader))
    assert xs.shape == (6, 784) and ys.tolist() == [-1] * 6
