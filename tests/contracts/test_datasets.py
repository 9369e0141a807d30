"""The contract every registered dataset keeps (``flowood.data.registry``, filled by ``flowood.data.sources``),
checked over the whole registry on small files in each source's published format
(``tests/contracts/dataset_fixtures.py``).

For each source:

* its probe says *unavailable* on an empty root and *available* once the files are written (a source that
  needs no files says available everywhere, and its fixture says why it needs none);
* on an empty root, loading is one ``DatasetError`` line naming where it looked;
* every split it lists loads with its registered kind and shape: uint8 ``(N, C, H, W)`` images or float32
  ``(N, D)`` vectors, int64 ``(N,)`` labels (``-1`` unlabelled, else below its number of classes), nothing
  converted;
* ``dataset_info`` agrees with what loaded;
* ``limit`` gives a seeded subset of the split: the same seed the same samples, another seed others.

A registered name without a fixture fails here, so a dataset cannot be added untested.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from flowood.data import ArrayDataset, DatasetInfo, available_names, dataset_info, load_dataset
from flowood.errors import DatasetError
from tests.contracts.dataset_fixtures import FIXTURES, Fixture


@pytest.fixture(autouse=True)
def _no_real_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty flowood cache, so that nothing on this machine passes for the files the fixture wrote."""
    monkeypatch.setenv("FLOWOOD_DATA", str(tmp_path / "cache"))


def test_every_fixture_names_a_registered_source() -> None:
    assert sorted(set(FIXTURES) - set(available_names())) == []


def _check_split(ds: ArrayDataset, info: DatasetInfo, split: str) -> None:
    where = f"{info.name} ({split})"
    assert (ds.kind, ds.split) == (info.kind, split), where
    assert len(ds) > 0 and ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),), where
    if ds.kind == "image":
        assert ds.data.dtype == torch.uint8 and ds.data.ndim == 4, where
    else:
        assert ds.data.dtype == torch.float32 and ds.data.ndim == 2, where
    if info.shape is not None:
        assert ds.shape == info.shape, where
    assert int(ds.labels.min()) >= -1, where  # -1 marks an unlabelled sample
    if info.num_classes is not None and int(ds.labels.max()) >= 0:
        assert int(ds.labels.max()) < info.num_classes, where
    assert ds.conversions == [], where  # the published format is read as it is
    x, _ = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == ds.shape, where


def _rows(ds: ArrayDataset) -> list[bytes]:
    return [row.numpy().tobytes() for row in ds.data.flatten(1)]


def _root(name: str, fixture: Fixture, tmp_path: Path) -> Path | None:
    """Write the fixture under a fresh root after checking the empty root (None: the source needs no files)."""
    if fixture.write is None:
        assert fixture.no_files, f"{name}: a fixture without a writer says why no files are needed"
        assert dataset_info(name, tmp_path).available_now, f"{name} needs no files, so it is always available"
        return None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not dataset_info(name, empty).available_now, f"{name}: the probe finds data in an empty root"
    split = dataset_info(name, empty).splits[0]
    with pytest.raises(DatasetError) as err:
        load_dataset(name, split, root=empty, **fixture.options)
    message = str(err.value)
    assert "\n" not in message and str(empty) in message, message  # one line, naming where it looked
    root = tmp_path / "root"
    root.mkdir()
    fixture.write(root)
    root = root / fixture.root_file if fixture.root_file else root
    assert dataset_info(name, root).available_now, f"{name}: the probe misses the files just written"
    return root


@pytest.mark.parametrize("name", available_names())
def test_dataset_contract(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = FIXTURES.get(name)
    assert fixture is not None, f"{name} has no fixture: add one to tests/contracts/dataset_fixtures.py"
    for module, attribute in fixture.hide:
        monkeypatch.setattr(importlib.import_module(module), attribute, tmp_path / "absent")
    root = _root(name, fixture, tmp_path)
    info = dataset_info(name, root)
    assert info.name == name and info.kind in ("image", "vector") and info.splits

    def load(split: str, **kw: object) -> ArrayDataset:
        return load_dataset(name, split, root=root, **fixture.options, **kw)

    for split in info.splits:
        _check_split(load(split), info, split)

    split = info.splits[0]
    full = load(split)
    assert len(full) >= 4, f"{name}: the fixture's {split} split is too small to test limit"
    half = len(full) // 2
    first = load(split, limit=half, seed=0)
    again = load(split, limit=half, seed=0)
    assert len(first) == half and torch.equal(first.data, again.data) and torch.equal(first.labels, again.labels)
    assert set(_rows(first)) <= set(_rows(full))
    others = [load(split, limit=half, seed=s).data for s in (1, 2, 3)]
    assert any(not torch.equal(first.data, other) for other in others), f"{name}: limit ignores the seed"
