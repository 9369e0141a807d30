"""``flowood.data.user``: user data by name — image folders, image npz, CSV/NPZ tables, plain paths, the
seeded 80/10/10 partition of a single source, listings."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowood.data import available_names, dataset_info, list_datasets, load_dataset, pick_ood_split
from flowood.data.base import carve_indices
from flowood.data.user import USER_FRACTIONS
from flowood.errors import DatasetError
from tests.data.formats import fake_images


def test_image_folder(tmp_path: Path) -> None:
    for ci, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for k in range(5):
            Image.fromarray(np.full((10, 10, 3), ci * 100 + k, np.uint8)).save(tmp_path / cls / f"{k}.png")
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert ds.data.shape == (10, 3, 10, 10) and ds.labels.tolist() == [0] * 5 + [1] * 5
    assert ds.class_names == ["cat", "dog"]
    grey = load_dataset(f"folder:{tmp_path}", "all", channels=1, size=8)
    assert grey.data.shape == (10, 1, 8, 8)
    assert load_dataset(str(tmp_path), "all").data.shape == (10, 3, 10, 10)  # plain path -> folder
    parts = [load_dataset(f"folder:{tmp_path}", s, seed=3) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [8, 1, 1]
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd\.png"):
        load_dataset(f"folder:{tmp_path}", "all")


def test_images_npz_nhwc_nchw_and_splits(tmp_path: Path) -> None:
    x = fake_images(8, (16, 16, 3))
    np.savez(tmp_path / "nhwc.npz", images=x, labels=np.arange(8) % 2)
    ds = load_dataset(f"npz:{tmp_path / 'nhwc.npz'}", "all")
    assert ds.data.shape == (8, 3, 16, 16) and torch.equal(ds.data[1], torch.from_numpy(x[1].transpose(2, 0, 1)))
    np.savez(tmp_path / "nchw.npz", x=x.transpose(0, 3, 1, 2))
    ds2 = load_dataset(f"npz:{tmp_path / 'nchw.npz'}", "all")
    assert torch.equal(ds2.data, ds.data) and (ds2.labels == -1).all()
    np.savez(tmp_path / "split.npz", x_train=x[:6], y_train=np.zeros(6), x_test=x[6:], y_test=np.ones(2))
    assert len(load_dataset(f"npz:{tmp_path / 'split.npz'}", "test")) == 2
    np.savez(tmp_path / "bad.npz", images=x.astype(np.float32) * 2 + 1)  # floats beyond [0, 255]
    with pytest.raises(DatasetError, match=r"bad\.npz: float32 pixel values span .*\[0, 1\]"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}", "all")


def test_csv_table_with_label(tmp_path: Path) -> None:
    rows = "\n".join(f"{i * 0.5},{i % 3},{-i}" for i in range(20))
    (tmp_path / "t.csv").write_text("a,cls,b\n" + rows + "\n")
    ds = load_dataset(f"table:{tmp_path / 't.csv'}?label=cls", "all")
    assert ds.data.shape == (20, 2) and ds.data.dtype == torch.float32 and ds.labels[:4].tolist() == [0, 1, 2, 0]
    assert torch.allclose(ds.data[3], torch.tensor([1.5, -3.0]))
    kw = load_dataset(f"table:{tmp_path / 't.csv'}", "all", label="cls", classes=[2])
    assert (kw.labels == 2).all() and len(kw) == 6
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DatasetError, match=r"bad\.csv"):
        load_dataset(f"table:{tmp_path / 'bad.csv'}", "all")
    with pytest.raises(DatasetError, match="no label column 'nope'"):
        load_dataset(f"table:{tmp_path / 't.csv'}?label=nope", "all")
    np.savez(tmp_path / "t.npz", x=np.ones((5, 3)), y=np.arange(5))
    assert load_dataset(f"table:{tmp_path / 't.npz'}", "all").shape == (3,)


def _numbered_table(path: Path, n: int) -> Path:
    """A CSV whose first column is the row number, so every sample says where it came from."""
    path.write_text("row,cls\n" + "".join(f"{i},{i % 2}\n" for i in range(n)))
    return path


def test_single_source_splits_are_the_seeded_80_10_10_partition(tmp_path: Path) -> None:
    name = f"table:{_numbered_table(tmp_path / 't.csv', 50)}?label=cls"
    rows = {s: load_dataset(name, s, seed=3).data[:, 0].long().tolist() for s in ("train", "val", "test")}
    assert [len(rows[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(rows["train"] + rows["val"] + rows["test"]) == list(range(50))  # disjoint, all rows
    # The documented partition, in the documented order (a run's held-out rows must not move between versions).
    pieces = carve_indices(50, USER_FRACTIONS, 3, salt=zlib.crc32(b"user"))
    assert [rows[s] for s in ("train", "val", "test")] == [p.tolist() for p in pieces]
    assert load_dataset(name, "test", seed=3).data[:, 0].long().tolist() == rows["test"]
    assert load_dataset(name, "test", seed=4).data[:, 0].long().tolist() != rows["test"]
    with pytest.raises(DatasetError, match=r"unknown split 'extra'; available: all, train, val, test \(carved"):
        load_dataset(name, "extra")
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['bogus'\]; accepted: \['label'\]"):
        load_dataset(name, "all", bogus=1)


def test_user_names_route_score_and_list(tmp_path: Path) -> None:
    single = _numbered_table(tmp_path / "t.csv", 20)
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    for s in ("train", "test"):
        _numbered_table(split_dir / f"{s}.csv", 10)
    assert pick_ood_split(f"table:{single}") == "all"  # scored whole
    assert pick_ood_split(f"table:{split_dir}") == "test"
    assert pick_ood_split(str(single)) == "all"  # a plain existing path is user data too
    assert pick_ood_split("mnist-mini") == "test" and pick_ood_split("fashionmnist-mini") == "test"
    info = dataset_info(f"TABLE:{single}?label=cls")
    assert (info.kind, info.locations, info.available_now) == ("vector", [str(single)], True)
    assert not dataset_info(f"npz:{tmp_path / 'none.npz'}").available_now
    listed = [i.name for i in list_datasets()]
    assert listed[-3:] == ["folder:<path>", "npz:<path>", "table:<path>"] and "embeddings" in listed
    assert "embeddings" in available_names() and not any(":" in n for n in available_names())


def test_a_plain_npz_path_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.array([[["a"]], [[None]]], dtype=object))
    with pytest.raises(DatasetError, match=r"cannot read .*obj\.npz: .*numbers or strings"):
        load_dataset(str(tmp_path / "obj.npz"), "all")
    assert pick_ood_split(str(tmp_path / "obj.npz")) == "test"  # split picking leaves the error to loading
