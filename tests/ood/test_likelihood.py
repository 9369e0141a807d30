"""``flowood.ood.likelihood``: per-sample bits/dim, reproducible for a seed and batch size, equal to the flow's
own; :func:`score_samples` (the one scoring loop) equals streaming the same batches by hand."""

from __future__ import annotations

import numpy as np
import torch

import flowood
from flowood.ood import score_bits_per_dim, score_samples


def test_score_bits_per_dim_reproducible_and_matches_flow():
    flow = flowood.build_flow("realnvp", (1, 4, 4), num_scales=2, num_blocks=1, mid_channels=4)
    images = torch.randint(0, 256, (10, 1, 4, 4)).float() / 255
    a = score_bits_per_dim(flow, [images[:6], images[6:]], seed=3)
    b = score_bits_per_dim(flow, [images], seed=3)
    assert a.shape == (10,)
    assert np.allclose(a, b)
    flow.eval()
    flow.set_dequantization_rng(torch.Generator().manual_seed(3))
    assert np.allclose(a, flow.bits_per_dim(images).detach().double().numpy(), atol=1e-5)


def test_score_samples_is_the_streamed_score_of_uint8_images_and_of_vectors():
    flow = flowood.build_flow("realnvp", (1, 4, 4), num_scales=2, num_blocks=1, mid_channels=4, init_zeros=False)
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    by_hand = score_bits_per_dim(
        flow, [images[:4].float() / 255, images[4:8].float() / 255, images[8:].float() / 255], seed=2
    )
    np.testing.assert_array_equal(score_samples(flow, images, batch_size=4, seed=2), by_hand)
    assert not np.allclose(score_samples(flow, images, batch_size=4, seed=3), by_hand)  # the seed matters
    table = flowood.build_flow("tabular", (3,), num_couplings=2, hidden_dim=4, num_layers=1)
    vectors = torch.randn(7, 3)
    double = score_samples(table, vectors, batch_size=3, transform=lambda x: 2 * x)
    np.testing.assert_allclose(double, score_bits_per_dim(table, [2 * vectors]), rtol=1e-6)
