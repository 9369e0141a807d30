"""``flowood.data.sources.cifar``: CIFAR-10 python pickle batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import write_cifar


def test_cifar10_batches(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    tr = load_dataset("cifar10", "train", root=tmp_path)
    assert tr.data.shape == (30, 3, 32, 32)
    assert torch.equal(tr.data[0], torch.from_numpy(written["data_batch_1"][0][0].reshape(3, 32, 32)))
    assert torch.equal(tr.data[-1], torch.from_numpy(written["data_batch_5"][0][-1].reshape(3, 32, 32)))
    te = load_dataset("cifar10", "test", root=tmp_path, channels=1)
    assert te.data.shape == (6, 1, 32, 32) and te.labels.tolist() == written["test_batch"][1]
    assert tr.class_names is not None and tr.class_names[0] == "airplane"


def test_cifar10_corrupt_and_wrong_shape(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, f)
    with pytest.raises(DatasetError, match=r"test_batch.*3072"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_cifar10_needs_every_batch_of_the_split(tmp_path: Path) -> None:
    """A folder lacking one training batch is not taken for the dataset (the error says where it looked)."""
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").unlink()
    assert len(load_dataset("cifar10", "test", root=tmp_path)) == 6
    with pytest.raises(DatasetError, match=r"'cifar10' not found; looked in: .*cifar-10-batches-py"):
        load_dataset("cifar10", "train", root=tmp_path)
