"""flowood.host_allocator: freed large CPU blocks are reused instead of faulted in again; opt-out and scope."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from flowood import host_allocator
from flowood.cli.app import main

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocate, touch and free a 64 MB tensor (a batch of activations) eight times; count page faults.
PROBE = """
import json, resource, sys, torch
from flowood.host_allocator import host_allocator_state, tune_host_allocator
if sys.argv[1] == "import":
    import flowood, flowood.cli.app, flowood.flows, flowood.ood, flowood.train.trainer  # what a library user imports
applied = tune_host_allocator() if sys.argv[1] == "tune" else False
torch.empty(1).fill_(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    x = torch.empty(16 * 1024 * 1024).fill_(1.0)
    del x
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "state": host_allocator_state(), "faults": faults}))
"""


def _probe(mode: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_tuned_allocator_reuses_freed_blocks_instead_of_faulting_them_in() -> None:
    default = _probe("default")
    tuned = _probe("tune")
    assert tuned["applied"] and tuned["state"] == "tuned" and default["state"] == "default"
    pages = 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
    # glibc's default unmaps each freed 64 MB block, so every iteration faults all its pages in again;
    # tuned, only the first does.
    assert default["faults"] >= 6 * pages, default
    assert tuned["faults"] <= 2 * pages, tuned


def test_opt_out_leaves_the_allocator_alone() -> None:
    result = _probe("tune", FLOWOOD_HOST_ALLOCATOR="default")
    assert result == {**result, "applied": False, "state": "default"}


def test_other_c_libraries_are_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(host_allocator.platform, "libc_ver", lambda: ("", ""))
    assert host_allocator.tune_host_allocator() is False


def test_cli_entry_point_tunes(monkeypatch, capsys) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(host_allocator, "tune_host_allocator", lambda: calls.append(True) or True)
    assert main(["presets", "--json"]) == 0
    assert calls == [True]
    capsys.readouterr()


@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_importing_flowood_changes_nothing_process_wide() -> None:
    imported = _probe("import")
    assert imported["state"] == "default"
    assert imported["faults"] >= 6 * 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE"), imported
