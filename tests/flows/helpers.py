"""Utilities for checking invertibility and log-determinants against autograd."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def randomize_(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Perturb every parameter and batch-norm statistic so that no layer is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen, dtype=m.running_var.dtype))
    return module


def batch_jacobian(fn, x: Tensor) -> Tensor:
    """Jacobian of ``fn`` over the whole batch, shape ``(B, D, B, D)``."""
    b = x.shape[0]
    d = x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda inp: fn(inp).reshape(b, d), x)
    return jac.reshape(b, d, b, d)


def per_sample_logdet(fn, x: Tensor) -> Tensor:
    """``log |det J_b|`` of each sample's own Jacobian block, shape ``(B,)``."""
    jac = batch_jacobian(fn, x)
    return torch.stack([torch.linalg.slogdet(jac[i, :, i, :])[1] for i in range(x.shape[0])])


def full_logdet(fn, x: Tensor) -> Tensor:
    """``log |det|`` of the Jacobian of the whole batch map (covers batch-coupled layers)."""
    jac = batch_jacobian(fn, x)
    n = jac.shape[0] * jac.shape[1]
    return torch.linalg.slogdet(jac.reshape(n, n))[1]


def assert_one_line_model_error(name: str, options: dict, shape: tuple[int, ...], message: str) -> None:
    """Building flow ``name`` with model ``options`` through the run-config path fails with one line containing
    ``message``."""
    import pytest

    from flowood.errors import ConfigError
    from flowood.train.build import build_run_flow
    from flowood.train.config import config_from_dict

    cfg = config_from_dict({"model": {"name": name, **options}})
    with pytest.raises(ConfigError) as info:
        build_run_flow(cfg, shape)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def real_image_round_trip_error(name: str, options: dict, scale: float) -> float:
    """``max |f⁻¹(f(x)) − x|`` in float32 over 16 FashionMNIST test images (the embedded set, in logit space) through
    flow ``name`` with ``options`` on (1, 28, 28), its weights perturbed by ``scale`` (asserted far from the
    identity, so the round trip is not trivially exact)."""
    from flowood import build_flow
    from flowood.data import load_dataset

    images = load_dataset("fashionmnist-mini", "test", limit=16, seed=0).data.float() / 255
    torch.manual_seed(0)
    flow = randomize_(build_flow(name, (1, 28, 28), **options), scale=scale).eval()
    with torch.no_grad():
        x, _ = flow.preprocess_images(images)
        z, logdet = flow(x)
        back = flow.inverse(z)
    assert (z - x).abs().max() > 0.1 and logdet.abs().min() > 1.0
    return float((back - x).abs().max())
