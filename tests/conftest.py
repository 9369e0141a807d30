"""Shared fixtures: deterministic seeds, few threads (the suite is quick on 2 cores), a private feature cache and
torch hub per test, and small embedding files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FLOWOOD_CACHE and TORCH_HOME at empty per-test directories (no test sees another's features)."""
    monkeypatch.setenv("FLOWOOD_CACHE", str(tmp_path / "flowood-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: as fast for tiny models and much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_embedding_file(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """An ``flowood embed``-style npz: ``<split>_embeddings`` float32 (N, F), ``<split>_labels`` int64 (N,)."""
    arrays: dict[str, np.ndarray] = {}
    for split, (x, y) in splits.items():
        arrays[f"{split}_embeddings"] = x.astype(np.float32)
        arrays[f"{split}_labels"] = y.astype(np.int64)
    first = next(iter(splits))
    arrays["embeddings"], arrays["labels"] = arrays[f"{first}_embeddings"], arrays[f"{first}_labels"]
    arrays["splits"] = np.array(list(splits))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def embedding_files(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Synthetic in-distribution (train/test) and OOD (test) embedding files with very different scales,
    a constant feature and a heavy tail, like pooled CNN features."""

    def make(dim: int = 16, n_train: int = 400, n_test: int = 100, seed: int = 0) -> tuple[Path, Path]:
        rng = np.random.default_rng(seed)
        scales = np.geomspace(0.01, 100.0, dim)

        def sample(n: int, shift: float) -> np.ndarray:
            x = np.abs(rng.standard_t(4, size=(n, dim))) * scales + shift * scales
            x[:, 0] = 0.0  # dead feature: constant on the training split
            return x

        ind = write_embedding_file(
            tmp_path / "ind.npz",
            {
                "train": (sample(n_train, 0.0), np.zeros(n_train)),
                "test": (sample(n_test, 0.0), np.zeros(n_test)),
            },
        )
        ood_x = sample(n_test, 2.0)
        ood_x[:, 0] = 1.0
        ood = write_embedding_file(tmp_path / "ood.npz", {"test": (ood_x, np.ones(n_test))})
        return ind, ood

    return make
