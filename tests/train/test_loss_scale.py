"""What grad_clip and weight_decay act on: the loss scale, per-group clipping, weight-decay scope."""

from __future__ import annotations

import math

import torch

from flowood.flows import build_flow
from flowood.train.config import config_from_dict
from flowood.train.objective import compute_loss
from flowood.train.optim import build_optimizer, clip_gradients, parameter_groups
from flowood.train.trainer import train

from .conftest import tiny_raw


def _flow():
    torch.manual_seed(0)
    return build_flow("realnvp", (1, 8, 8), num_scales=2, num_blocks=1, mid_channels=4, init_zeros=False)


def test_nats_loss_is_d_ln2_times_the_bits_loss_and_logs_the_same_bpd():
    flow = _flow()
    images = torch.rand(4, 1, 8, 8)
    grads = {}
    for scale in ("bits_per_dim", "nats"):
        cfg = config_from_dict(tiny_raw(loss_scale=scale))
        torch.manual_seed(1)  # same dequantisation noise
        flow.zero_grad()
        loss, logs = compute_loss(flow, images, None, cfg)
        loss.backward()
        grads[scale] = (
            loss.detach(),
            logs["train_bpd"],
            flow.transform.layers[0].rescale.parametrizations.weight.original0.grad.clone(),
        )
    d_ln2 = 64 * math.log(2)
    assert torch.allclose(grads["nats"][0], grads["bits_per_dim"][0] * d_ln2, rtol=1e-5)
    assert torch.allclose(grads["nats"][1], grads["bits_per_dim"][1], rtol=1e-5)
    assert torch.allclose(grads["nats"][2], grads["bits_per_dim"][2] * d_ln2, rtol=1e-4)
    # a positive NLL: the loss is minimised, not maximised
    assert grads["nats"][0] > 0


def test_per_group_clipping_clips_each_group_on_its_own():
    flow = _flow()
    opt = torch.optim.Adam(parameter_groups(flow, 5e-5, "gains"))
    assert len(opt.param_groups) == 2
    for g, size in zip(opt.param_groups, (30.0, 0.5), strict=True):
        for p in g["params"]:
            p.grad = torch.full_like(p, size)
    before = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]])) for g in opt.param_groups]
    total = clip_gradients(opt, 20.0, "per_group")
    after = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]])) for g in opt.param_groups]
    assert torch.isclose(total, torch.linalg.vector_norm(torch.stack(before)))
    assert before[0] > 20 > before[1]
    assert torch.isclose(after[0], torch.tensor(20.0), rtol=1e-4)  # the big group clipped to 20
    assert torch.isclose(after[1], before[1])  # the small group (the gains) untouched
    # global clipping would have shrunk the small group too
    for g, size in zip(opt.param_groups, (30.0, 0.5), strict=True):
        for p in g["params"]:
            p.grad = torch.full_like(p, size)
    clip_gradients(opt, 20.0, "global")
    small = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in opt.param_groups[1]["params"]]))
    assert small < before[1] * 0.5


def test_weight_decay_scope_all_is_one_group_over_everything():
    flow = _flow()
    groups = parameter_groups(flow, 5e-5, "all")
    assert len(groups) == 1 and groups[0]["weight_decay"] == 5e-5
    assert len(groups[0]["params"]) == len(list(flow.parameters()))
    cfg = config_from_dict(tiny_raw(weight_decay=5e-5, weight_decay_scope="all", optimizer="rmsprop"))
    opt = build_optimizer(flow, cfg.train)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-5]


def test_original_style_training_runs_and_differs_from_the_former_default(tmp_path):
    """Same seed and data: the loss scale and clip scope change the trajectory (they are wired in)."""
    results = {}
    for name, extra in {
        "former": {},
        "original": {"loss_scale": "nats", "grad_clip_scope": "per_group", "weight_decay": 5e-5},
    }.items():
        cfg = config_from_dict(tiny_raw(epochs=1, **extra))
        results[name] = train(cfg, tmp_path / name, quiet=True)
    a, b = results["former"], results["original"]
    assert math.isfinite(a.test_bpd) and math.isfinite(b.test_bpd)
    assert a.test_bpd != b.test_bpd


def test_per_group_clipping_reads_nothing_back_to_the_host():
    from tests.perf.test_host_syncs import CountSyncs

    flow = _flow()
    opt = torch.optim.Adam(parameter_groups(flow, 5e-5, "gains"))
    for p in flow.parameters():
        p.grad = torch.randn_like(p)
    with CountSyncs() as counter:
        total = clip_gradients(opt, 1.0, "per_group")
    assert sum(counter.counts.values()) == 0, counter.counts
    assert torch.isfinite(total)
