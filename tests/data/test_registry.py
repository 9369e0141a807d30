"""Registry, embedded bundle, glyphs, shared options, errors and the `flowood datasets` command."""

from __future__ import annotations

import json
import time

import pytest
import torch

from flowood.data import ArrayDataset, dataset_info, list_datasets, load_dataset
from flowood.errors import DatasetError


def test_bundle_fashionmnist_mini() -> None:
    # CPU time of this process (not wall-clock time, which other processes stretch): the bundle is read, not
    # decoded or rendered.
    t0 = time.process_time()
    tr = load_dataset("fashionmnist-mini", "train")
    te = load_dataset("fashionmnist-mini", "test")
    assert time.process_time() - t0 < 1.0
    assert isinstance(tr, ArrayDataset) and tr.data.shape == (10000, 1, 28, 28) and tr.data.dtype == torch.uint8
    assert te.data.shape == (2000, 1, 28, 28)
    assert tr.labels.bincount().tolist() == [1000] * 10 and te.labels.bincount().tolist() == [200] * 10
    assert tr.source.startswith("embedded bundle") and tr.data.float().mean() > 50  # real images, not blank
    assert len(load_dataset("fashionmnist-mini", "val")) == 1000


def test_bundle_mnist_mini() -> None:
    te = load_dataset("mnist-mini", "test")
    assert te.data.shape == (2000, 1, 28, 28) and te.labels.bincount().tolist() == [200] * 10
    a, b = load_dataset("mnist-mini", "half-train"), load_dataset("mnist-mini", "half-test")
    assert len(a) == len(b) == 1000 and a.labels.bincount().tolist() == [100] * 10
    both = torch.cat([a.data, b.data]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(te.data.flatten(1), dim=0).shape[0]


def test_glyphs_deterministic_and_varied() -> None:
    a = load_dataset("glyphs", "test")
    b = load_dataset("glyphs", "test", seed=5)
    assert a.data.shape == (2000, 1, 28, 28) and torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert a.labels.bincount().tolist() == [200] * 10 and "stand-in for notMNIST" in a.source
    assert torch.unique(a.data[a.labels == 0].flatten(1), dim=0).shape[0] > 150  # varied by font/size/offset
    assert not torch.equal(load_dataset("glyphs", "train", count=50).data, a.data[:50])
    assert load_dataset("glyphs", "test", count=30, system_fonts=False).data.shape == (30, 1, 28, 28)


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
    assert torch.equal(val0.data, val0b.data) and len(val0) + len(fit0) == 10000
    assert not torch.equal(val0.data, load_dataset("fashionmnist-mini", "val", seed=1).data)
    with pytest.raises(DatasetError, match="no samples with classes"):
        load_dataset("mnist-mini", "test", classes=[42])


def test_channels_and_resize() -> None:
    rgb = load_dataset("mnist-mini", "test", limit=20, channels=3)
    assert rgb.data.shape == (20, 3, 28, 28) and torch.equal(rgb.data[:, 0], rgb.data[:, 2])
    back = load_dataset("mnist-mini", "test", limit=20, channels=3, size=32)
    assert back.data.shape == (20, 3, 32, 32) and back[0][0].shape == (3, 32, 32)
    grey = ArrayDataset(rgb.data, rgb.labels, kind="image", name="x", split="t", source="s")
    from flowood.data.base import convert_channels

    assert torch.equal(convert_channels(grey.data, 1, "x"), load_dataset("mnist-mini", "test", limit=20).data)
    with pytest.raises(DatasetError, match="channels must be 1 or 3"):
        load_dataset("mnist-mini", "test", channels=2)


def test_errors_are_clear() -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'.*Available: mnist, fashionmnist"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match=r"unknown split 'nope'; available: train, test"):
        load_dataset("fashionmnist-mini", "nope")
    with pytest.raises(DatasetError, match="unknown option"):
        load_dataset("fashionmnist-mini", "test", in_class=1)


def test_list_datasets_and_info() -> None:
    infos = {i.name: i for i in list_datasets()}
    for name in (
        "mnist",
        "fashionmnist",
        "cifar10",
        "svhn",
        "celeba",
        "notmnist",
        "imagenet32",
        "imagenet64",
        "glyphs",
        "miniboone",
        "hepmass",
        "gas",
        "power",
        "embeddings",
        "fashionmnist-mini",
        "mnist-mini",
    ):
        assert name in infos, name
    assert infos["fashionmnist-mini"].available_now and infos["glyphs"].available_now
    assert not infos["cifar10"].available_now and infos["cifar10"].locations
    assert infos["celeba"].shape == (3, 32, 32) and infos["hepmass"].shape == (21,)
    assert dataset_info("svhn").splits == ("train", "test", "extra", "val", "fit")


def test_cli_datasets_json(tmp_path) -> None:
    from typer.testing import CliRunner

    from flowood.cli.app import app

    result = CliRunner().invoke(app, ["datasets", "--json", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["mnist-mini"]["available_now"] is True and rows["mnist-mini"]["shape"] == [1, 28, 28]
    assert rows["cifar10"]["available_now"] is False
    assert any(str(tmp_path) in w for w in rows["cifar10"]["where_looked"])
    for key in ("kind", "splits", "classes", "where_looked"):
        assert key in rows["svhn"]
    table = CliRunner().invoke(app, ["datasets"], terminal_width=200)
    assert table.exit_code == 0 and "fashionmnist-mini" in table.output
