"""``latent_original_order``: the original code's flat latent (split_latent's pieces; Glow's last one squeezed)."""

from __future__ import annotations

import torch

import flowood
from flowood.flows.reshape import squeeze2d


def _z(flow, shape):
    torch.manual_seed(0)
    return flow(torch.randn(2, *shape))[0].detach()


def test_realnvp_order_is_the_split_pieces_concatenated():
    flow = flowood.build_flow("realnvp", (1, 8, 8), num_scales=3, num_blocks=1, mid_channels=2)
    z = _z(flow, (1, 8, 8))
    pieces = flow.split_latent(z)
    assert [tuple(p.shape[1:]) for p in pieces] == [(2, 4, 4), (4, 2, 2), (4, 2, 2)]
    expected = torch.cat([p.flatten(1) for p in pieces], dim=1)
    assert torch.equal(flow.latent_original_order(z), expected)


def test_glow_last_piece_is_one_squeeze_further():
    flow = flowood.build_flow("glow", (1, 16, 16), num_scales=3, num_steps=1, num_blocks=1, mid_channels=4)
    z = _z(flow, (1, 16, 16))
    pieces = flow.split_latent(z)
    assert [tuple(p.shape[1:]) for p in pieces] == [(2, 8, 8), (4, 4, 4), (4, 4, 4)]
    flat = flow.latent_original_order(z)
    assert flat.shape == (2, 256)
    assert torch.equal(flat[:, 192:], squeeze2d(pieces[-1]).flatten(1))  # (16, 2, 2), as the original keeps it
    assert torch.equal(flat[:, :192], torch.cat([p.flatten(1) for p in pieces[:-1]], dim=1))
    assert torch.equal(flat.sort(dim=1).values, z.flatten(1).sort(dim=1).values)


def test_single_scale_flows_flatten_as_is():
    flow = flowood.build_flow("realnvp-cycle-mask", (1, 4, 4), num_blocks=1, mid_channels=2)
    z = _z(flow, (1, 4, 4))
    assert torch.equal(flow.latent_original_order(z), z.flatten(1))
