"""``flowood.data.registry`` and the discovery in ``flowood.data.sources``: entries checked on registration,
every source module registering, the listing order ``flowood datasets`` shows."""

from __future__ import annotations

import pkgutil
from dataclasses import replace

import pytest

import flowood.data.sources
from flowood.data import available_names, list_datasets, registry
from flowood.data.registry import SOURCES, Source, register


def _entry(name: str = "tiny", **kw: object) -> Source:
    base = SOURCES["uniform-noise"]
    return replace(base, name=name, **kw)  # type: ignore[arg-type]


def test_register_refuses_what_the_resolver_would_misread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "SOURCES", {})
    assert register(_entry()) is registry.SOURCES["tiny"]
    with pytest.raises(ValueError, match="registered twice"):
        register(_entry())
    for bad in ("Tiny", "a:b", "x/y", " tiny2", ""):
        with pytest.raises(ValueError, match="lower case without"):
            register(_entry(bad))
    with pytest.raises(ValueError, match=r"takes \['limit'\]"):
        register(_entry("other", takes=frozenset({"limit"})))


def test_every_source_module_registers_a_dataset() -> None:
    """A module under flowood/data/sources/ that registers nothing is a dataset that silently does not exist."""
    modules = {m.name for m in pkgutil.iter_modules(flowood.data.sources.__path__)}
    owners = {getattr(s.loader, "func", s.loader).__module__.rpartition(".")[2] for s in SOURCES.values()}
    assert modules == owners


def test_splits_carve_val_and_fit_unless_told_not_to() -> None:
    assert SOURCES["svhn"].splits == ("train", "test", "extra", "val", "fit")
    assert SOURCES["celeba"].splits == ("train", "val", "test", "all")  # val is native
    assert SOURCES["notmnist"].splits == ("test", "train")  # carve_val=False


def test_listing_order_is_kept() -> None:
    """`flowood datasets` lists in :attr:`Source.order`: the paper's image sets, the stand-in, the bundle, the
    tables, embeddings, the generated sets, then the user schemes (a new source goes anywhere it chooses)."""
    listed = [i.name for i in list_datasets()]
    fixed = [
        "mnist", "fashionmnist", "cifar10", "svhn", "celeba", "notmnist", "imagenet32", "imagenet64", "glyphs",
        "fashionmnist-mini", "mnist-mini", "miniboone", "hepmass", "gas", "power", "breast-cancer", "embeddings",
        "uniform-noise", "gaussian-noise", "constant-images",
    ]  # fmt: skip
    assert [n for n in listed if n in fixed] == fixed
    assert listed[-3:] == ["folder:<path>", "npz:<path>", "table:<path>"]
    assert available_names() == [n for n in listed if ":" not in n]
    orders = [SOURCES[n].order for n in available_names()]
    assert orders == sorted(orders)
