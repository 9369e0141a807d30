"""``flowood.data.sources.celeba``: aligned CelebA faces, crop + resize, the processed-split cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_celeba


def test_celeba_folder(tmp_path: Path, _isolated_cache: Path) -> None:
    write_celeba(tmp_path)
    ds = load_dataset("celeba", "train", root=tmp_path)
    assert ds.data.shape == (2, 3, 32, 32) and (ds.labels == -1).all()
    px = ds.data[1, :, 16, 16].tolist()
    assert abs(px[0] - 120) <= 4 and abs(px[1] - 135) <= 4 and abs(px[2] - 128) <= 4
    assert list((_isolated_cache / "celeba").glob("processed-train-*.npz"))
    again = load_dataset("celeba", "train", root=tmp_path)  # from the processed cache
    assert torch.equal(again.data, ds.data) and "cached" in again.source
    val = load_dataset("celeba", "val", root=tmp_path, size=16)
    assert val.data.shape == (2, 3, 16, 16) and val.conversions == []  # read at 16 px, not resized after


def test_celeba_corrupt_image(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=r"000003\.jpg"):
        load_dataset("celeba", "test", root=tmp_path)


def test_celeba_bad_partition_line(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 7\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt:2: expected"):
        load_dataset("celeba", "all", root=tmp_path)
