"""Each score's arithmetic on data where the answer is known (no trained models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowood.errors import ConfigError
from flowood.ood import detection_metrics
from flowood.ood.detectors import (
    COMPRESSORS,
    DETECTORS,
    available_detectors,
    compressed_bits_per_dim,
    input_complexity,
    likelihood_ratio,
    mutate_images,
    typicality_batches,
    typicality_scores,
    waic,
)
from flowood.ood.detectors import parse_detectors as parse_scores

ISSUE_SCORES = {
    "log_likelihood",
    "bits_per_dim",
    "likelihood_ratio",
    "input_complexity",
    "typicality",
    "typicality_m1",
    "waic",
    "embedding_likelihood",
    "dose",
    "per_scale",
    "latent_typicality",
    "compressed_size",
    "embedding_gaussian",
    "general_likelihood_ratio",
}
NEEDS_USER_SETTING = {"general_likelihood_ratio"}


def test_registry_documents_every_score():
    assert set(available_detectors()) == ISSUE_SCORES
    for cls in DETECTORS.values():
        d = cls.info.describe()
        assert d["direction"] and d["cost"] and d["reference"] and d["summary"] and d["units"]


def test_parse_scores():
    assert parse_scores(None) == ["log_likelihood"]
    assert parse_scores("waic,typicality,waic") == ["log_likelihood", "waic", "typicality"]
    assert parse_scores(["input_complexity", "bits_per_dim,log_likelihood"]) == [
        "log_likelihood",
        "input_complexity",
        "bits_per_dim",
    ]
    assert set(parse_scores("all")) == ISSUE_SCORES - NEEDS_USER_SETTING
    with pytest.raises(ConfigError, match="unknown score 'wiac'"):
        parse_scores("wiac")


# --------------------------------------------------------------------------------------------- likelihood ratio


def test_mutation_replaces_a_fraction_mu_of_values():
    images = np.zeros((200, 1, 28, 28), dtype=np.uint8)
    for rate in (0.1, 0.2, 0.5):
        out = mutate_images(images, rate, seed=3)
        assert out.dtype == np.uint8 and out.shape == images.shape
        # A replaced value equals the old one (0) with probability 1/256.
        changed = float((out != images).mean())
        assert changed == pytest.approx(rate * 255 / 256, abs=0.005)
        # Replacements are uniform on 0..255: mean of the replaced (non-zero) values is about 128.
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
    expected = -0.5 * x**2 + (x / 3) ** 2 / 2 + math.log(3)
    np.testing.assert_allclose(likelihood_ratio(log_model, log_bg), expected)
    # A sample the background explains better than the model gets a low score.
    assert likelihood_ratio(log_model, log_bg)[3] < 0 < likelihood_ratio(log_model, log_bg)[1]
    with pytest.raises(ValueError, match="shape"):
        likelihood_ratio(np.zeros(3), np.zeros(4))


# --------------------------------------------------------------------------------------------- input complexity


def test_png_size_of_constant_vs_noise_images():
    rng = np.random.default_rng(0)
    constant = np.full((4, 1, 28, 28), 17, dtype=np.uint8)
    noise = rng.integers(0, 256, size=(4, 1, 28, 28), dtype=np.uint8)
    for name in COMPRESSORS:
        c = compressed_bits_per_dim(constant, name)
        n = compressed_bits_per_dim(noise, name)
        assert c.shape == (4,) and np.all(c < 1.5), (name, c)
        assert np.all(n > 7.9), (name, n)  # incompressible: about 8 bits per value plus container overhead
    rgb = rng.integers(0, 256, size=(2, 3, 8, 8), dtype=np.uint8)
    assert compressed_bits_per_dim(rgb).shape == (2,)
    with pytest.raises(ValueError, match="uint8"):
        compressed_bits_per_dim(constant.astype(np.float32))
    with pytest.raises(ValueError, match="unknown compressor"):
        compressed_bits_per_dim(constant, "zip")


def test_input_complexity_corrects_the_likelihood_failure():
    """OOD images that are simpler get higher likelihood (the failure) but lose once complexity is subtracted."""
    rng = np.random.default_rng(1)
    in_images = rng.integers(0, 256, size=(30, 1, 16, 16), dtype=np.uint8)  # complex in-distribution data
    ood_images = np.zeros((30, 1, 16, 16), dtype=np.uint8)
    ood_images[:, :, 4:12, 4:12] = 200  # simple OOD data
    in_bpd = 6.0 + 0.1 * rng.standard_normal(30)  # the model gives the simple images higher likelihood
    ood_bpd = 4.0 + 0.1 * rng.standard_normal(30)
    assert detection_metrics(-in_bpd, -ood_bpd)["auroc"] == 0.0
    s_in = input_complexity(in_bpd, compressed_bits_per_dim(in_images))
    s_ood = input_complexity(ood_bpd, compressed_bits_per_dim(ood_images))
    assert detection_metrics(s_in, s_ood)["auroc"] == 1.0
    np.testing.assert_allclose(input_complexity(np.array([3.0]), np.array([5.0])), [2.0])


# --------------------------------------------------------------------------------------------- typicality


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
    assert detection_metrics(-nll(test), -nll(shifted))["auroc"] < 0.01  # likelihood fails
    m = 5
    b_in = typicality_batches(len(test), m, 100, seed=0)
    b_ood = typicality_batches(len(shifted), m, 100, seed=1)
    t_in = typicality_scores(nll(test), train_mean, b_in)
    t_ood = typicality_scores(nll(shifted), train_mean, b_ood)
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


# --------------------------------------------------------------------------------------------- WAIC


def test_waic_is_mean_minus_variance_over_members():
    members = np.array([[-10.0, -5.0, -5.0], [-10.0, -5.0, -1.0], [-10.0, -5.0, -9.0]])
    np.testing.assert_allclose(waic(members), [-10.0, -5.0, -5.0 - 32.0 / 3.0])
    # Agreeing members beat a higher-mean but disagreeing sample.
    agree, disagree = waic(np.array([[-6.0, 0.0], [-6.0, -10.0]]))  # means -6 and -5, variances 0 and 25
    assert agree == -6.0 and disagree == -30.0 and agree > disagree
    np.testing.assert_allclose(waic(np.array([[1.0, 2.0]])), [1.0, 2.0])
    with pytest.raises(ValueError, match="K, N"):
        waic(np.zeros(3))
