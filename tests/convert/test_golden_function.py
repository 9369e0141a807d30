"""flowood computes the original flows_ood function: five original checkpoints, converted and compared.

Tolerances: the reference numbers are float32 values of magnitude up to ~1.1e4 nats (one float32 ulp is 1e-3
nats above 8,192). Each log-density is a float32 sum of D = C·H·W per-dimension terms (base density, logit
log-det) plus the layers' log-dets, accumulated in an order that depends on the torch build and thread
count: a float32 sum of n terms whose roundings are independent errs by about √n·eps·|sum| (Higham,
*Accuracy and Stability of Numerical Algorithms*, §4.2), so log-densities must agree within
max(1e-3 nats, √D·eps·|reference|) — 3.3e-6 relative for 28×28, 0.037 nats at 1.1e4, measured differences
up to 0.0088 nats (torch 2.14.1) — while a change of function (the stray D·log(256/255) = 3.07 nats, a
swapped checkerboard parity) is hundreds of times larger. Latents must agree within 1e-4.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.convert import OriginalArchitecture, from_flows_ood
from tests.convert.conftest import GOLDEN_MODELS


def architecture(entry: dict) -> OriginalArchitecture:
    """The original constructor call of ``index.json`` in ``train_unsup.py``'s flag names."""
    kw = entry["kwargs"]
    if entry["cls"] == "Glow":
        return OriginalArchitecture(
            flow="Glow",
            img_shape=tuple(kw["image_shape"]),
            num_mid_channels=kw["mid_channels"],
            num_scales=kw["num_scales"],
            num_coupling_layers_per_scale=kw["num_coupling_layers_per_scale"],
            num_blocks=kw["num_layers"],
            st_type=kw["st_type"],
        )
    return OriginalArchitecture(
        flow=entry["cls"],
        img_shape=tuple(kw["img_shape"]),
        num_scales=kw.get("num_scales", 2),
        num_mid_channels=kw["mid_channels"],
        num_blocks=kw["num_blocks"],
        st_type=kw.get("st_type", "resnet"),
        latent_dim=kw.get("latent_dim", 100),
    )


def _tolerance(reference: torch.Tensor, dims: int) -> torch.Tensor:
    """Agreement bound of a float32 sum of ``dims`` terms with value ``reference`` (see the module docstring)."""
    return torch.clamp(math.sqrt(dims) * torch.finfo(torch.float32).eps * reference.abs(), min=1e-3)


_CACHE: dict[tuple[str, str], tuple] = {}


def _load(golden: Path, index: dict, name: str, fresh: bool = False):
    """Converted flow (eval mode), checkpoint epoch and the reference arrays; cached (tests must not mutate)."""
    key = (str(golden), name)
    if fresh or key not in _CACHE:
        flow, epoch = from_flows_ood(golden / f"{name}.pt", architecture(index[name]))
        data = {k: torch.from_numpy(v) for k, v in np.load(golden / f"{name}.npz").items()}
        if fresh:
            return flow, epoch, data
        _CACHE[key] = (flow, epoch, data)
    return _CACHE[key]


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_parameter_count_matches_the_original(golden, golden_index, name):
    flow, epoch, _ = _load(golden, golden_index, name)
    assert sum(p.numel() for p in flow.parameters()) == golden_index[name]["params"]
    assert epoch == 0


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_log_density_and_latent_match_the_original(golden, golden_index, name):
    flow, _, data = _load(golden, golden_index, name)
    x = data["logit_input"].float()
    with torch.no_grad():
        z, logdet = flow(x)
        log_prob = flow.log_prob(x)
        z_flat = flow.latent_original_order(z)
    ref = data["log_prob_flow"].float()
    d = x[0].numel()
    assert torch.all((log_prob - ref).abs() <= _tolerance(ref, d)), (log_prob - ref).abs().max()
    assert torch.all((logdet - data["logdet_flow"]).abs() <= _tolerance(data["logdet_flow"], d))
    assert z_flat.shape == data["z"].shape
    assert (z_flat - data["z"]).abs().max() <= 1e-4


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_preprocessing_reproduces_the_original_logit_input(golden, golden_index, name):
    flow, _, data = _load(golden, golden_index, name)
    images = data["images_uint8"].float() / 255.0
    y, _ = flow.preprocess_images(images, data["noise"])
    assert (y - data["logit_input"]).abs().max() <= 1e-4


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_8bit_likelihood_differs_from_the_original_only_by_its_stray_term(golden, golden_index, name):
    """The original's full log-likelihood: its flow log-density, its logit log-det (which adds D·log(255/256)),
    and −D·log 256. flowood's exact value is higher by exactly D·log(256/255)."""
    flow, _, data = _load(golden, golden_index, name)
    images = data["images_uint8"].float() / 255.0
    with torch.no_grad():
        ours = flow.log_likelihood_8bit(images, data["noise"]).double()
    y = data["logit_input"].double()
    d = y[0].numel()
    alpha = 0.9
    # The original's iLogits log-det as its README defines it: softplus(y) + softplus(−y) + log α per entry,
    # plus the stray D·log(255/256).
    logit_ld = (torch.nn.functional.softplus(y) + torch.nn.functional.softplus(-y) + math.log(alpha)).flatten(1).sum(
        1
    ) + d * math.log(255 / 256)
    original = data["log_prob_flow"].double() + logit_ld - d * math.log(256)
    gap = ours - original
    assert torch.all((gap - d * math.log(256 / 255)).abs() <= _tolerance(original.float(), d).double())
    # In bits/dim: the original reports log2(256/255) = 0.005647 more per dimension.
    bpd_gap = (gap / (d * math.log(2))).mean().item()
    assert bpd_gap == pytest.approx(math.log2(256 / 255), abs=1e-5)


def test_the_former_checkerboard_parity_is_a_different_function(golden, golden_index):
    """Planted-bug guard: with every checkerboard coupling's colour swapped, the golden RealNVP is far off."""
    flow, _, data = _load(golden, golden_index, "realnvp", fresh=True)
    for module in flow.modules():
        if getattr(module, "mask_type", None) == "checkerboard":
            module.cond, module.change = module.change.clone(), module.cond.clone()
    with torch.no_grad():
        log_prob = flow.log_prob(data["logit_input"].float())
    assert (log_prob - data["log_prob_flow"]).abs().max() > 1.0
