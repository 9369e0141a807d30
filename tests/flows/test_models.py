"""Architecture variants (bottleneck st-nets, plain 1x1 convolutions, three scales, ActNorm) through the same
round-trip / log-det / sampling checks, and specific behaviour of the named architectures: the 8-bit likelihood
of an identity flow by hand, batch-norm eval mode, the multi-scale latent split, the paper presets' parameter
counts, clear errors. The contract every registered flow keeps at its tiny size is ``tests/contracts/test_flows.py``."""

from __future__ import annotations

import math

import pytest
import torch

import flowood
from flowood.train.presets import PRESETS, preset_parameter_count

from .helpers import full_logdet, per_sample_logdet, randomize_

VARIANTS = [
    (
        "realnvp-bottleneck",
        "realnvp",
        (1, 4, 4),
        dict(num_scales=2, num_blocks=2, mid_channels=4, st_net="bottleneck", bottleneck_dim=3),
    ),
    (
        "glow-bottleneck",
        "glow",
        (1, 4, 4),
        dict(num_scales=1, num_steps=2, num_blocks=2, mid_channels=4, st_net="bottleneck", bottleneck_dim=3),
    ),
    (
        "glow-plain-invconv",
        "glow",
        (2, 4, 4),
        dict(num_scales=1, num_steps=2, num_blocks=1, mid_channels=4, lu_decomposed=False),
    ),
    (
        "realnvp-3scales-convnet",
        "realnvp",
        (1, 8, 8),
        dict(num_scales=3, num_blocks=1, mid_channels=2, st_net="convnet"),
    ),
    ("cycle-highway", "realnvp-cycle-mask", (1, 4, 4), dict(num_blocks=1, mid_channels=4, st_net="highway")),
    ("tabular-actnorm", "tabular", (5,), dict(num_couplings=3, hidden_dim=8, num_layers=1, actnorm=True)),
]
CASES = VARIANTS
IDS = [c[0] for c in CASES]


def _flow(name, shape, options, seed=0):
    torch.manual_seed(seed)
    flow = flowood.build_flow(name, shape, init_zeros=False, **options).double()
    flow.train()
    flow(torch.randn(8, *shape, dtype=torch.float64))  # data-dependent init (ActNorm)
    return randomize_(flow, scale=0.2, seed=seed)


def test_available_flows_lists_the_paper_models():
    names = flowood.available_flows()
    for required in ("realnvp", "glow", "realnvp-cycle-mask", "realnvp-horizontal-mask", "tabular"):
        assert required in names


@pytest.mark.parametrize(("case", "name", "shape", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_roundtrip(case, name, shape, options, mode):
    flow = _flow(name, shape, options)
    flow.train(mode == "train")
    x = torch.randn(4, *shape, dtype=torch.float64)
    z, logdet = flow(x)
    assert z.shape == x.shape and logdet.shape == (4,)
    assert torch.allclose(flow.inverse(z), x, atol=1e-6)


@pytest.mark.parametrize(("case", "name", "shape", "options"), CASES, ids=IDS)
def test_model_logdet_matches_autograd(case, name, shape, options):
    flow = _flow(name, shape, options).eval()
    x = torch.randn(2, *shape, dtype=torch.float64)
    _, logdet = flow(x)
    expected = per_sample_logdet(lambda inp: flow(inp)[0], x)
    assert torch.allclose(logdet, expected, atol=1e-7), (logdet, expected)


@pytest.mark.parametrize(("case", "name", "shape", "options"), CASES, ids=IDS)
def test_model_logdet_matches_autograd_train_mode(case, name, shape, options):
    flow = _flow(name, shape, options).train()
    x = torch.randn(2, *shape, dtype=torch.float64)
    _, logdet = flow(x)
    assert torch.allclose(logdet.sum(), full_logdet(lambda inp: flow(inp)[0], x), atol=1e-7)


@pytest.mark.parametrize(("case", "name", "shape", "options"), CASES, ids=IDS)
def test_log_prob_is_base_plus_logdet_and_sampling(case, name, shape, options):
    """log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|, both terms computed here independently of the
    library: the base density by torch.distributions, the log-det from the autograd Jacobian (float64)."""
    flow = _flow(name, shape, options).eval()
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, _ = flow(x)
    base = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    jacobian_logdet = per_sample_logdet(lambda inp: flow(inp)[0], x)
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), base + jacobian_logdet, atol=1e-7)
    samples = flow.sample(5, temperature=0.7)
    assert samples.shape == (5, *shape)
    assert torch.isfinite(samples).all()


