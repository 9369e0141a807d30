"""TarFlow (flowood.flows.tarflow): its autoregressive structure, the alternating token order, the identity at
initialisation, the options reaching the network, the KV-cached inverse on real images, and its errors. The
generic contract (round trip, log-det vs autograd, ...) is tests/contracts/test_flows.py."""

from __future__ import annotations

import pytest
import torch

import flowood
from flowood.flows.tarflow import TarFlowBlock
from flowood.flows.transformer import SelfAttention, TransformerLayer

from .helpers import assert_one_line_model_error, batch_jacobian, randomize_, real_image_round_trip_error


def _block(reverse: bool) -> TarFlowBlock:
    torch.manual_seed(0)
    block = TarFlowBlock(4, 2, width=8, num_layers=2, heads=2, mlp_ratio=2, reverse=reverse).double()
    return randomize_(block, scale=0.3)


@pytest.mark.parametrize("reverse", [False, True])
def test_a_block_is_autoregressive_in_its_reading_order(reverse: bool) -> None:
    """Token t's output depends on tokens read before it and (elementwise) on itself only: the Jacobian is
    block-triangular with diagonal diagonal blocks, and the first token read passes unchanged."""
    block = _block(reverse)
    x = torch.randn(1, 4, 2, dtype=torch.float64)
    jac = batch_jacobian(lambda inp: block(inp)[0], x)[0, :, 0, :].reshape(4, 2, 4, 2)
    order = [3, 2, 1, 0] if reverse else [0, 1, 2, 3]
    for i, t in enumerate(order):
        for s in order[i + 1 :]:
            assert torch.all(jac[t, :, s, :] == 0), f"token {t} depends on later token {s}"
        assert torch.all(jac[t, :, t, :] == torch.diag(torch.diagonal(jac[t, :, t, :])))
        for s in order[:i]:
            if i > 0:
                assert jac[t, :, s, :].abs().max() > 0, f"token {t} ignores earlier token {s}"
    assert torch.equal(jac[order[0], :, order[0], :], torch.eye(2, dtype=torch.float64))
    # log-det: -sum of the log-scales = the log of the product of the Jacobian's diagonal
    _, logdet = block(x)
    diag = torch.stack([torch.diagonal(jac[t, :, t, :]) for t in range(4)])
    assert torch.allclose(logdet, diag.log().sum().reshape(1), atol=1e-12)


def test_token_order_alternates_between_blocks() -> None:
    flow = flowood.build_flow("tarflow", (1, 4, 4), patch_size=2, num_blocks=3, num_layers=1, width=8, heads=2)
    assert [b.reverse for b in flow.modules() if isinstance(b, TarFlowBlock)] == [False, True, False]
    # After a forward and a reversed block, the first token's latent depends on the last token.
    two = randomize_(
        flowood.build_flow("tarflow", (1, 4, 4), patch_size=2, num_blocks=2, num_layers=1, width=8, heads=2).double()
    )
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    jac = batch_jacobian(lambda inp: two(inp)[0], x)[0, :, 0, :].reshape(4, 4, 4, 4)
    assert jac[0:2, 0:2, 2:4, 2:4].abs().max() > 0  # top-left patch's latent reads the bottom-right patch


def test_a_fresh_tarflow_is_the_identity() -> None:
    flow = flowood.build_flow("tarflow", (1, 8, 8), patch_size=2, num_blocks=2, num_layers=1, width=16, heads=4)
    x = torch.randn(3, 1, 8, 8)
    z, logdet = flow(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(3))


def test_options_reach_the_network() -> None:
    flow = flowood.build_flow(
        "tarflow", (3, 8, 8), patch_size=4, num_blocks=3, num_layers=2, width=24, heads=3, mlp_ratio=2
    )
    blocks = [m for m in flow.modules() if isinstance(m, TarFlowBlock)]
    assert len(blocks) == 3
    layers = [m for m in blocks[0].modules() if isinstance(m, TransformerLayer)]
    assert len(layers) == 2 and layers[0].mlp[0].out_features == 48
    assert blocks[0].proj_in.in_features == 4 * 4 * 3 and blocks[0].proj_in.out_features == 24
    assert blocks[0].pos.shape == (4, 24)  # (8/4)^2 tokens
    assert {m.heads for m in flow.modules() if isinstance(m, SelfAttention)} == {3}
    assert flow.latent_keeps == [] and len(flow.split_latent(torch.zeros(1, 3, 8, 8))) == 1


def test_inverse_is_exact_on_real_images_in_float32() -> None:
    """Issue 24's target: the KV-cached inverse is exact to <= 1e-4 in float32 on FashionMNIST images (the
    embedded test set) through a flow that is far from the identity."""
    options = {"patch_size": 4, "num_blocks": 4, "num_layers": 2, "width": 32, "heads": 4}
    # larger random weights than 0.02 compound over the blocks into overflow
    assert real_image_round_trip_error("tarflow", options, scale=0.02) <= 1e-4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 3}, "tarflow with patch_size=3 needs H and W divisible by it, got 28x28"),
        ({"width": 30, "heads": 4}, "model.heads must divide width=30, got 4"),
        ({"num_blocks": 0}, "model.num_blocks must be >= 1, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict, message: str) -> None:
    assert_one_line_model_error("tarflow", options, (1, 28, 28), message)
