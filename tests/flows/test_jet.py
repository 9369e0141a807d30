"""Jet (flowood.flows.jet): the channel split and its per-coupling permutations, non-causal conditioning, the
spatial couplings' token patterns, the bounded scale, the identity at initialisation, the options reaching the
network, the inverse on real images, and its errors. The generic contract is tests/contracts/test_flows.py."""

from __future__ import annotations

import math

import pytest
import torch

import flowood
from flowood.flows.jet import SPATIAL_PATTERNS, JetCoupling, spatial_split
from flowood.flows.transformer import SelfAttention, TransformerLayer

from .helpers import assert_one_line_model_error, batch_jacobian, randomize_, real_image_round_trip_error

SMALL = {"num_layers": 1, "width": 8, "heads": 2}


def _couplings(flow: torch.nn.Module) -> list[JetCoupling]:
    return [m for m in flow.modules() if isinstance(m, JetCoupling)]


def test_channel_coupling_changes_half_the_features_from_the_other_half_of_every_token() -> None:
    torch.manual_seed(0)
    c = JetCoupling(3, 4, index=0, grid=(1, 3), spatial=None, scale_factor=2.0, mlp_ratio=2, **SMALL).double()
    randomize_(c, scale=0.3)
    cond, change = c.cond_index.tolist(), c.change_index.tolist()
    assert sorted(cond + change) == [0, 1, 2, 3] and len(cond) == 2
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    jac = batch_jacobian(lambda inp: c(inp)[0], x)[0, :, 0, :].reshape(3, 4, 3, 4)
    for t in range(3):
        for s in range(3):
            # conditioning features pass unchanged; changed features never read other changed features
            expected = torch.eye(2, dtype=torch.float64) if s == t else torch.zeros(2, 2, dtype=torch.float64)
            assert torch.equal(jac[t][cond][:, s][:, cond], expected)
            assert torch.all(jac[t][cond][:, s][:, change] == 0)
            block = jac[t][change][:, s][:, change]
            assert torch.equal(block, torch.diag(torch.diagonal(block))) if s == t else torch.all(block == 0)
            # non-causal: every token's changed features read every token's conditioning features
            assert jac[t][change][:, s][:, cond].abs().max() > 0
    _, logdet = c(x)
    diag = torch.stack([torch.diagonal(jac[t, :, t, :]) for t in range(3)])
    assert torch.allclose(logdet, diag.log().sum().reshape(1), atol=1e-12)


def test_each_coupling_has_its_own_permutation_fixed_by_the_configuration() -> None:
    flow = flowood.build_flow("jet", (3, 8, 8), patch_size=2, num_couplings=6, **SMALL)
    splits = [tuple(c.change_index.tolist()) for c in _couplings(flow)]
    assert len(set(splits)) == 6  # twelve features: six random halves are distinct
    for c in _couplings(flow):
        assert sorted(c.cond_index.tolist() + c.change_index.tolist()) == list(range(12))
    torch.manual_seed(123)  # the global RNG does not choose the permutations: a rebuilt flow has the same ones
    again = flowood.build_flow("jet", (3, 8, 8), patch_size=2, num_couplings=6, **SMALL)
    assert [tuple(c.change_index.tolist()) for c in _couplings(again)] == splits
    assert "change_index" not in "".join(flow.state_dict())  # a function of the configuration, not state


def test_spatial_couplings_split_tokens_by_the_papers_patterns_in_turn() -> None:
    cond, change = spatial_split(2, 4, "checkerboard")
    assert cond.tolist() == [0, 2, 5, 7] and change.tolist() == [1, 3, 4, 6]
    assert spatial_split(2, 4, "checkerboard-inv")[0].tolist() == [1, 3, 4, 6]
    assert spatial_split(2, 4, "vstripes")[0].tolist() == [0, 2, 4, 6]
    assert spatial_split(2, 4, "hstripes")[0].tolist() == [0, 1, 2, 3]
    flow = flowood.build_flow("jet", (1, 8, 8), patch_size=2, num_couplings=15, spatial_every=2, **SMALL)
    kinds = [c.spatial for c in _couplings(flow)]
    assert kinds[0::2] == [None] * 8
    assert kinds[1::2] == [*SPATIAL_PATTERNS, SPATIAL_PATTERNS[0]]


def test_a_fresh_jet_is_the_identity_and_its_scale_is_bounded_by_scale_factor() -> None:
    x = torch.randn(2, 1, 8, 8)
    fresh = flowood.build_flow("jet", (1, 8, 8), patch_size=2, num_couplings=2, **SMALL)  # s = 2·sigmoid(0) = 1
    z, logdet = fresh(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(2))
    flow = flowood.build_flow("jet", (1, 8, 8), patch_size=2, num_couplings=2, scale_factor=3.0, **SMALL)
    with torch.no_grad():
        for c in _couplings(flow):
            c.net.proj_out.bias.fill_(50.0)  # raw scale → +∞: s → scale_factor
    _, logdet = flow(x)
    # 2 couplings × 16 tokens × 2 changed features, each log 3
    assert torch.allclose(logdet, torch.full((2,), 2 * 16 * 2 * math.log(3.0)), rtol=1e-5)


def test_options_reach_the_network() -> None:
    flow = flowood.build_flow(
        "jet", (3, 8, 8), patch_size=4, num_couplings=3, num_layers=2, width=24, heads=3, mlp_ratio=2
    )
    couplings = _couplings(flow)
    assert len(couplings) == 3
    layers = [m for m in couplings[0].modules() if isinstance(m, TransformerLayer)]
    assert len(layers) == 2 and layers[0].mlp[0].out_features == 48
    net = couplings[0].net
    assert net.proj_in.in_features == 24 and net.proj_out.out_features == 2 * 24  # 48 features split 24 / 24
    assert net.pos.shape == (4, 24)
    assert {m.heads for m in flow.modules() if isinstance(m, SelfAttention)} == {3}


def test_inverse_is_exact_on_real_images_in_float32() -> None:
    options = {"patch_size": 4, "num_couplings": 8, "num_layers": 1, "width": 32, "heads": 4}
    assert real_image_round_trip_error("jet", options, scale=0.1) <= 1e-4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 1}, "jet needs at least 2 values per token"),
        ({"patch_size": 4, "spatial_every": 5}, "needs an even token count, got 7x7 tokens"),
        ({"scale_factor": 0}, "model.scale_factor must be > 0, got 0"),
        ({"width": 10, "heads": 4}, "model.heads must divide width=10, got 4"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict, message: str) -> None:
    assert_one_line_model_error("jet", options, (1, 28, 28), message)
