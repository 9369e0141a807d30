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


def test_bool_images_are_black_and_white_not_one_of_255(tmp_path):
    """Issue 25, item 7: a bool mask read as 0/1 would be near-black images, silently."""
    mask = np.zeros((4, 1, 8, 8), dtype=bool)
    mask[:, :, 2:6, 2:6] = True
    np.savez(tmp_path / "m.npz", x=mask)
    ds = load_dataset(f"npz:{tmp_path / 'm.npz'}", "all")
    assert sorted(torch.unique(ds.data).tolist()) == [0, 255]
    assert ds.conversions == ["bool pixels read as 0 / 255"]


def test_an_image_folder_says_every_conversion_it_makes(tmp_path):
    """Issue 25, item 7: grey/RGB mixes, alpha channels, 16-bit PNGs and other sizes are converted with a note,
    as an npz's are; a 16-bit image keeps its picture (PIL's own convert would clip it white)."""
    from PIL import Image

    cls = tmp_path / "imgs" / "a"
    cls.mkdir(parents=True)
    ramp = np.tile(np.arange(8, dtype=np.uint8) * 30, (8, 1))
    Image.fromarray(ramp, mode="L").save(cls / "0_grey.png")
    Image.fromarray(np.stack([ramp] * 3, -1), mode="RGB").save(cls / "1_rgb.png")
    Image.fromarray(np.stack([ramp] * 4, -1), mode="RGBA").save(cls / "2_rgba.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(cls / "3_wide.png")  # 16-bit grey
    Image.fromarray(np.tile(ramp, (2, 2)), mode="L").save(cls / "4_big.png")  # 16x16
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}", "all", size=8)
    assert ds.data.shape == (5, 1, 8, 8)
    notes = "; ".join(ds.conversions)
    for what in ("1 of 5 images: RGB -> grey", "1 of 5 images: RGBA -> grey (alpha dropped)",
                 "1 of 5 images: 16-bit pixels scaled to 8 bits", "1 of 5 images: resized 16x16 -> 8x8"):  # fmt: skip
        assert what in notes, notes
    assert torch.equal(ds.data[3, 0], torch.from_numpy(ramp))  # the 16-bit image, not clipped to 255
    assert ds.conversion_note() is not None
