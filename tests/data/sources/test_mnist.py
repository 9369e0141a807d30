"""``flowood.data.sources.mnist``: MNIST / FashionMNIST idx files, their checks, the Debian install, downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowood.data import load_dataset
from flowood.data.sources import mnist
from flowood.errors import DatasetError
from tests.data.formats import fake_images, fake_labels, write_idx_split


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_idx_raw_layout(tmp_path: Path, name: str, folder: str) -> None:
    x_tr, y_tr = fake_images(40, (28, 28)), fake_labels(40)
    x_te, y_te = fake_images(20, (28, 28), seed=1), fake_labels(20)
    write_idx_split(tmp_path / folder / "raw", "train", x_tr, y_tr)
    write_idx_split(tmp_path / folder / "raw", "t10k", x_te, y_te)
    ds = load_dataset(name, "train", root=tmp_path)
    assert ds.data.dtype == torch.uint8 and ds.data.shape == (40, 1, 28, 28) and ds.shape == (1, 28, 28)
    assert torch.equal(ds.data[:, 0], torch.from_numpy(x_tr)) and ds.labels.tolist() == y_tr.tolist()
    assert ds.labels.dtype == torch.int64 and ds.kind == "image"
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x * 255, torch.from_numpy(x_tr[3]).float()[None]) and y == int(y_tr[3])
    te = load_dataset(name, "test", root=tmp_path)
    assert len(te) == 20 and str(tmp_path) in te.source
    assert torch.equal(te.data[:, 0], torch.from_numpy(x_te))  # test reads t10k, not train
    assert te.as_float().shape == (20, 1, 28, 28)


def test_idx_gz_only_and_test_split_alone(tmp_path: Path) -> None:
    x, y = fake_images(12, (28, 28)), fake_labels(12)
    write_idx_split(tmp_path / "MNIST" / "raw", "t10k", x, y, gz=True)
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert torch.equal(ds.data[:, 0], torch.from_numpy(x))


def test_idx_truncated_names_file(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx_split(raw, "t10k", fake_images(10, (28, 28)), fake_labels(10))
    f = raw / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load_dataset("fashionmnist", "test", root=tmp_path)
    f.write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 40)  # label magic in an image file
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load_dataset("fashionmnist", "test", root=tmp_path)


def test_idx_label_count_mismatch(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_idx_split(raw, "t10k", fake_images(10, (28, 28)), fake_labels(9))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", "test", root=tmp_path)


def test_corrupt_gz_names_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        (raw / f"t10k-{kind}-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetError, match=r"t10k-.*-ubyte\.gz"):
        load_dataset("mnist", "test", root=tmp_path)


def test_debian_fashion_mnist_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path) -> None:
    """A system install (the Debian package layout: four idx .gz files) is staged into the cache."""
    fake_debian = tmp_path / "usr-share-datasets-fashion-mnist"
    write_idx_split(fake_debian, "t10k", fake_images(15, (28, 28)), fake_labels(15), gz=True)
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", fake_debian)
    ds = load_dataset("fashionmnist", "test")
    assert len(ds) == 15
    assert (_isolated_cache / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_debian_fashion_mnist_test_split() -> None:
    ds = load_dataset("fashionmnist", "test", limit=50)
    assert len(ds) == 50 and ds.labels.bincount().tolist() == [5] * 10


def test_missing_lists_places_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", tmp_path / "nope")
    with pytest.raises(DatasetError) as err:
        load_dataset("fashionmnist", "train", root=tmp_path / "mine")
    msg = str(err.value)
    assert "'fashionmnist' not found" in msg and str(tmp_path / "mine" / "FashionMNIST" / "raw") in msg
    assert str(tmp_path / "nope") in msg and "apt-get install dataset-fashion-mnist" in msg
