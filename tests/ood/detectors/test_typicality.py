"""``flowood.ood.detectors.typicality``: the batch test on a known Gaussian, fixed batches, the training mean,
M checked against every set before anything fits, and latent typicality's components."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowood.errors import ConfigError
from flowood.ood import detection_metrics
from flowood.ood.detectors import get_detector, typicality_batches, typicality_scores
from tests.ood.detectors.fakes import SHAPE, FakeContext, identity_flow, latent_set, near, samples


def test_typicality_flags_samples_near_the_mode_of_a_known_gaussian():
    """Under N(0, I_D), samples of N(0, 0.1² I) have *higher* likelihood than the training distribution's
    samples but are atypical: the per-sample likelihood fails, the typicality test on batches does not."""
    d, rng = 50, np.random.default_rng(0)

    def nll(x: np.ndarray) -> np.ndarray:
        return 0.5 * (x**2).sum(1) + 0.5 * d * math.log(2 * math.pi)

    train, test = rng.standard_normal((2000, d)), rng.standard_normal((500, d))
    shifted = 0.1 * rng.standard_normal((500, d))
    train_mean = float(nll(train).mean())
    assert train_mean == pytest.approx(0.5 * d * (1 + math.log(2 * math.pi)), rel=0.02)
    assert detection_metrics(-nll(test), -nll(shifted))["auroc"] < 0.01
    t_in = typicality_scores(nll(test), train_mean, typicality_batches(len(test), 5, 100, seed=0))
    t_ood = typicality_scores(nll(shifted), train_mean, typicality_batches(len(shifted), 5, 100, seed=1))
    assert t_in.shape == (100,) and np.all(t_in <= 0)
    assert detection_metrics(t_in, t_ood)["auroc"] > 0.99


def test_typicality_batches_are_fixed_and_distinct():
    b = typicality_batches(20, 7, 30, seed=5)
    assert b.shape == (30, 7) and b.dtype == np.int64
    assert all(len(set(row)) == 7 for row in b) and b.min() >= 0 and b.max() < 20
    np.testing.assert_array_equal(b, typicality_batches(20, 7, 30, seed=5))
    with pytest.raises(ValueError, match="at least M"):
        typicality_batches(3, 7, 1, seed=0)
    scores = typicality_scores(np.array([1.0, 3.0, np.nan]), 2.0, np.array([[0, 1], [0, 2]]))
    assert scores[0] == 0.0 and scores[1] == -np.inf


def test_both_tests_catch_too_likely_and_too_unlikely_sets_and_report_the_training_mean():
    train = samples("train", near(3.0, 400, sd=0.3))
    for name, settings in (("typicality", {"m": 5, "batches": 50}), ("typicality_m1", {})):
        det = get_detector(name, **settings)
        det.fit(FakeContext(train=train))
        in_s = samples("in", near(3.0, 200, sd=0.3, seed=1))
        for mean in (2.0, 4.0):
            ood = samples("ood", near(mean, 200, sd=0.3, seed=2))
            assert detection_metrics(det.score(in_s), det.score(ood))["auroc"] > (0.99 if settings else 0.9)
        assert det.facts()["train_mean_bits_per_dim"] == pytest.approx(train.bpd.mean())
    assert det.score(in_s).shape == (200,)


def test_m_larger_than_a_set_is_refused_before_fitting():
    det = get_detector("typicality", m=50)
    with pytest.raises(ConfigError, match="fewer than M=50"):
        det.check(FakeContext(), [samples("in", near(3.0, 100)), samples("ood", near(3.0, 20))])


def test_latent_typicality_reports_each_scale():
    flow = identity_flow()
    torch.manual_seed(3)
    in_s = latent_set("in", torch.randn(200, *SHAPE), flow)
    det = get_detector("latent_typicality")
    det.fit(FakeContext(flow=flow))
    for scale in (0.3, 1.8):  # latents too concentrated and too spread out
        ood = latent_set("ood", torch.randn(200, *SHAPE) * scale, flow)
        assert detection_metrics(det.score(in_s), det.score(ood))["auroc"] > 0.99
        comps = det.components(ood)
        assert set(comps) == {"scale_0", "scale_1"}
        assert detection_metrics(det.components(in_s)["scale_1"], comps["scale_1"])["auroc"] > 0.9
