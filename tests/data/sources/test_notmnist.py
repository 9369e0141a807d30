"""``flowood.data.sources.notmnist``: notMNIST letter folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_notmnist


def test_notmnist_folders(tmp_path: Path) -> None:
    write_notmnist(tmp_path)
    ds = load_dataset("notmnist", "test", root=tmp_path)
    assert ds.data.shape == (30, 1, 28, 28) and ds.labels.bincount().tolist() == [3] * 10
    assert ds.data[ds.labels == 4][1, 0, 0, 0].item() == 81


def test_notmnist_corrupt_png(tmp_path: Path) -> None:
    write_notmnist(tmp_path)
    bad = tmp_path / "notMNIST_small" / "C" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match=r"broken\.png"):
        assert len(load_dataset("notmnist", "test", root=tmp_path)) == 30
    with pytest.raises(DatasetError, match=r"broken\.png"):
        load_dataset("notmnist", "test", root=tmp_path, strict=True)


def test_notmnist_train_is_the_large_folder(tmp_path: Path) -> None:
    write_notmnist(tmp_path, per_letter=1)
    write_notmnist(tmp_path, per_letter=2, folder="notMNIST_large")
    assert len(load_dataset("notmnist", "train", root=tmp_path)) == 20
    assert len(load_dataset("notmnist", "test", root=tmp_path)) == 10
