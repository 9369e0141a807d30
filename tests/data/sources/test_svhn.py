"""``flowood.data.sources.svhn``: SVHN cropped-digits ``.mat`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_svhn


def test_svhn_mat(tmp_path: Path) -> None:
    x, _ = write_svhn(tmp_path / "svhn" / "test_32x32.mat")
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


def test_each_split_reads_its_own_file(tmp_path: Path) -> None:
    sizes = {"train": 12, "test": 8, "extra": 4}
    for seed, (split, n) in enumerate(sizes.items()):
        write_svhn(tmp_path / "svhn" / f"{split}_32x32.mat", n=n, seed=seed)
    assert {s: len(load_dataset("svhn", s, root=tmp_path)) for s in sizes} == sizes
    assert len(load_dataset("svhn", "val", root=tmp_path)) == 1  # 10 % of train, carved
