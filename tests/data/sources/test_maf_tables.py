"""``flowood.data.sources.maf_tables``: MAF-preprocessed UCI tables and the class-conditional protocol, on small
files in the published layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_gas, write_hepmass, write_miniboone, write_miniboone_raw, write_power


def test_power(tmp_path: Path) -> None:
    raw = write_power(tmp_path)
    parts = {s: load_dataset("power", s, root=tmp_path) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [162, 18, 20]
    assert parts["train"].shape == (6,) and parts["train"].data.dtype == torch.float32
    assert (parts["train"].labels == -1).all() and parts["train"].kind == "vector"
    ref = torch.cat([parts["train"].data, parts["val"].data])
    assert torch.allclose(ref.mean(0), torch.zeros(6), atol=1e-5)
    # exactly MAF's recipe
    data = raw.copy()
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    voltage_noise = 0.01 * rng.rand(200, 1)  # MAF draws voltage noise before gap noise
    gap_noise = 0.001 * rng.rand(200, 1)
    data = data + np.hstack((gap_noise, voltage_noise, rng.rand(200, 3), np.zeros((200, 1))))
    mu, s = data[:180].mean(0), data[:180].std(0)
    assert np.allclose(parts["test"].data.numpy(), ((data[180:] - mu) / s).astype(np.float32), atol=1e-5)
    x, y = parts["test"][0]
    assert x.shape == (6,) and y == -1


def test_power_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((10, 5)))
    with pytest.raises(DatasetError, match=r"power/data\.npy.*\(N, 8\)"):
        load_dataset("power", "train", root=tmp_path)


def test_gas_uci_text(tmp_path: Path) -> None:
    write_gas(tmp_path)
    tr = load_dataset("gas", "train", root=tmp_path)
    assert tr.shape == (15,) and len(tr) == 243
    assert len(load_dataset("gas", "test", root=tmp_path)) == 30


@pytest.fixture
def hepmass_root(tmp_path: Path) -> Path:
    write_hepmass(tmp_path)
    return tmp_path


def test_hepmass_maf(hepmass_root: Path) -> None:
    tr = load_dataset("hepmass", "train", root=hepmass_root)
    assert tr.shape == (3,) and len(tr) == 180 and (tr.labels == 1).all()
    assert len(load_dataset("hepmass", "val", root=hepmass_root)) == 20
    te = load_dataset("hepmass", "test", root=hepmass_root)
    assert len(te) == 50 and te.shape == (3,)


def test_hepmass_class_conditional(hepmass_root: Path) -> None:
    maf = load_dataset("hepmass", "train", root=hepmass_root)
    tr = load_dataset("hepmass", "train", root=hepmass_root, in_class=1, classes=[1])
    assert torch.equal(tr.data, maf.data)  # in_class=1 + signal rows == MAF HEPMASS
    both = load_dataset("hepmass", "test", root=hepmass_root, in_class=1)
    assert sorted(both.labels.unique().tolist()) == [0, 1]
    ood = load_dataset("hepmass", "test", root=hepmass_root, in_class=1, classes=[0])
    assert (ood.labels == 0).all() and len(ood) == 50
    assert ood.data.mean() < -1.0  # background normalised with signal statistics sits far away
    bg = load_dataset("hepmass", "train", root=hepmass_root, in_class=0, classes=[0])
    assert abs(float(bg.data.mean())) < 0.2


def test_miniboone_maf_and_conditional(tmp_path: Path) -> None:
    write_miniboone(tmp_path)
    tr = load_dataset("miniboone", "train", root=tmp_path)
    assert len(tr) == 81 and tr.shape == (4,)
    with pytest.raises(DatasetError, match=r"MiniBooNE_PID\.txt"):
        load_dataset("miniboone", "train", root=tmp_path, in_class=1)
    lines = write_miniboone_raw(tmp_path)
    tr = load_dataset("miniboone", "train", root=tmp_path, in_class=1, classes=[1])
    assert tr.shape == (4,) and (tr.labels == 1).all() and len(tr) == 49
    te = load_dataset("miniboone", "test", root=tmp_path, in_class=1)
    assert te.labels.bincount().tolist() == [8, 6]
    (tmp_path / "miniboone" / "MiniBooNE_PID.txt").write_text("\n".join(lines[:50]) + "\n")
    with pytest.raises(DatasetError, match=r"MiniBooNE_PID\.txt.*truncated"):
        load_dataset("miniboone", "train", root=tmp_path, in_class=1)


def test_tabular_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)'hepmass' not found.*hepmass.*To obtain it"):
        load_dataset("hepmass", "train", root=tmp_path)
    (tmp_path / "power").mkdir()
    (tmp_path / "power" / "data.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match=r"power/data\.npy"):
        load_dataset("power", "train", root=tmp_path)
    np.save(tmp_path / "power" / "data.npy", np.zeros((30, 8)))
    with pytest.raises(DatasetError, match="power is a vector dataset: it cannot be converted to images"):
        load_dataset("power", "train", root=tmp_path, size=8)
