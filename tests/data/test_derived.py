"""``flowood.data.derived``: ``hflip:``/``vflip:``/``invert:`` and ``mutate-RATE[-xK]:`` sets — their syntax and
one-line errors, the base loaded with the same arguments, and the mutation's seed rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.data import dataset_info, load_dataset
from flowood.data.derived import Derivation, mutate_images, mutation_seed, parse_derived
from flowood.errors import DatasetError


def test_flips_and_inversion_of_the_base_with_the_same_arguments() -> None:
    base = load_dataset("fashionmnist-mini", "test", limit=30, seed=3, classes=[1, 2])
    for op, expected in (("hflip", base.data.flip(-1)), ("vflip", base.data.flip(-2)), ("invert", 255 - base.data)):
        ds = load_dataset(f"{op}:fashionmnist-mini", "test", limit=30, seed=3, classes=[1, 2])
        assert torch.equal(ds.data, expected) and torch.equal(ds.labels, base.labels), op
        assert ds.name == f"{op}:fashionmnist-mini" and ds.split == "test" and ds.source.startswith(f"{op} of ")


def test_mutate_syntax() -> None:
    assert parse_derived("mutate-0.2:fashionmnist-mini") == (Derivation("mutate", 0.2, 1), "fashionmnist-mini")
    assert parse_derived("MUTATE-1e-1-x3:npz:/a.npz") == (Derivation("mutate", 0.1, 3), "npz:/a.npz")
    assert parse_derived("mutate-0-x1:x")[0].prefix == "mutate-0" and Derivation("mutate", 0.25, 2).prefix == (
        "mutate-0.25-x2"
    )
    assert parse_derived("fashionmnist-mini") is None and parse_derived("npz:/a.npz") is None


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("mutate:mnist-mini", "mutate needs a rate"),
        ("mutate-abc:mnist-mini", "mutation rate 'abc' is not a number"),
        ("mutate-1.5:mnist-mini", "mutation rate 1.5 is outside [0, 1]"),
        ("mutate--0.1:mnist-mini", "mutation rate -0.1 is outside [0, 1]"),
        ("mutate-nan:mnist-mini", "mutation rate nan is outside [0, 1]"),
        ("mutate-0.2-x0:mnist-mini", "the number of copies x0 must be an integer >= 1"),
        ("mutate-0.2-xtwo:mnist-mini", "the number of copies xtwo must be an integer >= 1"),
        ("mutate-0.2:", "name the dataset to derive from"),
    ],
)
def test_mutate_errors_are_one_line_naming_the_name(name: str, words: str) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(name, "test")
    msg = str(err.value)
    assert msg.startswith(f"{name}: ") and words in msg and "\n" not in msg
    assert "mutate-RATE" in msg or "derive from" in msg


def test_mutation_follows_the_seed_rule() -> None:
    """Copy k of split S loaded with seed s is mutate_images(base, R, seed=mutation_seed(NAME, S, s, k)); the
    train split holds K copies, every other split one."""
    base_tr = load_dataset("fashionmnist-mini", "train", limit=40, seed=5)
    base_te = load_dataset("fashionmnist-mini", "test", limit=40, seed=5)
    tr = load_dataset("mutate-0.3-x2:fashionmnist-mini", "train", limit=40, seed=5)
    te = load_dataset("mutate-0.3-x2:fashionmnist-mini", "test", limit=40, seed=5)
    assert len(tr) == 80 and len(te) == 40 and tr.labels.tolist() == base_tr.labels.tolist() * 2
    for k in (0, 1):
        want = mutate_images(base_tr.data.numpy(), 0.3, seed=mutation_seed("fashionmnist-mini", "train", 5, k))
        assert np.array_equal(tr.data[40 * k : 40 * (k + 1)].numpy(), want), k
    want = mutate_images(base_te.data.numpy(), 0.3, seed=mutation_seed("fashionmnist-mini", "test", 5, 0))
    assert np.array_equal(te.data.numpy(), want)
    changed = float((tr.data != base_tr.data.repeat(2, 1, 1, 1)).float().mean())
    assert changed == pytest.approx(0.3 * 255 / 256, abs=0.02)


def test_mutation_is_a_pure_function_of_name_split_seed_and_copy() -> None:
    def load(name: str, split: str = "train", seed: int = 0) -> torch.Tensor:
        return load_dataset(name, split, limit=20, seed=seed).data

    one = load("mutate-0.2:fashionmnist-mini")
    assert torch.equal(one, load("mutate-0.2:fashionmnist-mini"))
    assert torch.equal(load("mutate-0.2-x3:fashionmnist-mini")[:40], load("mutate-0.2-x2:fashionmnist-mini"))
    assert torch.equal(load("mutate-0.2-x2:fashionmnist-mini")[:20], one)
    assert not torch.equal(load("mutate-0.2-x2:fashionmnist-mini")[20:], one)  # each copy its own draw
    assert not torch.equal(load("mutate-0.2:FashionMNIST-mini", seed=1), one)
    # The same base images under another split name draw other values (the split is part of the seed).
    assert mutation_seed("a", "train", 0, 0) != mutation_seed("a", "test", 0, 0)
    assert mutation_seed("a", "train", 0, 0) != mutation_seed("b", "train", 0, 0)
    assert torch.equal(load("mutate-0:fashionmnist-mini"), load("fashionmnist-mini"))
    assert torch.equal(load("mutate-0.2:FashionMNIST-mini"), one)  # registered names are case-insensitive


def test_mutate_info_and_errors_on_vectors() -> None:
    info = dataset_info("mutate-0.2-x2:fashionmnist-mini")
    assert info.name == "mutate-0.2-x2:fashionmnist-mini" and info.shape == (1, 28, 28)
    assert info.description.startswith("mutate-0.2-x2 of fashionmnist-mini: ")
    with pytest.raises(DatasetError, match=r"mutate-0.2:breast-cancer: mutate applies to image datasets"):
        load_dataset("mutate-0.2:breast-cancer", "test")


def test_mutate_images_validates_its_arguments() -> None:
    images = np.zeros((4, 1, 2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mutate_images(images, 1.5)
    with pytest.raises(ValueError, match="uint8"):
        mutate_images(images.astype(np.float32), 0.1)
    from flowood.ood.detectors import mutate_images as from_ood

    assert from_ood is mutate_images  # the detectors' name for it still works
