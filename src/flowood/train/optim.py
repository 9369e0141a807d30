"""Optimisers, learning-rate schedules and weight averaging."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from flowood.perf import scaled_lr
from flowood.train.config import TrainConfig

WEIGHT_NORM_GAIN_SUFFIX = "parametrizations.weight.original0"


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters so that weight decay applies only to weight-norm gains (as the original RealNVP).

    Returns optimizer param groups: gains with ``weight_decay``, everything else with 0.
    """
    gains: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (gains if name.endswith(WEIGHT_NORM_GAIN_SUFFIX) else others).append(p)
    groups = [{"params": others, "weight_decay": 0.0}]
    if gains:
        groups.append({"params": gains, "weight_decay": weight_decay})
    return groups


def base_lr(cfg: TrainConfig) -> float:
    """``train.lr`` scaled to the (global) ``train.batch_size`` by ``train.lr_scaling`` (see
    :func:`flowood.perf.scaled_lr`); the warm-up and step schedule multiply this value."""
    return scaled_lr(cfg.lr, cfg.batch_size, cfg.reference_batch_size, cfg.lr_scaling)


def _betas(cfg: TrainConfig) -> tuple[float, float]:
    beta1, beta2 = cfg.betas  # validated as two numbers by the config
    return float(beta1), float(beta2)


def build_optimizer(model: nn.Module, cfg: TrainConfig, *, fused: bool = False) -> torch.optim.Optimizer:
    """Adam, AdamW or RMSprop over :func:`parameter_groups` at learning rate :func:`base_lr`.

    ``fused=True`` selects PyTorch's fused single-kernel Adam/AdamW (ignored for RMSprop, which has
    none; the multi-tensor "for-each" implementation is PyTorch's default there).
    """
    groups = parameter_groups(model, cfg.weight_decay)
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
