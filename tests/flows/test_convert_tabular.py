"""RealNVPTabular checkpoints (the original's layout, written out by hand) convert to the same density."""

from __future__ import annotations

import math

import pytest
import torch

from flowood.convert import OriginalArchitecture, from_flows_ood
from flowood.errors import CheckpointError

D, HIDDEN, LAYERS, COUPLINGS = 6, 8, 1, 3


def original_state(dropout_slot: bool = True) -> dict[str, torch.Tensor]:
    """State dict of the original ``RealNVPTabular(in_dim=6, num_coupling_layers=3, hidden_dim=8, num_layers=1)``.

    Its st-net is ``Sequential(Linear, ReLU, Dropout-or-empty, Linear, ReLU, Linear)``: linear layers at 0, 3, 5.
    """
    g = torch.Generator().manual_seed(0)
    state = {}
    dims = [(HIDDEN, D), (HIDDEN, HIDDEN), (2 * D, HIDDEN)]
    for i in range(COUPLINGS):
        for idx, (out_f, in_f) in zip((0, 3, 5), dims, strict=True):
            state[f"module.body.{i}.st_net.{idx}.weight"] = torch.randn(out_f, in_f, generator=g) * 0.3
            state[f"module.body.{i}.st_net.{idx}.bias"] = torch.randn(out_f, generator=g) * 0.1
        state[f"module.body.{i}.rescale.weight_g"] = torch.rand(D, generator=g) + 0.5
        state[f"module.body.{i}.rescale.weight_v"] = torch.randn(D, generator=g)
    return state


def original_log_prob(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The original's computation, read from its coupling layer: x_id = x·b, s = w·tanh(s_raw), y = x_id +
    (1 − b)·(x + t)·exp(s) with s, t masked by 1 − b; b is the first half for even layers, the second for odd."""
    logdet = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(COUPLINGS):
        p = f"module.body.{i}."
        b = torch.zeros(1, D, dtype=x.dtype)
        if i % 2:
            b[:, D // 2 :] = 1
        else:
            b[:, : D // 2] = 1
        h = torch.relu(x * b @ state[p + "st_net.0.weight"].T.to(x.dtype) + state[p + "st_net.0.bias"])
        h = torch.relu(h @ state[p + "st_net.3.weight"].T.to(x.dtype) + state[p + "st_net.3.bias"])
        st = h @ state[p + "st_net.5.weight"].T.to(x.dtype) + state[p + "st_net.5.bias"]
        s_raw, t = st.chunk(2, dim=1)
        v, gain = state[p + "rescale.weight_v"].to(x.dtype), state[p + "rescale.weight_g"].to(x.dtype)
        w = gain * v / v.abs()  # weight norm of a vector along dim 0: per-entry |v|
        s, t = w * torch.tanh(s_raw) * (1 - b), t * (1 - b)
        x = x * b + (x * (1 - b) + t) * torch.exp(s)
        logdet = logdet + s.sum(1)
    return -0.5 * (x**2).sum(1) - 0.5 * D * math.log(2 * math.pi) + logdet


ARCH = OriginalArchitecture(
    flow="RealNVPTabular", in_dim=D, num_mid_channels=HIDDEN, num_blocks=LAYERS, num_coupling_layers_per_scale=COUPLINGS
)


def test_tabular_checkpoint_gives_the_original_density():
    state = original_state()
    flow, epoch = from_flows_ood(state, ARCH)
    assert epoch is None
    x = torch.randn(16, D, dtype=torch.float64)
    with torch.no_grad():
        ours = flow.double().log_prob(x)
    torch.testing.assert_close(ours, original_log_prob(state, x), rtol=0, atol=1e-9)


def test_tabular_dropout_flag_keeps_the_layout():
    flow, _ = from_flows_ood(original_state(), OriginalArchitecture(**{**ARCH.__dict__, "dropout": True}))
    assert flow.config["dropout"] == 0.5
    assert any(isinstance(m, torch.nn.Dropout) for m in flow.modules())


def test_tabular_wrong_width_names_the_tensor():
    with pytest.raises(CheckpointError, match=r"module\.body\.0\.st_net\.0\.weight has shape \(8, 6\)"):
        from_flows_ood(original_state(), OriginalArchitecture(**{**ARCH.__dict__, "num_mid_channels": 16}))
