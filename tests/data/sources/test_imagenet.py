"""``flowood.data.sources.imagenet``: downsampled-ImageNet npz batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import fake_images, write_imagenet


@pytest.mark.parametrize("res", [32, 64])
def test_imagenet_npz_batches(tmp_path: Path, res: int) -> None:
    val = write_imagenet(tmp_path, res)
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
