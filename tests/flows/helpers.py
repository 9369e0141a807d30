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
