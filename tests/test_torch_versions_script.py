"""scripts/test_torch_versions.sh: argument checks, venv naming, PASS/FAIL summary and exit status.

The real script downloads PyTorch wheels; here every Python it calls is a stub that records its
arguments, so the script's own logic runs offline in milliseconds.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.tiny import HANG_SECONDS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "test_torch_versions.sh"

STUB = """#!/usr/bin/env bash
echo "$*" >> "{log}"
case "$*" in
  "-c import sys;"*) echo 3.10 ;;
  *"-m pytest"*) if [ -f "{fail}" ]; then echo "1 failed, 2 passed in 0.1s"; exit 1; else echo "3 passed in 0.1s"; fi ;;
  *"-c import platform"*) echo "Python 3.10.13 torch $(cat "{torch}") torchvision x numpy y" ;;
esac
exit 0
"""


def _stub(path: Path, tmp_path: Path, torch_version: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"torch-{torch_version}").write_text(torch_version)
    path.write_text(
        STUB.format(log=tmp_path / "calls.log", fail=tmp_path / "fail-tests", torch=tmp_path / f"torch-{torch_version}")
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": str(tmp_path / "python"), "COMPAT_ROOT": str(tmp_path / "compat")}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=HANG_SECONDS)


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    _stub(tmp_path / "python", tmp_path, "none")
    for version in ("2.4.1", "2.11.0"):
        # An existing venv is reused, so the stub stands in for the venv's interpreter.
        _stub(tmp_path / "compat" / f"py3.10-torch-{version}" / "bin" / "python", tmp_path, version)
    return tmp_path


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_default_versions_pass_and_pin_torch(stubs: Path) -> None:
    done = _run(stubs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS Python 3.10.13 torch 2.4.1" in done.stdout
    assert "PASS Python 3.10.13 torch 2.11.0" in done.stdout
    calls = (stubs / "calls.log").read_text()
    # flowood is installed with torch pinned next to it, so pip cannot upgrade torch past the version under test.
    assert "-m pip install --quiet -e .[dev] torch==2.4.1 torchvision==0.19.1" in calls
    assert "-m pip install --quiet -e .[dev] torch==2.11.0 torchvision==0.26.0" in calls


def test_failing_suite_is_reported_and_counted(stubs: Path) -> None:
    (stubs / "fail-tests").write_text("")
    done = _run(stubs, "2.4.1=0.19.1")
    assert done.returncode == 1
    assert "FAIL Python 3.10.13 torch 2.4.1" in done.stdout and "1 failed, 2 passed" in done.stdout
    assert "pytest.log" in done.stdout


@pytest.mark.parametrize("bad", ["2.4.1", "2.4.1="])
def test_bad_argument_names_the_expected_form(stubs: Path, bad: str) -> None:
    done = _run(stubs, bad)
    assert done.returncode == 2
    assert f"bad argument '{bad}'" in done.stderr and "TORCH=TORCHVISION" in done.stderr
