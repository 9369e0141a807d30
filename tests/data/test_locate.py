"""``flowood.data.locate``: the look-up order of files, the one-line missing-data error, the shared torchvision
download."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from flowood.data import load_dataset
from flowood.data.locate import find_first, missing_error, probe_paths, search_roots
from flowood.errors import DatasetError


def test_root_is_searched_before_the_cache(tmp_path: Path, _isolated_cache: Path) -> None:
    assert search_roots(tmp_path) == [tmp_path, _isolated_cache] and search_roots(None) == [_isolated_cache]
    for base in (tmp_path, _isolated_cache):
        (base / "d").mkdir(parents=True)
        (base / "d" / "f").write_text("x")
    found, looked = find_first(tmp_path, lambda base: [base / "d" / "f"])
    assert found == tmp_path / "d" / "f" and looked == [str(found)]
    found, looked = find_first(tmp_path / "empty", lambda base: [base / "d" / "f", base / "e"])
    assert found == _isolated_cache / "d" / "f"
    assert looked == [str(tmp_path / "empty" / "d" / "f"), str(tmp_path / "empty" / "e"), str(found)]


def test_missing_error_is_one_line_naming_each_place_once() -> None:
    err = missing_error("x", ["/a", "/b", "/a"], "get it from y", "found 1 of 2")
    assert str(err) == "dataset 'x' not found; looked in: /a, /b. To obtain it: get it from y (found 1 of 2)"


def test_probe_paths_reads_nothing_and_checks_each_root(tmp_path: Path, _isolated_cache: Path) -> None:
    probe = probe_paths(["d/f"], [tmp_path / "system" / "f"])
    looked, available = probe(tmp_path / "root")
    wanted = [tmp_path / "root" / "d" / "f", _isolated_cache / "d" / "f", tmp_path / "system" / "f"]
    assert looked == [str(p) for p in wanted]
    assert not available
    (tmp_path / "system").mkdir()
    (tmp_path / "system" / "f").write_text("")
    assert probe(tmp_path / "root")[1]


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("network unreachable")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_download_offline_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """download=True without a network: the missing-data line, saying the download failed."""
    import torchvision.datasets.utils as tvu

    for mod in ("torchvision.datasets.mnist", "torchvision.datasets.cifar", "torchvision.datasets.svhn"):
        for fn in ("download_and_extract_archive", "download_url"):
            if hasattr(__import__(mod, fromlist=["x"]), fn):
                monkeypatch.setattr(f"{mod}.{fn}", _offline)
    monkeypatch.setattr(tvu, "download_url", _offline)
    with pytest.raises(DatasetError, match=rf"'{name}' not found.*download failed") as err:
        load_dataset(name, "test", root=tmp_path, download=True)
    assert "\n" not in str(err.value)
