"""``flowood.data.sources.bundle``: the embedded ``fashionmnist-mini`` and ``mnist-mini``."""

from __future__ import annotations

import time

import pytest
import torch

from flowood.data import ArrayDataset, load_dataset
from flowood.data.sources import bundle
from flowood.errors import DatasetError


def test_bundle_fashionmnist_mini() -> None:
    # CPU time of this process (not wall-clock time, which other processes stretch): the bundle is read, not
    # decoded or rendered.
    t0 = time.process_time()
    tr = load_dataset("fashionmnist-mini", "train")
    te = load_dataset("fashionmnist-mini", "test")
    assert time.process_time() - t0 < 1.0
    assert isinstance(tr, ArrayDataset) and tr.data.shape == (10000, 1, 28, 28) and tr.data.dtype == torch.uint8
    assert te.data.shape == (2000, 1, 28, 28)
    assert tr.labels.bincount().tolist() == [1000] * 10 and te.labels.bincount().tolist() == [200] * 10
    assert tr.source.startswith("embedded bundle") and tr.data.float().mean() > 50  # real images, not blank
    assert tr.class_names is not None and tr.class_names[9] == "Ankle boot"
    assert len(load_dataset("fashionmnist-mini", "val")) == 1000


def test_bundle_mnist_mini() -> None:
    te = load_dataset("mnist-mini", "test")
    assert te.data.shape == (2000, 1, 28, 28) and te.labels.bincount().tolist() == [200] * 10
    a, b = load_dataset("mnist-mini", "half-train"), load_dataset("mnist-mini", "half-test")
    assert len(a) == len(b) == 1000 and a.labels.bincount().tolist() == [100] * 10
    both = torch.cat([a.data, b.data]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(te.data.flatten(1), dim=0).shape[0]


def test_missing_bundle_file_says_how_to_rebuild(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "BUNDLE_DIR", tmp_path)
    with pytest.raises(DatasetError, match=r"mnist-mini: the embedded bundle file .*mnist-mini\.npz is missing"):
        load_dataset("mnist-mini", "test")
