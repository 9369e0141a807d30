"""The golden reference computed by the original flows_ood code (``../shared/golden/flows_ood``).

The folder is found beside the repository (CI clones the repo next to a copy of ``shared/``) or through
``FLOWOOD_GOLDEN_DIR``. Tests skip only when neither exists (a checkout outside CI); a folder that exists
with files missing or unreadable fails them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN_MODELS = ("realnvp", "realnvp_bottleneck", "realnvp_cycle_mask", "realnvp_horizontal_mask", "glow")


def golden_dir() -> Path | None:
    """The golden folder, or ``None`` when there is no ``../shared`` (and no ``FLOWOOD_GOLDEN_DIR``)."""
    env = os.environ.get("FLOWOOD_GOLDEN_DIR")
    if env:
        return Path(env)
    shared = REPO.parent / "shared"
    return shared / "golden" / "flows_ood" if shared.is_dir() else None


@pytest.fixture(scope="session")
def golden() -> Path:
    path = golden_dir()
    if path is None:
        pytest.skip(
            f"no golden reference: {REPO.parent / 'shared'} does not exist and FLOWOOD_GOLDEN_DIR is unset "
            "(CI clones the repository beside shared/)"
        )
    missing = [n for m in GOLDEN_MODELS for n in (f"{m}.pt", f"{m}.npz") if not (path / n).is_file()]
    if not (path / "index.json").is_file():
        missing.append("index.json")
    if missing:
        pytest.fail(f"golden folder {path} is incomplete: missing {', '.join(missing)}")
    return path


@pytest.fixture(scope="session")
def golden_index(golden: Path) -> dict:
    return json.loads((golden / "index.json").read_text())
