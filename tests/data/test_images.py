"""Image loaders on small files written in the published on-disk formats."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from flowood.data import load_dataset, locate
from flowood.errors import DatasetError

from .conftest import fake_images, fake_labels, write_idx_split

# ---------------------------------------------------------------------------------------------------- MNIST family


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
    monkeypatch.setattr(locate, "DEBIAN_FASHION_MNIST", fake_debian)
    monkeypatch.setattr("flowood.data.images.DEBIAN_FASHION_MNIST", fake_debian)
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
    monkeypatch.setattr("flowood.data.images.DEBIAN_FASHION_MNIST", tmp_path / "nope")
    with pytest.raises(DatasetError) as err:
        load_dataset("fashionmnist", "train", root=tmp_path / "mine")
    msg = str(err.value)
    assert "'fashionmnist' not found" in msg and str(tmp_path / "mine" / "FashionMNIST" / "raw") in msg
    assert str(tmp_path / "nope") in msg and "apt-get install dataset-fashion-mnist" in msg


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("network unreachable")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_download_offline_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import torchvision.datasets.utils as tvu

    for mod in ("torchvision.datasets.mnist", "torchvision.datasets.cifar", "torchvision.datasets.svhn"):
        for fn in ("download_and_extract_archive", "download_url"):
            if hasattr(__import__(mod, fromlist=["x"]), fn):
                monkeypatch.setattr(f"{mod}.{fn}", _offline)
    monkeypatch.setattr(tvu, "download_url", _offline)
    with pytest.raises(DatasetError, match=rf"(?s)'{name}' not found.*download failed"):
        load_dataset(name, "test", root=tmp_path, download=True)


# ------------------------------------------------------------------------------------------------------ CIFAR-10


def _write_cifar(folder: Path, n: int = 6) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    written = {}
    for i, fname in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data = fake_images(n, (3 * 32 * 32,), seed=i)
        labels = [int(v) for v in fake_labels(n)]
        with open(folder / fname, "wb") as f:
            pickle.dump({"batch_label": fname, "data": data, "labels": labels, "filenames": []}, f)
        written[fname] = (data, labels)
    return written


def test_cifar10_batches(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    tr = load_dataset("cifar10", "train", root=tmp_path)
    assert tr.data.shape == (30, 3, 32, 32)
    assert torch.equal(tr.data[0], torch.from_numpy(written["data_batch_1"][0][0].reshape(3, 32, 32)))
    te = load_dataset("cifar10", "test", root=tmp_path, channels=1)
    assert te.data.shape == (6, 1, 32, 32) and te.labels.tolist() == written["test_batch"][1]


def test_cifar10_corrupt_and_wrong_shape(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, f)
    with pytest.raises(DatasetError, match=r"test_batch.*3072"):
        load_dataset("cifar10", "test", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------- SVHN


def test_svhn_mat(tmp_path: Path) -> None:
    x = fake_images(32, (32, 32, 3)).transpose(1, 2, 3, 0)  # (32, 32, 3, N) as published
    y = (np.arange(32) % 10 + 1).reshape(-1, 1)  # 1..10, 10 = digit 0
    (tmp_path / "svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": x, "y": y})
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert ds.data.shape == (32, 3, 32, 32)
    assert torch.equal(ds.data[5], torch.from_numpy(x[:, :, :, 5].transpose(2, 0, 1).copy()))
    assert ds.labels[9].item() == 0 and ds.labels[0].item() == 1 and ds.labels.max() == 9


def test_svhn_wrong_shape_and_corrupt(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"test_32x32\.mat.*\(32, 32, 3, N\)"):
        load_dataset("svhn", "test", root=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
    with pytest.raises(DatasetError, match=r"test_32x32\.mat"):
        load_dataset("svhn", "test", root=tmp_path)


# -------------------------------------------------------------------------------------------------------- CelebA


def _write_celeba(root: Path, n: int = 6) -> None:
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        arr = np.zeros((218, 178, 3), np.uint8)
        arr[35:183, 15:163] = (i * 40, 255 - i * 40, 128)  # the central 148x148 crop is flat colour
        Image.fromarray(arr).save(folder / f"{i + 1:06d}.jpg", quality=95)
        lines.append(f"{i + 1:06d}.jpg {i % 3}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def test_celeba_folder(tmp_path: Path, _isolated_cache: Path) -> None:
    _write_celeba(tmp_path)
    ds = load_dataset("celeba", "train", root=tmp_path)
    assert ds.data.shape == (2, 3, 32, 32) and (ds.labels == -1).all()
    px = ds.data[1, :, 16, 16].tolist()
    assert abs(px[0] - 120) <= 4 and abs(px[1] - 135) <= 4 and abs(px[2] - 128) <= 4
    assert list((_isolated_cache / "celeba").glob("processed-train-*.npz"))
    again = load_dataset("celeba", "train", root=tmp_path)  # from the processed cache
    assert torch.equal(again.data, ds.data) and "cached" in again.source
    assert load_dataset("celeba", "val", root=tmp_path, size=16).data.shape == (2, 3, 16, 16)


def test_celeba_corrupt_image(tmp_path: Path) -> None:
    _write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=r"000003\.jpg"):
        load_dataset("celeba", "test", root=tmp_path)


# ------------------------------------------------------------------------------------------------------ notMNIST


def _write_notmnist(root: Path, per_letter: int = 3) -> None:
    for li, letter in enumerate("ABCDEFGHIJ"):
        d = root / "notMNIST_small" / letter
        d.mkdir(parents=True)
        for k in range(per_letter):
            Image.fromarray(np.full((28, 28), li * 20 + k, np.uint8)).save(d / f"font{k}.png")


def test_notmnist_folders(tmp_path: Path) -> None:
    _write_notmnist(tmp_path)
    ds = load_dataset("notmnist", "test", root=tmp_path)
    assert ds.data.shape == (30, 1, 28, 28) and ds.labels.bincount().tolist() == [3] * 10
    assert ds.data[ds.labels == 4][1, 0, 0, 0].item() == 81


def test_notmnist_corrupt_png(tmp_path: Path) -> None:
    _write_notmnist(tmp_path)
    bad = tmp_path / "notMNIST_small" / "C" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match=r"broken\.png"):
        assert len(load_dataset("notmnist", "test", root=tmp_path)) == 30
    with pytest.raises(DatasetError, match=r"broken\.png"):
        load_dataset("notmnist", "test", root=tmp_path, strict=True)


# ----------------------------------------------------------------------------------------------------- ImageNet


@pytest.mark.parametrize("res", [32, 64])
def test_imagenet_npz_batches(tmp_path: Path, res: int) -> None:
    tr_dir = tmp_path / f"imagenet{res}" / f"Imagenet{res}_train_npz"
    va_dir = tmp_path / f"imagenet{res}" / f"Imagenet{res}_val_npz"
    tr_dir.mkdir(parents=True)
    va_dir.mkdir(parents=True)
    for b in range(1, 11):
        np.savez(
            tr_dir / f"train_data_batch_{b}.npz",
            data=fake_images(3, (3 * res * res,), seed=b),
            labels=[b, 1000, 1],
            mean=np.zeros(3 * res * res),
        )
    val = fake_images(4, (3 * res * res,), seed=99)
    np.savez(va_dir / "val_data.npz", data=val, labels=[1, 2, 3, 4])
    te = load_dataset(f"imagenet{res}", "test", root=tmp_path)
    assert te.data.shape == (4, 3, res, res) and te.labels.tolist() == [0, 1, 2, 3]
    assert torch.equal(te.data[2, 1].flatten(), torch.from_numpy(val[2, res * res : 2 * res * res]))  # planar RGB
    tr = load_dataset(f"imagenet{res}", "train", root=tmp_path)
    assert len(tr) == 30 and tr.labels[:3].tolist() == [0, 999, 0]
    assert len(load_dataset(f"imagenet{res}", "train", root=tmp_path, batches=[2, 5])) == 6


def test_imagenet_missing_batch_and_bad_shape(tmp_path: Path) -> None:
    d = tmp_path / "imagenet32"
    d.mkdir()
    np.savez(d / "train_data_batch_1.npz", data=fake_images(2, (3072,)), labels=[1, 2])
    with pytest.raises(DatasetError, match=r"train_data_batch_2\.npz"):
        load_dataset("imagenet32", "train", root=tmp_path)
    np.savez(d / "val_data.npz", data=fake_images(2, (3000,)), labels=[1, 2])
    with pytest.raises(DatasetError, match=r"val_data\.npz.*3072"):
        load_dataset("imagenet32", "test", root=tmp_path)
    (d / "val_data.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match=r"val_data\.npz"):
        load_dataset("imagenet32", "test", root=tmp_path)
