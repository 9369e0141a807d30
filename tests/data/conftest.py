"""Fixtures for the datasets tests: an isolated flowood cache (the file-format writers are ``formats.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $FLOWOOD_DATA at an empty per-test folder so no test sees (or writes) a real cache."""
    cache = tmp_path / "flowood-cache"
    monkeypatch.setenv("FLOWOOD_DATA", str(cache))
    return cache
