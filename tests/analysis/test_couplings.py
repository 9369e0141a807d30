"""The claim-3 measurement: correlation helper, a coupling layer with a known answer, stats on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from flowood.analysis.couplings import (
    change_mask,
    cond_mask,
    coupling_inputs,
    coupling_layers,
    coupling_statistics,
    default_layer_indices,
    layer_statistics,
    pearson_rows,
)
from flowood.flows import build_flow
from flowood.flows.coupling import AffineCoupling

from .helpers import SHAPE, TINY_MODELS, disc_images, finite, tiny_flow


def test_pearson_rows_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3, 4))
    b = 0.5 * a + rng.normal(size=(5, 3, 4))
    r = pearson_rows(a, b)
    expected = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(5)]
    np.testing.assert_allclose(r, expected, rtol=1e-10)
    mask = np.zeros((3, 4), dtype=bool)
    mask[:, ::2] = True
    r_masked = pearson_rows(a, b, mask)
    np.testing.assert_allclose(r_masked[0], np.corrcoef(a[0][mask], b[0][mask])[0, 1], rtol=1e-10)
    np.testing.assert_allclose(pearson_rows(a, -2.0 * a + 3.0), -1.0)


def test_pearson_rows_constant_is_nan():
    a = np.ones((2, 10))
    b = np.arange(20.0).reshape(2, 10)
    assert np.isnan(pearson_rows(a, b)).all()


class NeighbourMeanSTNet(nn.Module):
    """An st-network whose t is ``sign ×`` the mean of the 4 neighbours (periodic borders) and whose s is 0.

    For a checkerboard coupling every neighbour of a transformed pixel is a conditioning pixel, so this is the
    paper's "interpolation" made exact.
    """

    def __init__(self, channels: int, sign: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            k = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
            for c in range(channels):
                self.conv.weight[channels + c, c] = sign * k  # t channels; raw_s channels stay 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _periodic_image(n: int = 16) -> torch.Tensor:
    # f(i) + g(j) with f, g sinusoids: the 4-neighbour mean is exactly (1 + cos(2π/n))/2 times the pixel value,
    # so −t is proportional to x on every transformed entry and the correlation is exactly 1.
    i = torch.arange(n, dtype=torch.float64)
    img = torch.sin(2 * math.pi * i / n)[:, None] + 0.5 * torch.cos(2 * math.pi * i / n)[None, :]
    return torch.stack([img, 2.0 * img + 1.0])[:, None].float()  # (2, 1, n, n)


@pytest.mark.parametrize(("sign", "expected"), [(-1.0, 1.0), (1.0, -1.0)])
def test_layer_statistics_known_case(sign, expected):
    layer = AffineCoupling("checkerboard", (1, 16, 16), lambda i, o: NeighbourMeanSTNet(i, sign), parity=0).eval()
    x = _periodic_image()
    stats = layer_statistics(layer, x)
    assert stats["corr_neg_t_x"] == pytest.approx(expected, abs=1e-5)
    assert stats["n_images"] == 2
    assert stats["mean_abs_s"] == 0.0
    if sign < 0:
        # x + t = x·(1 − (1+cos(2π/16))/2): the shift removes almost all of the signal.
        assert stats["residual_std_ratio"] == pytest.approx((1 - math.cos(2 * math.pi / 16)) / 2, rel=1e-4)


def test_identity_coupling_gives_undefined_correlation():
    # init_zeros=True makes t ≡ 0: a correlation with a constant is undefined (NaN), not 0.
    flow = build_flow("realnvp", SHAPE, **TINY_MODELS["realnvp"]).eval()
    rows = coupling_statistics(flow, {"mnist-mini": disc_images(2, 0)}, [0])
    assert math.isnan(rows[0]["corr_neg_t_x"]) and rows[0]["n_images"] == 0


@pytest.mark.parametrize("name", list(TINY_MODELS))
def test_coupling_statistics_are_finite(name):
    flow = tiny_flow(name)
    data = {"fashionmnist-mini": disc_images(5, 0), "glyphs": disc_images(5, 1)}
    layers = default_layer_indices(flow, count=2)
    rows = coupling_statistics(flow, data, layers, batch_size=3)  # two batches per dataset
    assert len(rows) == 2 * len(layers)
    for row in rows:
        assert row["dataset"] in data and row["layer"] in layers
        for key in ("corr_neg_t_x", "corr_neg_t_x_std", "residual_std_ratio", "mean_abs_s", "mean_abs_t"):
            assert finite(row[key]), (key, row)
        assert -1.0 <= row["corr_neg_t_x"] <= 1.0
        assert row["n_images"] == 5


def test_default_layers_prefer_checkerboard():
    assert default_layer_indices(tiny_flow("realnvp")) == [0, 1, 2]
    flow = tiny_flow("realnvp")
    layers = coupling_layers(flow)
    assert [layers[i].mask_type for i in default_layer_indices(flow, count=5)] == ["checkerboard"] * 5
    assert default_layer_indices(tiny_flow("glow")) == [0, 1, 2]  # only channel couplings: the first ones


def test_coupling_inputs_shapes_and_hooks_removed():
    flow = tiny_flow("realnvp")
    x, _ = flow.preprocess_images(disc_images(2, 0))
    inputs = coupling_inputs(flow, x, [0, 3, 6])
    assert inputs[0].shape == (2, 1, 16, 16)
    assert inputs[3].shape == (2, 4, 8, 8)
    assert inputs[6].shape == (2, 2, 8, 8)
    assert torch.equal(inputs[0], x)  # RealNVP's first layer sees the logit image itself
    assert all(not m._forward_pre_hooks for m in coupling_layers(flow))
    z, logdet = flow(x)  # still a normal forward pass afterwards
    assert z.shape == x.shape and torch.isfinite(logdet).all()


def test_change_mask_channel_parity():
    flow = tiny_flow("realnvp")
    layers = coupling_layers(flow)
    m0, m1 = change_mask(layers[3], (4, 8, 8)), change_mask(layers[4], (4, 8, 8))
    assert m0[:2].all() and not m0[2:].any()
    assert m1[2:].all() and not m1[:2].any()
    cb = change_mask(layers[0], (1, 16, 16))
    assert cb.sum() == 16 * 16 // 2


def test_cond_and_change_masks_are_disjoint():
    for name in TINY_MODELS:
        flow = tiny_flow(name)
        x, _ = flow.preprocess_images(disc_images(1, 0))
        layers = coupling_layers(flow)
        inputs = coupling_inputs(flow, x, range(len(layers)))
        for i, layer in enumerate(layers):
            shape = inputs[i].shape[1:]
            seen, changed = cond_mask(layer, shape), change_mask(layer, shape)
            assert not (seen & changed).any() and changed.any() and seen.any(), (name, i)
            # The st-network's view is exactly the conditioning entries.
            assert torch.equal(layer.internals(inputs[i]).cond_input[0][~seen], torch.zeros(int((~seen).sum())))
