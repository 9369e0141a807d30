"""``flowood.data.resolve``: the one resolver's look-up order and references, and ``dataset_info``,
``pick_split`` and ``pick_ood_split`` built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowood.data import dataset_info, load_dataset, pick_ood_split, pick_split, resolve
from flowood.data.derived import Derivation
from flowood.data.resolve import DerivedRef, RegisteredRef, UserRef
from flowood.errors import DatasetError


def test_each_kind_of_name_resolves_to_its_reference(tmp_path: Path) -> None:
    np.savez(tmp_path / "img.npz", x=np.zeros((4, 8, 8), np.uint8))
    np.savez(tmp_path / "emb.npz", embeddings=np.zeros((4, 3)), labels=np.zeros(4))
    np.savez(tmp_path / "tab.npz", x=np.zeros((4, 3)))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    ref = resolve(" FashionMNIST-mini ")
    assert isinstance(ref, RegisteredRef) and ref.name == "fashionmnist-mini" and ref.source.kind == "image"
    assert resolve(f"TABLE:{tmp_path / 't.csv'}?label=b&x=1") == UserRef(
        f"TABLE:{tmp_path / 't.csv'}?label=b&x=1", "table", tmp_path / "t.csv", (("label", "b"), ("x", "1"))
    )
    paths = {"img.npz": "npz", "emb.npz": "embeddings", "tab.npz": "table", "t.csv": "table", ".": "folder"}
    for file, scheme in paths.items():
        ref = resolve(str(tmp_path / file))
        assert isinstance(ref, UserRef) and (ref.scheme, ref.path) == (scheme, tmp_path / file), file
    ref = resolve("invert:hflip:mnist-mini")
    assert isinstance(ref, DerivedRef) and ref.derivation == Derivation("invert")
    assert isinstance(ref.base, DerivedRef) and ref.base.base == resolve("mnist-mini")
    assert resolve(f"mutate-0.5-x3:npz:{tmp_path / 'img.npz'}").base == resolve(f"npz:{tmp_path / 'img.npz'}")


def test_look_up_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived before user schemes before registered names before plain paths."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist-mini").mkdir()  # a folder named like a registered dataset
    assert isinstance(resolve("mnist-mini"), RegisteredRef)  # no '/', so not a path
    assert isinstance(resolve("./mnist-mini"), UserRef)
    (tmp_path / "hflip:mnist-mini").mkdir()  # a folder named like a derived set: the derived reading wins
    assert isinstance(resolve("hflip:mnist-mini"), DerivedRef)
    (tmp_path / "npz:y").mkdir()  # ... and like a user scheme: the scheme wins
    ref = resolve("npz:y")
    assert isinstance(ref, UserRef) and ref.scheme == "npz" and ref.path == Path("y")


def test_unknown_and_empty_names_are_one_line() -> None:
    listed = r"unknown dataset 'imagenet'.*Available: mnist, mnist-10k, fashionmnist"
    with pytest.raises(DatasetError, match=listed) as err:
        resolve("imagenet")
    assert "\n" not in str(err.value) and "folder:/path" in str(err.value) and "mutate-RATE:NAME" in str(err.value)
    for empty in ("", "  "):
        with pytest.raises(DatasetError, match="non-empty string"):
            resolve(empty)
    with pytest.raises(DatasetError, match=r"hflip:: name the dataset to derive from"):
        resolve("hflip:")
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        dataset_info("nope")


def test_dataset_info_knows_every_name_load_dataset_accepts(tmp_path: Path) -> None:
    """`evaluate` checks OOD names with dataset_info before scoring: every user name must pass it."""
    np.savez(tmp_path / "emb.npz", embeddings=np.zeros((4, 3), np.float32), labels=np.zeros(4, np.int64))
    np.savez(tmp_path / "img.npz", x=np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    cases = {
        f"embeddings:{tmp_path / 'emb.npz'}": "vector",
        str(tmp_path / "img.npz"): "image",
        str(tmp_path / "t.csv"): "vector",
        f"npz:{tmp_path / 'img.npz'}": "image",
        f"hflip:npz:{tmp_path / 'img.npz'}": "image",
    }
    for name, kind in cases.items():
        info = dataset_info(name)
        assert (info.kind, info.available_now, info.name) == (kind, True, name), name
    assert not dataset_info(f"embeddings:{tmp_path / 'absent.npz'}").available_now
    info = dataset_info("vflip:fashionmnist-mini")
    assert info.description.startswith("vflip of fashionmnist-mini: Embedded real FashionMNIST")
    assert (info.shape, info.splits) == ((1, 28, 28), ("train", "test", "val", "fit"))


def test_pick_split_prefers_the_asked_split_then_the_closest() -> None:
    assert pick_split("fashionmnist-mini", "test") == "test"
    assert pick_split("mnist-mini", "train") == "half-train" and pick_split("mnist-mini", "test") == "test"
    assert pick_split("hflip:mnist-mini", "train") == "half-train"
    assert pick_split("nope", "train") == "train"  # loading says what is wrong with the name


def test_a_single_user_npz_is_scored_whole(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", x=np.zeros((50, 28, 28), np.uint8))
    name = f"npz:{tmp_path / 'one.npz'}"
    assert pick_ood_split(name) == "all" and len(load_dataset(name, pick_ood_split(name))) == 50
    assert pick_ood_split(f"invert:{name}") == "all"  # a derived set is scored like its base
    np.savez(tmp_path / "two.npz", x_train=np.zeros((5, 8, 8), np.uint8), x_test=np.zeros((3, 8, 8), np.uint8))
    assert pick_ood_split(f"npz:{tmp_path / 'two.npz'}") == "test"
    assert pick_ood_split("mnist-mini") == "test" and pick_ood_split("nope") == "test"
