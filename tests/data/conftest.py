"""Fixtures for the datasets tests: an isolated flowood cache and writers of the published file formats."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $FLOWOOD_DATA at an empty per-test folder so no test sees (or writes) a real cache."""
    cache = tmp_path / "flowood-cache"
    monkeypatch.setenv("FLOWOOD_DATA", str(cache))
    return cache


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx (SN3 / Pascal Vincent) uint8 file holding ``arr``, as in the MNIST distribution."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = (0x0800 + arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write_idx_split(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(arr)
        path = raw / f"{prefix}-{kind}-ubyte"
        if gz:
            with gzip.open(str(path) + ".gz", "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)


def fake_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def fake_labels(n: int, k: int = 10) -> np.ndarray:
    return (np.arange(n) % k).astype(np.uint8)
