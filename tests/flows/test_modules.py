"""Every invertible module: round-trip, log-det against autograd (float64), shapes."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from flowood.flows import (
    ActNorm,
    AffineCoupling,
    Dequantize,
    FactorOut,
    FlowSequential,
    InvConv1x1,
    InvConv1x1LU,
    LogitTransform,
    Squeeze,
    Unsqueeze,
    build_mask,
    build_st_net,
    split_latent_scales,
    squeeze2d,
    unsqueeze2d,
)

from .helpers import full_logdet, per_sample_logdet, randomize_

torch.set_default_dtype(torch.float32)


def _st(kind, bottleneck_dim=None, spatial=None):
    def factory(cin, cout):
        return build_st_net(
            kind,
            cin,
            cout,
            mid_channels=4,
            num_blocks=2,
            spatial_shape=spatial,
            bottleneck_dim=bottleneck_dim,
            init_zeros=False,
            double_after_norm=True,
        )

    return factory


def _coupling_cases():
    img = (2, 4, 4)
    cases = []
    for mask in ("checkerboard", "horizontal", "vertical"):
        for parity in (0, 1):
            cases.append((f"{mask}-{parity}", partial(AffineCoupling, mask, img, _st("resnet"), parity=parity), img))
    for q in range(4):
        for parity in (0, 1):
            cases.append(
                (
                    f"quadrant{q}-{parity}",
                    partial(AffineCoupling, "quadrant", img, _st("resnet"), parity=parity, quadrant=q),
                    img,
                )
            )
    for parity in (0, 1):
        cases.append(
            (
                f"channel-{parity}",
                partial(AffineCoupling, "channel", (4, 2, 2), _st("resnet"), parity=parity),
                (4, 2, 2),
            )
        )
        cases.append((f"tabular-{parity}", partial(AffineCoupling, "tabular", (6,), _st("mlp"), parity=parity), (6,)))
    for kind in ("convnet", "highway"):
        cases.append((f"checkerboard-{kind}", partial(AffineCoupling, "checkerboard", img, _st(kind)), img))
    cases.append(
        ("checkerboard-bottleneck", partial(AffineCoupling, "checkerboard", img, _st("bottleneck", 3, img[1:])), img)
    )
    return cases


def _module_cases():
    cases = _coupling_cases()
    cases += [
        ("squeeze", Squeeze, (2, 4, 4)),
        ("unsqueeze", Unsqueeze, (8, 2, 2)),
        ("actnorm-image", partial(ActNorm, 2), (2, 4, 4)),
        ("actnorm-vector", partial(ActNorm, 6), (6,)),
        ("invconv", partial(InvConv1x1, 3), (3, 2, 2)),
        ("invconv-lu", partial(InvConv1x1LU, 3), (3, 2, 2)),
        ("logit", LogitTransform, (1, 3, 3)),
        ("factor-out", lambda: FactorOut(2, FlowSequential(ActNorm(2), InvConv1x1(2))), (4, 2, 2)),
        ("sequential", lambda: FlowSequential(Squeeze(), InvConv1x1LU(8), Unsqueeze()), (2, 4, 4)),
    ]
    return cases


CASES = _module_cases()


def _input(shape, batch=3, positive=False):
    x = torch.rand(batch, *shape, dtype=torch.float64) if positive else torch.randn(batch, *shape, dtype=torch.float64)
    return x.clamp(0.01, 0.99) if positive else x


def _make(factory):
    module = randomize_(factory().double())
    # ActNorm's data-dependent init happens on the first training batch; run it, then perturb.
    return module


@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_roundtrip(name, factory, shape, mode):
    module = _make(factory)
    module.train(mode == "train")
    x = _input(shape, positive=name == "logit")
    y, logdet = module(x)
    assert y.numel() == x.numel()
    assert logdet.shape == (x.shape[0],)
    assert torch.isfinite(logdet).all()
    x_back = module.inverse(y)
    assert torch.allclose(x_back, x, atol=1e-6), f"{name}: max err {(x_back - x).abs().max():.2e}"


@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_logdet_matches_autograd_eval(name, factory, shape):
    module = _make(factory).eval()
    x = _input(shape, batch=2, positive=name == "logit")
    _, logdet = module(x)
    expected = per_sample_logdet(lambda inp: module(inp)[0], x)
    assert torch.allclose(logdet, expected, atol=1e-8), f"{name}: {logdet} vs {expected}"


@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_logdet_matches_autograd_train(name, factory, shape):
    """In train mode batch norm couples samples; the batch Jacobian stays triangular, so the total
    log-det of the batch map must equal the sum of per-sample log-dets."""
    module = _make(factory).train()
    x = _input(shape, batch=2, positive=name == "logit")
    module(x)  # trigger any data-dependent initialisation first
    _, logdet = module(x)
    expected = full_logdet(lambda inp: module(inp)[0], x)
    assert torch.allclose(logdet.sum(), expected, atol=1e-7), f"{name}: {logdet.sum()} vs {expected}"


def test_coupling_changes_only_masked_entries():
    img = (1, 4, 4)
    layer = randomize_(AffineCoupling("quadrant", img, _st("resnet"), quadrant=0).double()).eval()
    x = torch.randn(2, *img, dtype=torch.float64)
    y, _ = layer(x)
    changed = (y != x).any(dim=0)[0]
    _cond, change = build_mask("quadrant", img, quadrant=0)
    assert changed[change[0, 0] == 0].sum() == 0
    assert changed[change[0, 0] == 1].all()


def test_coupling_output_independent_of_transformed_entries_in_st_input():
    """The st-network must see only conditioning entries: changing a transformed entry changes
    only that entry of the output."""
    shape = (1, 4, 4)
    layer = randomize_(AffineCoupling("checkerboard", shape, _st("resnet")).double()).eval()
    x = torch.randn(1, *shape, dtype=torch.float64)
    _, change = build_mask("checkerboard", shape)
    idx = change[0].nonzero()[0]
    x2 = x.clone()
    x2[0, idx[0], idx[1], idx[2]] += 1.0
    y1, _ = layer(x)
    y2, _ = layer(x2)
    diff = (y1 != y2)[0]
    assert diff.sum() == 1 and diff[idx[0], idx[1], idx[2]]


def test_masks_partition_and_parity():
    for kind, shape in [
        ("checkerboard", (2, 4, 4)),
        ("horizontal", (1, 4, 6)),
        ("vertical", (1, 4, 6)),
        ("tabular", (5,)),
    ]:
        c0, ch0 = build_mask(kind, shape, parity=0)
        c1, _ = build_mask(kind, shape, parity=1)
        assert torch.equal(c0 + ch0, torch.ones_like(c0))
        assert torch.equal(c0 + c1, torch.ones_like(c0))
    cond, change = build_mask("quadrant", (1, 4, 4), quadrant=3)
    assert cond[0, 0, 2:, :2].all() and cond.sum() == 4  # bottom-left
    assert change[0, 0, :2, :2].all() and change.sum() == 4  # 3 -> 0: top-left
    with pytest.raises(ValueError, match="unknown mask"):
        build_mask("diagonal", (1, 4, 4))


def test_squeeze_layout_and_inverse():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = squeeze2d(x)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert torch.equal(unsqueeze2d(y), x)
    with pytest.raises(ValueError, match="divisible"):
        squeeze2d(torch.zeros(1, 1, 3, 4))


def test_split_latent_scales_shapes():
    z = torch.randn(2, 1, 8, 8)
    pieces = split_latent_scales(z, [2, 4])
    assert [tuple(p.shape[1:]) for p in pieces] == [(2, 4, 4), (4, 2, 2), (4, 2, 2)]
    assert sum(p[0].numel() for p in pieces) == 64


def test_dequantize_logdet_and_inverse():
    x = torch.randint(0, 256, (4, 1, 3, 3)).double() / 255
    deq = Dequantize()
    y, ld = deq(x)
    assert ((y >= 0) & (y < 1)).all()
    assert torch.allclose(ld, torch.full((4,), -9 * math.log(256), dtype=torch.float64))
    assert torch.equal(deq.inverse(y), x)
    mid = Dequantize(noise="midpoint")
    y1, _ = mid(x)
    y2, _ = mid(x)
    assert torch.equal(y1, y2)
    assert torch.allclose(y1, (x * 255 + 0.5) / 256)


def test_actnorm_data_dependent_init_and_state_dict():
    layer = ActNorm(3)
    x = 5 + 2 * torch.randn(64, 3, 4, 4)
    y, _ = layer(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    fresh = ActNorm(3)
    fresh.load_state_dict(layer.state_dict())
    _y2, _ = fresh(torch.randn(8, 3, 4, 4))  # must not re-initialise
    assert torch.equal(fresh.bias, layer.bias)


def test_logdet_is_float32_or_better_under_low_precision():
    layer = AffineCoupling("checkerboard", (1, 4, 4), _st("convnet"))
    layer = layer.to(torch.bfloat16)
    _, ld = layer(torch.randn(2, 1, 4, 4, dtype=torch.bfloat16))
    assert ld.dtype == torch.float32


def test_bad_st_net_and_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown st_net"):
        build_st_net("transformer", 2, 4, mid_channels=4, num_blocks=1)
    with pytest.raises(ValueError, match="bottleneck_dim"):
        build_st_net("bottleneck", 2, 4, mid_channels=4, num_blocks=1, spatial_shape=(4, 4))
    with pytest.raises(ValueError, match="even C"):
        AffineCoupling("channel", (3, 4, 4), _st("resnet"))


def test_unsqueeze_lives_beside_squeeze() -> None:
    from flowood.flows import multiscale, reshape

    assert reshape.Unsqueeze is multiscale.Unsqueeze
    assert reshape.Unsqueeze.__module__ == "flowood.flows.reshape"
