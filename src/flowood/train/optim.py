"""Optimisers, learning-rate schedules and weight averaging."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowood.perf import scaled_lr
from flowood.train.config import TrainConfig

WEIGHT_NORM_GAIN_SUFFIX = "parametrizations.weight.original0"


def parameter_groups(model: nn.Module, weight_decay: float, scope: str = "gains") -> list[dict]:
    """Optimizer param groups with ``weight_decay`` on weight-norm gains only or on all parameters.

    ``scope="gains"`` (the original RealNVP's ``get_param_groups``): two groups, everything else with
    decay 0 first, then the gains with ``weight_decay``; per-group gradient clipping then clips the gains
    on their own, as the original did. ``scope="all"`` (the original Glow / RealNVPTabular optimizer over
    ``net.parameters()``): one group with ``weight_decay``.
    """
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if scope == "all":
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    if scope != "gains":
        raise ValueError(f"weight decay scope must be 'gains' or 'all', got {scope!r}")
    gains = [p for name, p in params if name.endswith(WEIGHT_NORM_GAIN_SUFFIX)]
    others = [p for name, p in params if not name.endswith(WEIGHT_NORM_GAIN_SUFFIX)]
    groups = [{"params": others, "weight_decay": 0.0}]
    if gains:
        groups.append({"params": gains, "weight_decay": weight_decay})
    return groups


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float, scope: str = "global") -> Tensor:
    """Clip gradients to norm ``max_norm`` over all parameters (``global``) or per optimizer group
    (``per_group``, as the original's ``utils.clip_grad_norm``); returns the total norm before clipping
    (a 0-d tensor on the parameters' device, non-finite if any gradient is)."""
    groups = [[p for p in g["params"] if p.grad is not None] for g in optimizer.param_groups]
    if scope == "global":
        return torch.nn.utils.clip_grad_norm_([p for g in groups for p in g], max_norm)
    if scope != "per_group":
        raise ValueError(f"grad clip scope must be 'global' or 'per_group', got {scope!r}")
    norms = [torch.nn.utils.clip_grad_norm_(g, max_norm) for g in groups if g]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def base_lr(cfg: TrainConfig) -> float:
    """``train.lr`` scaled to the (global) ``train.batch_size`` by ``train.lr_scaling`` (see
    :func:`flowood.perf.scaled_lr`); the warm-up and step schedule multiply this value."""
    return scaled_lr(cfg.lr, cfg.batch_size, cfg.reference_batch_size, cfg.lr_scaling)


def _betas(cfg: TrainConfig) -> tuple[float, float]:
    beta1, beta2 = cfg.betas  # validated as two numbers by the config
    return float(beta1), float(beta2)


def build_optimizer(model: nn.Module, cfg: TrainConfig, *, fused: bool = False) -> torch.optim.Optimizer:
    """Adam, AdamW or RMSprop over :func:`parameter_groups` (``train.weight_decay_scope``) at :func:`base_lr`.

    ``fused=True`` selects PyTorch's fused single-kernel Adam/AdamW (ignored for RMSprop, which has
    none; the multi-tensor "for-each" implementation is PyTorch's default there).
    """
    groups = parameter_groups(model, cfg.weight_decay, cfg.weight_decay_scope)
    lr = base_lr(cfg)
    extra = {"fused": True} if fused and cfg.optimizer in ("adam", "adamw") else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=_betas(cfg), **extra)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=_betas(cfg), **extra)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def lr_factor_fn(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimisation step ``step``.

    Linear warm-up over ``warmup_steps``, then a step schedule: ×``lr_gamma`` at each epoch in
    ``lr_milestones``.
    """
    milestones = sorted(cfg.lr_milestones)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        epoch = step // max(steps_per_epoch, 1)
        decays = sum(1 for m in milestones if epoch >= m)
        return warm * math.pow(cfg.lr_gamma, decays)

    return factor


def build_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of weights (and buffers) via torch's AveragedModel."""
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )
