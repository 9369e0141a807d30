"""The README's main command shows the paper's finding: the full-size demo, not a tiny stand-in."""

from __future__ import annotations

import pytest

from flowood.experiments.demo import run_demo


@pytest.mark.slow
def test_demo_shows_likelihood_failure(tmp_path):
    """About 80 s on 2 idle cores: one epoch of the demo RealNVP on the embedded FashionMNIST bundle."""
    report = run_demo(tmp_path / "demo", device="cpu", quiet=True)
    aurocs = report.aurocs("log_likelihood")
    assert aurocs["mnist-mini"] < 0.5, aurocs
    assert report.conclusion is not None and report.conclusion.startswith("The paper's finding holds")
