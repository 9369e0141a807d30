"""Backpropagation by inversion (train.memory=invert) computes store's gradients and keeps no block activations."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from flowood.flows import build_flow
from flowood.flows.architectures import FLOWS, flow_options
from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.flow import NormalizingFlow
from flowood.flows.invert import BackpropByInversion, backprop_kind


def _tiny(name: str, **extra) -> NormalizingFlow:
    shape, options = FLOWS[name].tiny
    options = dict(options)
    if "init_zeros" in flow_options(name):
        options["init_zeros"] = False  # identity layers would invert exactly and hide errors
    if name == "tabular":
        options["dropout"] = 0.2  # the dropout masks must be replayed
    torch.manual_seed(0)
    return build_flow(name, shape, **options, **extra)


def _batch(flow: NormalizingFlow, n: int = 8) -> Tensor:
    g = torch.Generator().manual_seed(1)
    if flow.preprocess is not None:
        return torch.rand(n, *flow.input_shape, generator=g)
    return torch.randn(n, *flow.input_shape, generator=g)


def _step(flow: NormalizingFlow, x: Tensor, autocast: bool = False) -> tuple[Tensor, list[Tensor], dict, Tensor]:
    """Loss, gradients, state afterwards (running statistics) and the global RNG state after one backward."""
    flow.train()
    flow.zero_grad(set_to_none=True)
    flow.set_dequantization_rng(torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = -flow.log_likelihood(x).mean()
    loss.backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in flow.parameters()]
    state = {k: v.clone() for k, v in flow.state_dict().items()}
    return loss.detach(), grads, state, torch.get_rng_state()


def _relative(a: list[Tensor], b: list[Tensor]) -> float:
    num = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b, strict=True))
    den = sum(float(x.pow(2).sum()) for x in a)
    return (num / max(den, 1e-30)) ** 0.5


def _init(flow: NormalizingFlow, x: Tensor) -> dict:
    flow.train()
    flow.set_dequantization_rng(torch.Generator().manual_seed(2))
    with torch.no_grad():
        flow.log_likelihood(x)  # ActNorm's data-dependent initialisation, as the trainer does it first
    return {k: v.clone() for k, v in flow.state_dict().items()}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_gradients_equal_store(name):
    flow = _tiny(name)
    x = _batch(flow)
    start = _init(flow, x)
    loss_s, grads_s, state_s, rng_s = _step(flow, x)
    flow.load_state_dict(start)
    flow.set_memory("invert")
    loss_i, grads_i, state_i, rng_i = _step(flow, x)
    assert torch.equal(loss_s, loss_i)  # the forward pass is the same computation
    assert _relative(grads_s, grads_i) < 1e-4
    for key in state_s:  # batch-norm running statistics counted once, as in store mode
        assert torch.equal(state_s[key], state_i[key]), key
    assert torch.equal(rng_s, rng_i)  # dropout replayed without drawing more
    assert flow.inversion is not None and not flow.inversion.take_warnings()


@pytest.mark.parametrize("name", ["glow", "realnvp"])
def test_bf16_autocast_gradients_equal_store(name):
    flow = _tiny(name)
    x = _batch(flow, 4)  # bf16 convolutions are slow on the CPU
    start = _init(flow, x)
    _, grads_s, _, _ = _step(flow, x, autocast=True)
    flow.load_state_dict(start)
    flow.set_memory("invert")
    _, grads_i, _, _ = _step(flow, x, autocast=True)
    # The st-networks run in bf16 in both modes; the backward re-enters autocast, so the recomputed s and t are
    # the forward's (recomputed in fp32 they would differ by 2e-3 for glow, 9e-2 for realnvp, measured).
    assert _relative(grads_s, grads_i) < 1e-4


def _saved_bytes(flow: NormalizingFlow, x: Tensor) -> int:
    params = {p.untyped_storage().data_ptr() for p in flow.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    flow.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flow.log_likelihood(x)
    return sum(seen.values())


def test_activation_memory_does_not_grow_with_depth():
    def glow(steps: int, memory: str) -> int:
        torch.manual_seed(0)
        flow = build_flow("glow", (1, 8, 8), num_steps=steps, num_blocks=1, mid_channels=4)
        flow.set_memory(memory)
        return _saved_bytes(flow, torch.rand(2, 1, 8, 8))

    shallow, deep = glow(1, "invert"), glow(4, "invert")
    assert shallow == deep
    assert glow(4, "store") > 4 * deep
    assert glow(4, "store") > glow(1, "store")


class _Leaky(InvertibleModule):
    """A bijection whose inverse misses by ``error`` (relative): what the fallback must catch."""

    backprop = "invert"

    def __init__(self, error: float) -> None:
        super().__init__()
        self.error = error
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.scale, self.scale.log().expand(x.shape[0]) * x[0].numel()

    def inverse(self, y: Tensor) -> Tensor:
        return y / self.scale * (1 + self.error)


def _leaky_flow(error: float) -> NormalizingFlow:
    body = FlowSequential(_Leaky(0.0), _Leaky(error), _Leaky(0.0))
    return NormalizingFlow(body, (4,), name="leaky", config={})


def test_an_inexact_block_keeps_storing_with_a_warning():
    x = torch.randn(3, 4)
    flow = _leaky_flow(1e-2)
    _, grads_s, _, _ = _step(flow, x)
    flow.set_memory("invert", tolerance=1e-3)
    _, grads_i, _, _ = _step(flow, x)
    inversion = flow.inversion
    assert inversion is not None and inversion.stored == {1}
    (warning,) = inversion.take_warnings()
    assert "block 1 (_Leaky at layers.1)" in warning and "train.invert_tolerance=0.001" in warning
    assert _relative(grads_s, grads_i) < 1e-6  # block 1 stored, blocks 0 and 2 exact


def test_accumulated_error_cuts_the_segment():
    # Each block alone is within the bound; their errors add up past it at block 1's input (3 × 4e-4), so the walk
    # back cuts after block 1: block 2's input is kept and every rebuilt input stays within the bound.
    body = FlowSequential(*(_Leaky(4e-4) for _ in range(4)))
    runner = BackpropByInversion(body, tolerance=1e-3)
    errors = runner.check(torch.randn(3, 4))
    assert not runner.stored and runner.cuts == {2}
    assert all(e <= 1e-3 for e in errors["local"])
    assert max(errors["uncut"]) > 1e-3 >= max(errors["accumulated"])
    assert runner._segments() == [[0, 1], [2, 3]]
    assert "the input of block 1 is rebuilt with error" in runner.take_warnings()[0]


def test_a_residual_past_the_bound_during_training_falls_back():
    flow = _leaky_flow(0.0)
    flow.set_memory("invert", tolerance=1e-3)
    x = torch.randn(3, 4)
    _step(flow, x)
    inversion = flow.inversion
    assert inversion is not None and float(inversion.max_residual()) < 1e-6
    flow.transform[1].error = 1e-2  # drifts after the first step's check
    _step(flow, x)
    assert float(inversion.max_residual()) > 1e-3
    assert inversion.fall_back() == [1] and inversion.stored == {1}
    assert "round trip" in inversion.take_warnings()[0]


def test_declared_kinds():
    flow = build_flow("glow", (1, 4, 4), num_steps=1, num_blocks=1, mid_channels=4)
    kinds = {type(m).__name__: backprop_kind(m) for m in flow.transform.modules()}
    assert kinds["AffineCoupling"] == kinds["ActNorm"] == kinds["InvConv1x1LU"] == "invert"
    assert kinds["Squeeze"] == "free" and kinds["FactorOut"] == "store"
    maf = build_flow("maf", (5,), num_layers=1, num_hidden=1, hidden_dim=8)
    assert {backprop_kind(m) for m in maf.transform} == {"store"}  # D sequential passes to invert
    with pytest.raises(ValueError, match="memory must be one of store, invert"):
        flow.set_memory("recompute")


def test_a_deep_copy_inverts_its_own_blocks():
    import copy

    flow = _tiny("glow")
    flow.set_memory("invert")
    twin = copy.deepcopy(flow)  # e.g. an EMA copy (AveragedModel deep-copies the flow)
    assert twin.inversion is not None and twin.inversion.body is twin.transform
    own = {id(m) for m in twin.transform.modules()}
    assert all(id(b) in own for b in twin.inversion.blocks)
    x = _batch(twin)
    _init(twin, x)
    _, grads, _, _ = _step(twin, x)
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
