"""``flowood.data.sources.sklearn_tables``: scikit-learn's breast-cancer table with its fixed splits."""

from __future__ import annotations

import numpy as np
import torch

from flowood.data import load_dataset


def test_breast_cancer_fixed_per_class_splits() -> None:
    """The documented sizes (train 341 = 214 benign + 127 malignant, val 57, test 171 = 107 + 64), disjoint,
    covering all 569 rows, and the same whatever the load seed (the splits are part of the dataset)."""
    parts = {s: load_dataset("breast-cancer", s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [341, 57, 171]
    assert parts["train"].labels.bincount().tolist() == [127, 214]
    assert parts["test"].labels.bincount().tolist() == [64, 107]
    rows = torch.cat([parts[s].data for s in ("train", "val", "test")])
    assert torch.unique(rows, dim=0).shape[0] == 569 and parts["train"].class_names == ["malignant", "benign"]
    assert torch.equal(load_dataset("breast-cancer", "test", seed=7).data, parts["test"].data)
    from sklearn.datasets import load_breast_cancer

    raw = np.asarray(load_breast_cancer().data, dtype=np.float32)
    assert np.isin(parts["val"].data.numpy()[:, 0], raw[:, 0]).all()  # raw features, not standardised
