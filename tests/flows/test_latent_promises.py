"""Multi-scale latent bookkeeping and sampling temperature, checked by behaviour (issue 15, item 7).

``split_latent`` must return, per scale, exactly the variables that scale factored out: changing the
layers *after* a factor-out may change only the later pieces. Sampling at temperature T draws the base
variable with standard deviation T.
"""

from __future__ import annotations

import pytest
import torch

import flowood
from flowood.flows.multiscale import FactorOut

from .helpers import randomize_

MULTISCALE = [
    ("realnvp", (1, 8, 8), dict(num_scales=2, num_blocks=1, mid_channels=4)),
    ("realnvp", (2, 8, 8), dict(num_scales=3, num_blocks=1, mid_channels=2)),
    ("glow", (1, 8, 8), dict(num_scales=2, num_steps=2, num_blocks=1, mid_channels=4)),
    ("glow", (3, 8, 8), dict(num_scales=3, num_steps=1, num_blocks=1, mid_channels=2)),
]
IDS = [f"{n}-{o['num_scales']}scales-{s[0]}ch" for n, s, o in MULTISCALE]


def _flow(name, shape, options, seed=0):
    torch.manual_seed(seed)
    flow = flowood.build_flow(name, shape, init_zeros=False, **options).double()
    flow.train()
    flow(torch.randn(8, *shape, dtype=torch.float64))  # data-dependent init (ActNorm)
    return randomize_(flow, scale=0.2, seed=seed).eval()


@pytest.mark.parametrize(("name", "shape", "options"), MULTISCALE, ids=IDS)
def test_split_latent_pieces_have_the_multiscale_shapes(name, shape, options):
    flow = _flow(name, shape, options)
    c, h, w = shape
    z, _ = flow(torch.randn(2, *shape, dtype=torch.float64))
    pieces = flow.split_latent(z)
    n = options["num_scales"]
    # Scale i squeezes (x4 channels, /2 size) and factors out half: 2^(i+1)·C channels at H / 2^(i+1).
    expected = [(2, 2 ** (i + 1) * c, h // 2 ** (i + 1), w // 2 ** (i + 1)) for i in range(n - 1)]
    expected.append(expected[-1])  # the coarsest scale keeps as many as its predecessor factored out
    assert [tuple(p.shape) for p in pieces] == expected
    assert sum(p[0].numel() for p in pieces) == z[0].numel()


@pytest.mark.parametrize(("name", "shape", "options"), MULTISCALE, ids=IDS)
def test_split_latent_piece_k_depends_only_on_scales_up_to_k(name, shape, options):
    """Perturbing the layers behind the k-th factor-out changes pieces k+1.. and leaves pieces ..k alone."""
    x = torch.randn(3, *shape, dtype=torch.float64)
    reference = _flow(name, shape, options)
    ref_pieces = reference.split_latent(reference(x)[0])
    levels = [m for m in reference.transform.modules() if isinstance(m, FactorOut)]  # outermost first
    assert len(levels) == options["num_scales"] - 1
    for k in range(len(levels)):
        flow = _flow(name, shape, options)
        inner = [m for m in flow.transform.modules() if isinstance(m, FactorOut)][k].inner
        randomize_(inner, scale=0.5, seed=100 + k)
        pieces = flow.split_latent(flow(x)[0])
        for i, (p, ref) in enumerate(zip(pieces, ref_pieces, strict=True)):
            if i <= k:
                assert torch.equal(p, ref), f"piece {i} changed when only the layers after factor-out {k} did"
            else:
                assert not torch.allclose(p, ref), f"piece {i} ignores the layers after factor-out {k}"


def test_split_latent_of_a_single_scale_flow_is_the_whole_latent():
    flow = _flow("realnvp", (1, 4, 4), dict(num_scales=1, num_blocks=1, mid_channels=2))
    z, _ = flow(torch.randn(2, 1, 4, 4, dtype=torch.float64))
    (piece,) = flow.split_latent(z)
    assert torch.equal(piece, z)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.5])
def test_sampling_temperature_scales_the_base_standard_deviation(temperature):
    torch.manual_seed(0)
    flow = flowood.build_flow("tabular", (4,), num_couplings=4, hidden_dim=8, num_layers=1, init_zeros=False)
    flow = randomize_(flow.double(), scale=0.2).eval()
    x = flow.sample(4000, temperature=temperature, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z, _ = flow(x)  # back to the base variable
    assert float(z.std()) == pytest.approx(temperature, rel=0.05)
    assert float(z.mean().abs()) < 0.05 * temperature


def test_image_samples_at_lower_temperature_are_likelier():
    flow = _flow("realnvp", (1, 8, 8), dict(num_scales=2, num_blocks=1, mid_channels=4))
    cold = flow.sample(200, temperature=0.5, generator=torch.Generator().manual_seed(0))
    warm = flow.sample(200, temperature=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(flow.log_prob(cold).mean()) > float(flow.log_prob(warm).mean())
