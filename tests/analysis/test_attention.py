"""Attention recording and the mean attention distance (flowood.analysis.attention)."""

from __future__ import annotations

import math

import pytest
import torch

from flowood.analysis.attention import (
    attention_distances,
    attention_layers,
    grid_positions,
    mean_attention_distance,
    recorded_attention,
    uniform_distance,
)
from flowood.flows import build_flow
from flowood.flows.transformer import SelfAttention


def tiny(name: str, **extra):
    opts = {"patch_size": 2, "num_layers": 1, "width": 8, "heads": 2}
    opts.update({"num_blocks": 2} if name == "tarflow" else {"num_couplings": 2})
    torch.manual_seed(0)
    flow = build_flow(name, (1, 8, 8), **{**opts, **extra})
    # Away from the zero-initialised identity, so that attention and outputs are not trivial.
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.eval()


def test_distance_of_hand_made_patterns():
    pos = grid_positions(2, 2)  # (0,0) (0,1) (1,0) (1,1)
    assert pos.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    eye = torch.eye(4)
    assert float(mean_attention_distance(eye, pos)) == 0.0  # every token attends to itself
    diagonal = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    assert float(mean_attention_distance(diagonal, pos)) == pytest.approx(math.sqrt(2))  # the opposite corner
    swap_columns = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float64)
    half = 0.5 * eye + 0.5 * swap_columns  # half on itself, half on its horizontal neighbour
    assert float(mean_attention_distance(half, pos)) == pytest.approx(0.5)
    # rows (queries 0, 1) weigh the opposite corner, rows 2, 3 themselves: mean of sqrt 2, sqrt 2, 0, 0
    mixed = torch.cat([diagonal[:2], eye[2:].double()])
    assert float(mean_attention_distance(mixed, pos)) == pytest.approx(math.sqrt(2) / 2)
    # uniform attention over a 2x2 grid: distances 0, 1, 1, sqrt 2 from every query
    assert uniform_distance(pos, causal=False) == pytest.approx((2 + math.sqrt(2)) / 4)
    # causal: query 0 sees itself, 1 sees {0, 1}, 2 sees {0, 1, 2}, 3 sees all
    causal = (0 + 1 / 2 + (1 + math.sqrt(2)) / 3 + (2 + math.sqrt(2)) / 4) / 4
    assert uniform_distance(pos, causal=True) == pytest.approx(causal)
    # leading dimensions (heads) are kept
    assert mean_attention_distance(torch.stack([eye.double(), diagonal]), pos).shape == (2,)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_probs_are_the_ones_forward_applies(causal):
    torch.manual_seed(1)
    attn = SelfAttention(8, 2)
    h = torch.randn(3, 5, 8)
    probs = attn.attention_probs(h, causal)
    assert probs.shape == (3, 2, 5, 5)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 2, 5))
    if causal:
        assert probs.triu(1).abs().max() == 0
    v = attn.qkv(h).reshape(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)[2]
    rebuilt = attn.proj((probs @ v).transpose(1, 2).reshape(3, 5, 8))
    assert torch.allclose(rebuilt, attn(h, causal), atol=1e-6)


@pytest.mark.parametrize("name", ["tarflow", "jet"])
def test_recording_does_not_change_the_function(name):
    flow = tiny(name, **({"spatial_every": 2} if name == "jet" else {}))
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        xin = flow.preprocess_images(x)[0]
        plain = flow.log_prob(xin)
        layers = attention_layers(flow)
        with recorded_attention(layers) as records:
            recorded = flow.log_prob(xin)
        after = flow.log_prob(xin)
    assert torch.equal(plain, recorded) and torch.equal(plain, after)
    assert all(len(r) == 1 and r[0].shape[0] == 4 for r in records)
    assert all(not lay.attention._forward_hooks for lay in layers)  # hooks removed


def test_positions_follow_each_layers_token_order():
    tar = attention_layers(tiny("tarflow"))
    grid = grid_positions(4, 4)
    assert [lay.causal for lay in tar] == [True, True]
    assert torch.equal(tar[0].positions, grid) and torch.equal(tar[1].positions, grid.flip(0))  # block 1 reversed
    jet = attention_layers(tiny("jet", spatial_every=2))
    assert not jet[0].causal and torch.equal(jet[0].positions, grid)  # channel coupling: all tokens
    # spatial (checkerboard) coupling: only the 8 conditioning tokens, where they lie on the grid
    assert jet[1].positions.shape == (8, 2) and bool(((jet[1].positions.sum(1)) % 2 == 0).all())


def test_attention_distances_per_block_and_refusal_without_transformer():
    flow = tiny("tarflow")
    d = attention_distances(flow, torch.rand(5, 1, 8, 8), batch_size=2)
    assert d.per_head.shape == (2, 2) and list(d.blocks) == [0, 1]
    summary = d.per_block()
    assert set(summary) == {0, 1}
    for row in summary.values():
        assert 0 < row["distance"] < 4 * math.sqrt(2) and row["uniform"] > 0
    # the mean over images does not depend on the batching (the noise is drawn once, seeded)
    x = torch.rand(4, 1, 8, 8)
    whole = torch.as_tensor(attention_distances(flow, x, batch_size=4).per_head)
    assert torch.allclose(whole, torch.as_tensor(attention_distances(flow, x, batch_size=1).per_head), atol=1e-6)
    assert not torch.allclose(whole, torch.as_tensor(attention_distances(flow, x, seed=1).per_head), atol=1e-6)
    with pytest.raises(ValueError, match="no Transformer"):
        attention_layers(build_flow("realnvp", (1, 8, 8), num_scales=1, num_blocks=1, mid_channels=4))
