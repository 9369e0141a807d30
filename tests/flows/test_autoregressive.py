"""Masked autoregressive flow: MADE's autoregressive property, exact sequential inverse, log-det, shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flowood.cli.app import main
from flowood.flows import MADE, MaskedAutoregressiveTransform, build_flow
from flowood.flows.autoregressive import made_degrees

from .helpers import batch_jacobian, per_sample_logdet, randomize_

D = 5


def _made_jacobian(made: MADE, x: torch.Tensor) -> torch.Tensor:
    """``d params[:, i, p] / d x[:, j]`` of one sample, shape ``(D, P, D)``."""
    jac = torch.autograd.functional.jacobian(lambda v: made(v.unsqueeze(0))[0], x)
    return jac


@pytest.mark.parametrize("reverse", [False, True])
def test_made_output_depends_only_on_earlier_inputs(reverse: bool) -> None:
    torch.manual_seed(0)
    made = randomize_(MADE(D, 12, 2, 3, reverse=reverse, init_zeros=False)).double()
    # (D out, D in), summed over several inputs so that no connection looks unused only because a ReLU is off.
    jac = sum(_made_jacobian(made, torch.randn(D, dtype=torch.float64)).abs().sum(1) for _ in range(8))
    assert isinstance(jac, torch.Tensor)
    order = made.input_degrees
    allowed = order.unsqueeze(1) > order.unsqueeze(0)  # out i may see in j iff degree(j) < degree(i)
    assert float(jac[~allowed].abs().max()) == 0.0
    # ... and it does use them: every allowed connection carries signal with random weights.
    assert bool((jac[allowed] > 0).all())


def test_made_degrees_cover_every_order() -> None:
    inputs, hidden = made_degrees(4, [6], reverse=True)
    assert inputs.tolist() == [4, 3, 2, 1]
    assert set(hidden.tolist()) == {1, 2, 3}
    _, narrow = made_degrees(101, [10], reverse=False)
    assert narrow.tolist() == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91]  # spread over 1..100, not 1..10


@pytest.mark.parametrize("transform", ["affine", "spline"])
@pytest.mark.parametrize("reverse", [False, True])
def test_maf_layer_jacobian_is_triangular_and_logdet_exact(transform: str, reverse: bool) -> None:
    torch.manual_seed(0)
    layer = MaskedAutoregressiveTransform(
        D, hidden_dim=10, num_hidden=2, reverse=reverse, transform=transform, num_bins=4, init_zeros=False
    )
    layer = randomize_(layer, scale=0.5).double()
    x = torch.randn(3, D, dtype=torch.float64)
    y, logdet = layer(x)
    assert y.shape == (3, D) and logdet.shape == (3,)
    jac = batch_jacobian(lambda v: layer(v)[0], x)[0, :, 0, :]  # (D, D) of sample 0
    order = torch.argsort(layer.made.input_degrees)  # dims sorted by degree
    tri = jac[order][:, order]
    assert float(tri.triu(1).abs().max()) == 0.0  # autoregressive: lower triangular in the ordering
    assert float(tri.diagonal().abs().min()) > 0
    torch.testing.assert_close(logdet, per_sample_logdet(lambda v: layer(v)[0], x), atol=1e-9, rtol=0)


@pytest.mark.parametrize("transform", ["affine", "spline"])
def test_maf_inverse_is_exact(transform: str) -> None:
    torch.manual_seed(0)
    flow = build_flow("maf", (D,), num_layers=3, hidden_dim=12, transform=transform, num_bins=4, init_zeros=False)
    randomize_(flow, scale=0.3)
    flow = flow.double().eval()
    x = torch.randn(4, D, dtype=torch.float64)
    z, logdet = flow(x)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet, per_sample_logdet(lambda v: flow(v)[0], x), atol=1e-8, rtol=0)


def test_maf_orderings_alternate_and_start_as_identity() -> None:
    flow = build_flow("maf", (D,), num_layers=3, hidden_dim=8)
    layers = [m for m in flow.modules() if isinstance(m, MaskedAutoregressiveTransform)]
    assert [m.made.input_degrees.tolist()[0] for m in layers] == [1, D, 1]
    x = torch.randn(2, D)
    z, logdet = flow(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(2))


def test_maf_is_deterministic_under_seed_and_samples() -> None:
    def make() -> torch.Tensor:
        torch.manual_seed(3)
        flow = build_flow("maf", (D,), num_layers=2, hidden_dim=8, init_zeros=False)
        return flow.sample(4, generator=torch.Generator().manual_seed(1)).detach()

    a = make()
    assert a.shape == (4, D) and torch.equal(a, make())


def test_maf_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match=r"^transform: 'quadratic' is not one of affine, spline$"):
        build_flow("maf", (D,), transform="quadratic")
    with pytest.raises(ValueError, match="D >= 2"):
        build_flow("maf", (1,))


def test_train_maf_end_to_end(tmp_path: Path, capsys) -> None:
    run = tmp_path / "maf"
    args = ["train", "--preset", "maf-breast-cancer", "--out", str(run), "--device", "cpu", "-q"]
    assert main([*args, "--set", "train.epochs=3"]) == 0
    assert "0 non-finite steps" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["ood"]["breast-cancer[classes=0]"]["metrics"]["log_likelihood"]["auroc"] > 0.8


def test_bad_maf_option_exits_2_from_the_cli(tmp_path: Path, capsys) -> None:
    args = ["train", "--preset", "maf-breast-cancer", "--out", str(tmp_path / "r"), "--device", "cpu", "-q"]
    assert main([*args, "--set", "model.transform=foo"]) == 2
    assert "model.transform: 'foo' is not one of affine, spline" in capsys.readouterr().err
