"""``flowood.data.user_files``, the readers of user files, hide nothing: NaN/Inf refused with file, column and
rows; string labels mapped to codes (the mapping kept); key X; the float image rule (noted as a conversion).

(The conversion note of a converted OOD set is ``tests/data/test_load.py``; a single user npz scored whole,
``tests/data/test_resolve.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.data import load_dataset
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
