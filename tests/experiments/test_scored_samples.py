"""``flowood.experiments.scored_samples`` through the evaluation: report.json says what was scored: the split,
the limit and every conversion of an OOD set; a single
user ``.npz`` OOD file is scored whole (not cut to a "test" share)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flowood.experiments.evaluate import evaluate_run


def _digits(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)


def test_single_user_npz_is_scored_whole_and_its_conversion_recorded(tiny_run: Path, tmp_path: Path) -> None:
    grey = tmp_path / "grey28.npz"
    np.savez(grey, x=_digits(40, 28, 1))
    rgb = tmp_path / "rgb32.npz"
    np.savez(rgb, x=_digits(30, 32, 3, seed=1))
    report = evaluate_run(tiny_run, ood=[f"npz:{grey}", f"npz:{rgb}"], quiet=True, write=True).report

    same = report.ood[f"npz:{grey}"]
    assert same.bits_per_dim.n == 40  # all of it: a file without splits is not cut to 10 %
    assert same.samples is not None and same.samples.split == "all" and same.samples.conversions == ()
    other = report.ood[f"npz:{rgb}"]
    assert other.bits_per_dim.n == 30 and other.samples is not None
    notes = " ".join(other.samples.conversions)
    assert "3" in notes and "32" in notes and "28" in notes, notes  # RGB 32 px → grey 28 px, said so
    assert report.in_distribution.samples is not None and report.in_distribution.samples.split == "test"

    on_disk = json.loads((tiny_run / "report.json").read_text())
    assert on_disk["ood"][f"npz:{rgb}"]["samples"] == other.samples.to_json()
