"""``flowood.data.sources.embeddings``: the registered ``embeddings`` name, its file from ``path=`` or
``root=`` and its availability probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.data import dataset_info, load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_embeddings


def test_embeddings(tmp_path: Path) -> None:
    emb = write_embeddings(tmp_path / "e.npz")
    ds = load_dataset("embeddings", "all", path=tmp_path / "e.npz")
    assert ds.kind == "vector" and ds.shape == (7,) and torch.equal(ds.data, torch.from_numpy(emb))
    assert len(load_dataset("embeddings", "test", root=tmp_path / "e.npz")) == 5
    assert len(load_dataset(f"embeddings:{tmp_path / 'e.npz'}", "train")) == 40
    d = tmp_path / "per_split"
    d.mkdir()
    np.savez(d / "test.npz", embeddings=emb[:9], labels=np.zeros(9))
    assert len(load_dataset("embeddings", "test", path=d)) == 9
    np.savez(tmp_path / "bad.npz", feats=emb)
    with pytest.raises(DatasetError, match=r"bad\.npz.*'embeddings' and 'labels'"):
        load_dataset("embeddings", "all", path=tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="path="):
        load_dataset("embeddings", "all")


def test_carved_splits_follow_the_load_seed(tmp_path: Path) -> None:
    write_embeddings(tmp_path / "e.npz")
    a, b = (load_dataset("embeddings", "test", path=tmp_path / "e.npz", seed=s).data for s in (0, 1))
    assert torch.equal(a, load_dataset("embeddings", "test", path=tmp_path / "e.npz", seed=0).data)
    assert not torch.equal(a, b)


def test_available_only_where_embeddings_are(tmp_path: Path) -> None:
    assert not dataset_info("embeddings").available_now
    assert not dataset_info("embeddings", tmp_path).available_now  # an empty folder holds none
    np.savez(tmp_path / "test.npz", embeddings=np.zeros((3, 2)), labels=np.zeros(3))
    assert dataset_info("embeddings", tmp_path).available_now
    assert dataset_info("embeddings", tmp_path / "test.npz").available_now
    assert dataset_info("embeddings").splits == ("all", "train", "val", "test")