@pytest.mark.parametrize(("case", "name", "shape", "options"), CASES, ids=IDS)
def test_build_is_deterministic_under_seed(case, name, shape, options):
    a = _flow(name, shape, options, seed=3)
    b = _flow(name, shape, options, seed=3)
    for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=False):
        assert ka == kb and torch.equal(pa, pb), ka
    a.eval()
    b.eval()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(a.sample(4, generator=g1), b.sample(4, generator=g2))


def test_standard_normal_base_density_exact():
    flow = flowood.build_flow("tabular", (4,), num_couplings=2, hidden_dim=4, num_layers=1)  # identity at init
    x = torch.randn(5, 4)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-5)


def test_bits_per_dim_of_8bit_images():
    """An identity flow makes the discrete log-likelihood computable by hand."""
    flow = flowood.build_flow("realnvp-cycle-mask", (1, 4, 4), num_blocks=1, mid_channels=2).eval()
    flow.preprocess[0].noise = "midpoint"
    images = torch.randint(0, 256, (3, 1, 4, 4)).float() / 255
    xt = (images * 255 + 0.5) / 256
    p = 0.05 + 0.9 * xt
    y = torch.log(p) - torch.log1p(-p)
    ll = (
        (torch.distributions.Normal(0.0, 1.0).log_prob(y) + math.log(0.9) - torch.log(p) - torch.log1p(-p))
        .flatten(1)
        .sum(1)
    )
    ll = ll - 16 * math.log(256)
    assert torch.allclose(flow.log_likelihood_8bit(images), ll, atol=1e-3)
    assert torch.allclose(flow.bits_per_dim(images), -ll / (16 * math.log(2)), atol=1e-4)


def test_image_samples_in_unit_interval():
    flow = flowood.build_flow("realnvp", (1, 4, 4), num_scales=2, num_blocks=1, mid_channels=4).eval()
    imgs = flow.sample_images(6, temperature=0.5)
    assert imgs.shape == (6, 1, 4, 4) and imgs.min() >= 0 and imgs.max() <= 1


def test_batch_norm_eval_is_batch_independent():
    flow = _flow("realnvp", (1, 4, 4), dict(num_scales=2, num_blocks=1, mid_channels=4)).eval()
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    full = flow.log_prob(x)
    single = torch.cat([flow.log_prob(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(full, single, atol=1e-10)


def test_multiscale_latent_split_covers_all_dims():
    flow = flowood.build_flow("realnvp", (1, 8, 8), num_scales=3, num_blocks=1, mid_channels=2)
    z, _ = flow(torch.randn(2, 1, 8, 8))
    pieces = flow.split_latent(z)
    assert len(pieces) == 3
    assert sum(p[0].numel() for p in pieces) == 64


def test_paper_preset_parameter_counts():
    counts = {name: preset_parameter_count(name) for name in PRESETS if PRESETS[name].paper}
    # The original code's counts for the README's four commands (its "Model contains N parameters").
    assert counts["realnvp-fashionmnist"] == 14_707_336
    assert counts["realnvp-celeba"] == 87_859_080
    assert counts["glow-fashionmnist"] == 69_378_048  # plain 1x1 convolutions; LU would give 69,379,520
    assert counts["glow-celeba"] == 208_932_480


@pytest.mark.parametrize(
    ("name", "shape", "options", "message"),
    [
        ("realnvp", (1, 28, 28), dict(num_scales=4), "divisible by 8"),
        ("realnvp", (28, 28), {}, "input_shape=\\(C, H, W\\)"),
        ("glow", (1, 28, 28), dict(st_net="bottleneck"), "bottleneck_dim"),
        ("realnvp", (1, 4, 4), dict(num_stepz=3), "does not take option"),
        ("tabular", (1, 4, 4), {}, "input_shape=\\(D,\\)"),
        ("iaf", (4,), {}, "unknown flow"),
    ],
)
def test_bad_options_raise_clear_errors(name, shape, options, message):
    with pytest.raises(ValueError, match=message):
        flowood.build_flow(name, shape, **options)


def test_wrong_input_shape_is_reported():
    flow = flowood.build_flow("tabular", (4,), num_couplings=2, hidden_dim=4, num_layers=1)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        flow(torch.randn(2, 5))
