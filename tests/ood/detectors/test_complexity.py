"""``flowood.ood.detectors.complexity``: compressed sizes, input complexity's arithmetic, the per-set means."""

from __future__ import annotations

import numpy as np
import pytest

from flowood.ood import detection_metrics
from flowood.ood.detectors import COMPRESSORS, compressed_bits_per_dim, get_detector, input_complexity
from tests.ood.detectors.fakes import FakeContext, near, samples


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
    in_images = rng.integers(0, 256, size=(30, 1, 16, 16), dtype=np.uint8)
    ood_images = np.zeros((30, 1, 16, 16), dtype=np.uint8)
    ood_images[:, :, 4:12, 4:12] = 200
    in_bpd = 6.0 + 0.1 * rng.standard_normal(30)
    ood_bpd = 4.0 + 0.1 * rng.standard_normal(30)
    assert detection_metrics(-in_bpd, -ood_bpd)["auroc"] == 0.0
    s_in = input_complexity(in_bpd, compressed_bits_per_dim(in_images))
    s_ood = input_complexity(ood_bpd, compressed_bits_per_dim(ood_images))
    assert detection_metrics(s_in, s_ood)["auroc"] == 1.0
    np.testing.assert_allclose(input_complexity(np.array([3.0]), np.array([5.0])), [2.0])


def test_detectors_subtract_the_model_and_report_each_sets_mean():
    images = np.random.default_rng(2).integers(0, 256, size=(20, 1, 8, 8), dtype=np.uint8)
    import torch

    s = samples("in", near(5.0, 20), torch.from_numpy(images))
    ic, cs = get_detector("input_complexity", compressor="zlib"), get_detector("compressed_size")
    for det in (ic, cs):
        det.fit(FakeContext())
    np.testing.assert_allclose(ic.score(s), compressed_bits_per_dim(images, "zlib") - s.bpd)
    np.testing.assert_allclose(cs.score(s), compressed_bits_per_dim(images, "png"))
    assert ic.facts()["compressor"] == "zlib" and ic.facts()["mean_compressed_bits_per_dim"]["in"] > 8.0
