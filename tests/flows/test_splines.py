"""Rational-quadratic spline transform and spline couplings: exact inverse, log-det, tails, monotonicity."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from flowood.cli.app import main
from flowood.flows import SplineCoupling, build_flow, build_st_net, rational_quadratic_spline
from flowood.flows.splines import spline_param_count

from .helpers import per_sample_logdet, randomize_

K = 6
BOUND = 2.5


def _params(shape: tuple[int, ...], seed: int = 0, scale: float = 2.0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)

    def draw(k: int) -> torch.Tensor:
        return scale * torch.randn(*shape, k, generator=gen, dtype=torch.float64)

    return draw(K), draw(K), draw(K - 1)


def test_spline_round_trip_and_log_derivative() -> None:
    gen = torch.Generator().manual_seed(1)
    x = 1.2 * BOUND * (2 * torch.rand(2000, generator=gen, dtype=torch.float64) - 1)  # some in the tails
    w, h, d = _params((2000,))
    xr = x.clone().requires_grad_(True)
    y, ld = rational_quadratic_spline(xr, w, h, d, bound=BOUND)
    (grad,) = torch.autograd.grad(y.sum(), xr)  # elementwise map: the diagonal of the Jacobian
    torch.testing.assert_close(ld, grad.log(), atol=1e-10, rtol=0)
    back, ld_inv = rational_quadratic_spline(y.detach(), w, h, d, bound=BOUND, inverse=True)
    torch.testing.assert_close(back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld_inv, -ld.detach(), atol=1e-10, rtol=0)


def test_spline_tails_are_identity_and_range_is_preserved() -> None:
    x = torch.tensor([-10.0, -BOUND - 1e-9, BOUND + 1e-6, 7.0], dtype=torch.float64)
    w, h, d = _params((4,))
    y, ld = rational_quadratic_spline(x, w, h, d, bound=BOUND)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(4, dtype=torch.float64))
    ends = torch.tensor([-BOUND, BOUND], dtype=torch.float64)
    w, h, d = _params((2,))
    y, _ = rational_quadratic_spline(ends, w, h, d, bound=BOUND)
    torch.testing.assert_close(y, ends, atol=1e-12, rtol=0)  # knots pinned: continuous with the tails


def test_spline_is_strictly_monotone_and_continuous() -> None:
    x = torch.linspace(-BOUND - 0.5, BOUND + 0.5, 20001, dtype=torch.float64)
    w, h, d = (p.expand(x.shape[0], -1) for p in _params((1,), seed=3, scale=3.0))
    y, ld = rational_quadratic_spline(x, w, h, d, bound=BOUND)
    assert bool((y[1:] > y[:-1]).all())
    # No jumps at knots or at ±B: every step is bounded by the largest derivative (mean value theorem).
    dx = float(x[1] - x[0])
    assert float((y[1:] - y[:-1]).max()) <= 1.01 * dx * float(ld.exp().max())
    assert bool(torch.isfinite(ld).all())


def test_zero_parameters_give_the_identity() -> None:
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    zeros = torch.zeros(101, K, dtype=torch.float64)
    y, ld = rational_quadratic_spline(x, zeros, zeros, zeros[:, :-1], bound=BOUND)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld, torch.zeros_like(x), atol=1e-12, rtol=0)


def test_spline_rejects_inconsistent_parameters() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="K-1 derivatives"):
        rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 4))


def _mlp(cin: int, cout: int) -> torch.nn.Module:
    return build_st_net("mlp", cin, cout, mid_channels=8, num_blocks=1, init_zeros=False)


def _conv(cin: int, cout: int) -> torch.nn.Module:
    return build_st_net("convnet", cin, cout, mid_channels=4, num_blocks=1, init_zeros=False)


CASES = [
    ("tabular-0", partial(SplineCoupling, "tabular", (5,), _mlp, 0), (5,)),
    ("tabular-1", partial(SplineCoupling, "tabular", (5,), _mlp, 1), (5,)),
    ("checkerboard", partial(SplineCoupling, "checkerboard", (2, 4, 4), _conv, 1), (2, 4, 4)),
    ("channel", partial(SplineCoupling, "channel", (4, 2, 2), _conv, 1), (4, 2, 2)),
    ("quadrant", partial(SplineCoupling, "quadrant", (1, 4, 4), _conv, 0, 2), (1, 4, 4)),
]


@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[c[0] for c in CASES])
def test_spline_coupling_inverse_and_logdet(name, make, shape) -> None:
    torch.manual_seed(0)
    layer = randomize_(make(num_bins=K, tail_bound=BOUND), scale=0.5).double().eval()
    x = 1.5 * torch.randn(3, *shape, dtype=torch.float64)
    y, logdet = layer(x)
    assert y.shape == x.shape and logdet.shape == (3,)
    assert not torch.allclose(y, x)  # the layer does something
    torch.testing.assert_close(layer.inverse(y), x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet, per_sample_logdet(lambda v: layer(v)[0], x), atol=1e-8, rtol=0)


def test_spline_coupling_keeps_conditioning_entries() -> None:
    torch.manual_seed(0)
    layer = randomize_(SplineCoupling("tabular", (6,), _mlp, 0, num_bins=K)).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    y, _ = layer(x)
    assert torch.equal(y[:, :3], x[:, :3]) and not torch.allclose(y[:, 3:], x[:, 3:])


@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("dim", [2, 5, 6])
def test_tabular_change_index_is_the_masks_changed_entries(dim: int, parity: int) -> None:
    layer = SplineCoupling("tabular", (dim,), _mlp, parity)
    assert layer.change_index.tolist() == torch.nonzero(layer.change[0]).flatten().tolist()


def test_spline_coupling_st_net_width() -> None:
    seen: list[tuple[int, int]] = []

    def factory(cin: int, cout: int) -> torch.nn.Module:
        seen.append((cin, cout))
        return _mlp(cin, cout)

    SplineCoupling("tabular", (7,), factory, num_bins=5)
    SplineCoupling("tabular", (7,), factory, parity=1, num_bins=5)
    # Parameters only for the transformed entries: 4 of 7 with parity 0, 3 with parity 1.
    assert seen == [(7, 4 * 14), (7, 3 * 14)] and spline_param_count(5) == 14


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("tabular", (6,), {"hidden_dim": 8, "num_couplings": 3}),
        ("realnvp", (1, 4, 4), {"num_blocks": 1, "mid_channels": 4}),
        ("glow", (1, 4, 4), {"num_blocks": 1, "mid_channels": 4, "num_steps": 2, "num_scales": 1}),
        ("realnvp-cycle-mask", (1, 4, 4), {"num_blocks": 1, "mid_channels": 4}),
        ("realnvp-horizontal-mask", (1, 4, 4), {"num_blocks": 1, "mid_channels": 4, "num_couplings": 2}),
    ],
)
def test_spline_flows_build_invert_and_start_as_identity(name, shape, options) -> None:
    torch.manual_seed(0)
    flow = build_flow(name, shape, coupling="spline", num_bins=4, **options).double().eval()
    assert any(isinstance(m, SplineCoupling) for m in flow.modules())
    x = torch.rand(2, *shape, dtype=torch.float64)
    # Zero-initialised st-nets: every spline coupling starts as the identity, as the affine ones do.
    for layer in (m for m in flow.modules() if isinstance(m, SplineCoupling)):
        v = torch.randn(2, *layer.shape, dtype=torch.float64)
        out, ld = layer(v)
        torch.testing.assert_close(out, v, atol=1e-10, rtol=0)
        torch.testing.assert_close(ld, torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    randomize_(flow, scale=0.2)
    z, _ = flow(x)
    back = flow.inverse(z)
    torch.testing.assert_close(back, x, atol=1e-7, rtol=0)


def test_unknown_coupling_is_rejected() -> None:
    with pytest.raises(ValueError, match="coupling: 'spine' is not one of affine, spline"):
        build_flow("tabular", (4,), coupling="spine")


def test_spline_flow_is_deterministic_under_seed() -> None:
    def make() -> torch.Tensor:
        torch.manual_seed(5)
        flow = build_flow("tabular", (6,), coupling="spline", hidden_dim=8, init_zeros=False)
        return flow.log_likelihood(torch.ones(2, 6)).detach()

    assert torch.equal(make(), make())


def test_train_spline_tabular_end_to_end(tmp_path: Path, capsys) -> None:
    run = tmp_path / "spline"
    args = ["train", "--preset", "tabular-spline-breast-cancer", "--out", str(run), "--device", "cpu", "-q"]
    assert main([*args, "--set", "train.epochs=2", "--set", "model.num_couplings=2"]) == 0
    assert "0 non-finite steps" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    import json

    report = json.loads((run / "report.json").read_text())
    assert report["ood"]["breast-cancer[classes=0]"]["metrics"]["log_likelihood"]["auroc"] > 0.8


def test_bad_coupling_exits_2_from_the_cli(tmp_path: Path, capsys) -> None:
    args = ["train", "--preset", "tabular-breast-cancer", "--out", str(tmp_path / "r"), "--device", "cpu", "-q"]
    assert main([*args, "--set", "model.coupling=spine"]) == 2
    assert "model.coupling: 'spine' is not one of affine, spline" in capsys.readouterr().err
