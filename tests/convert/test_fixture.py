"""The golden folder fixture skips only without ../shared; a present but incomplete folder fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.convert import conftest


def test_no_shared_folder_means_none(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWOOD_GOLDEN_DIR", raising=False)
    monkeypatch.setattr(conftest, "REPO", tmp_path / "repo")
    assert conftest.golden_dir() is None


def test_shared_folder_beside_the_repo_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWOOD_GOLDEN_DIR", raising=False)
    (tmp_path / "shared").mkdir()
    monkeypatch.setattr(conftest, "REPO", tmp_path / "repo")
    assert conftest.golden_dir() == tmp_path / "shared" / "golden" / "flows_ood"


def test_env_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWOOD_GOLDEN_DIR", str(tmp_path / "g"))
    assert conftest.golden_dir() == Path(tmp_path / "g")


def test_incomplete_folder_fails_not_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWOOD_GOLDEN_DIR", str(tmp_path))
    (tmp_path / "index.json").write_text("{}")
    with pytest.raises(pytest.fail.Exception, match=r"incomplete: missing realnvp\.pt"):
        conftest.golden.__wrapped__()  # type: ignore[attr-defined]
