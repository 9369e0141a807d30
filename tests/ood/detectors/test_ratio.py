"""``flowood.ood.detectors.ratio``: the mutation of Ren et al., the ratio's arithmetic, which auxiliary model it
asks for, and the general model's refusals (before anything trains)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowood.errors import ConfigError, DatasetError
from flowood.ood.detectors import get_detector, likelihood_ratio, mutate_images
from tests.ood.detectors.fakes import LN2, D, FakeContext, KnownFlow, near, samples


def test_mutation_replaces_a_fraction_mu_of_values():
    images = np.zeros((200, 1, 28, 28), dtype=np.uint8)
    for rate in (0.1, 0.2, 0.5):
        out = mutate_images(images, rate, seed=3)
        assert out.dtype == np.uint8 and out.shape == images.shape
        # A replaced value equals the old one (0) with probability 1/256.
        assert float((out != images).mean()) == pytest.approx(rate * 255 / 256, abs=0.005)
        # Replacements are uniform on 0..255: the mean of the replaced (non-zero) values is about 128.
        assert out[out != 0].mean() == pytest.approx(128.0, abs=3.0)
    assert np.array_equal(mutate_images(images, 0.0), images)
    assert np.array_equal(mutate_images(images, 0.2, seed=1), mutate_images(images, 0.2, seed=1))
    assert not np.array_equal(mutate_images(images, 0.2, seed=1), mutate_images(images, 0.2, seed=2))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        mutate_images(images, 1.5)


def test_likelihood_ratio_of_two_known_gaussians():
    """Model N(0, 1), background N(0, 3²): the ratio is the closed-form log N(x;0,1) - log N(x;0,9)."""
    x = np.array([-2.0, 0.0, 0.5, 4.0])
    log_model = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
    log_bg = -0.5 * (x / 3) ** 2 - 0.5 * math.log(2 * math.pi) - math.log(3)
    np.testing.assert_allclose(likelihood_ratio(log_model, log_bg), -0.5 * x**2 + (x / 3) ** 2 / 2 + math.log(3))
    with pytest.raises(ValueError, match="shape"):
        likelihood_ratio(np.zeros(3), np.zeros(4))


def test_the_detector_is_model_nats_minus_the_background_it_asked_for():
    in_s = samples("in", near(3.0))
    bg = KnownFlow({"in": -near(3.5, seed=2) * D * LN2})
    det = get_detector("likelihood_ratio", mutation_rate=0.3, mutation_copies=2)
    ctx = FakeContext(background=bg)
    det.fit(ctx)
    assert ctx.asked == [("background", 0.3, 2)]
    np.testing.assert_allclose(det.score(in_s), -in_s.bpd * D * LN2 - bg.nats_by_key["in"])
    assert det.facts()["mutation_rate"] == 0.3 and det.facts()["dir"] == "known"


def test_general_likelihood_ratio_refuses_before_anything_trains():
    ctx = FakeContext(evaluated=["mnist-mini"], in_dataset="fashionmnist-mini")
    cases = [
        ({}, ConfigError, "--general-dataset"),
        ({"dataset": "mnist-mini"}, ConfigError, "is an OOD set under evaluation"),
        ({"dataset": "fashionmnist-mini"}, ConfigError, "in-distribution dataset itself"),
        ({"dataset": "imagenet1000"}, DatasetError, "unknown dataset 'imagenet1000'"),
    ]
    for settings, error, words in cases:
        with pytest.raises(error, match=words):
            get_detector("general_likelihood_ratio", **settings).check(ctx, [])
    assert ctx.asked == []
    get_detector("general_likelihood_ratio", dataset="glyphs").check(ctx, [])
