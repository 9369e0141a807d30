"""Nothing silent on the data side (issue 17, item 5): NaN/Inf refused with file, column and rows; string
labels mapped to codes (the mapping kept); key X; float image rule; OOD conversions noted; user npz whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.data import load_dataset, pick_ood_split
from flowood.errors import DatasetError


def test_nonfinite_table_values_name_file_column_and_rows(tmp_path):
    rows = [f"{i},{'nan' if i % 5 == 0 else i},{'inf' if i == 3 else 1.0},{i % 2}" for i in range(20)]
    (tmp_path / "t.csv").write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"t\.csv: column 'b', 'c' holds NaN/Inf in 5 rows of 20; remove or impute"):
        load_dataset(f"table:{tmp_path / 't.csv'}?label=y", "all")
    x = np.ones((10, 3))
    x[2, 1] = np.nan
    np.savez(tmp_path / "t.npz", X=x)
    with pytest.raises(DatasetError, match=r"t\.npz: column 1 holds NaN/Inf in 1 rows of 10"):
        load_dataset(f"table:{tmp_path / 't.npz'}", "all")


def test_string_labels_map_to_codes_and_key_upper_x(tmp_path):
    rows = [f"{i * 0.1},{i * 0.2},{['setosa', 'virginica', 'versicolor'][i % 3]}" for i in range(12)]
    (tmp_path / "s.csv").write_text("a,b,species\n" + "\n".join(rows) + "\n")
    ds = load_dataset(f"table:{tmp_path / 's.csv'}?label=species", "all")
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    assert ds.labels[:3].tolist() == [0, 2, 1] and ds.data.shape == (12, 2)
    np.savez(tmp_path / "s.npz", X=np.arange(24.0).reshape(12, 2), y=np.array(["b", "a"] * 6))
    ds = load_dataset(f"table:{tmp_path / 's.npz'}", "all", classes=[1])
    assert ds.class_names == ["a", "b"] and len(ds) == 6 and ds.data[0].tolist() == [0.0, 1.0]
    np.savez(tmp_path / "o.npz", x=np.zeros((4, 2)), y=np.array(["a", 1, None, "b"], dtype=object))
    with pytest.raises(DatasetError, match=r"'y' holds Python objects \(dtype=object\).*dtype=str"):
        load_dataset(f"table:{tmp_path / 'o.npz'}", "all")


def test_float_images_follow_the_documented_rule(tmp_path):
    u8 = np.random.default_rng(0).integers(0, 256, (8, 1, 6, 6)).astype(np.uint8)
    np.savez(tmp_path / "unit.npz", x=u8.astype(np.float32) / 255.0)
    ds = load_dataset(f"npz:{tmp_path / 'unit.npz'}", "all")
    assert torch.equal(ds.data, torch.from_numpy(u8)) and ds.conversions == ["float32 pixels in [0, 1] scaled x255"]
    np.savez(tmp_path / "byte.npz", X=u8.astype(np.float64))
    assert torch.equal(load_dataset(f"npz:{tmp_path / 'byte.npz'}", "all").data, torch.from_numpy(u8))
    np.savez(tmp_path / "bad.npz", x=u8.astype(np.float32) - 10.0)
    with pytest.raises(DatasetError, match=r"bad\.npz: float32 pixel values span \[-10, 245\].*\[0, 1\].*\[0, 255\]"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}", "all")


def test_converted_ood_set_is_noted_and_recorded(capsys):
    ds = load_dataset("mnist-mini", "test", channels=3, size=32, limit=8)
    assert ds.conversions == ["grey -> RGB", "resized 28x28 -> 32x32 (bilinear)"]
    assert "note: mnist-mini (test): grey -> RGB; resized 28x28 -> 32x32 (bilinear)" in capsys.readouterr().err
    same = load_dataset("mnist-mini", "test", channels=1, size=28, limit=8)
    assert same.conversions == [] and capsys.readouterr().err == ""


def test_a_single_user_npz_is_scored_whole(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.zeros((50, 28, 28), np.uint8))
    name = f"npz:{tmp_path / 'one.npz'}"
    assert pick_ood_split(name) == "all" and len(load_dataset(name, pick_ood_split(name))) == 50
    np.savez(tmp_path / "two.npz", x_train=np.zeros((5, 8, 8), np.uint8), x_test=np.zeros((3, 8, 8), np.uint8))
    assert pick_ood_split(f"npz:{tmp_path / 'two.npz'}") == "test"
    assert pick_ood_split("mnist-mini") == "test"
