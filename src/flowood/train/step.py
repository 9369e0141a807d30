"""One optimisation step's arithmetic: learning rate, loss, backward, clipping, the single host read, the
update and the EMA.

The step reads the device once (:func:`measure`): the loss, the gradient norm that clipping computes anyway,
the logged bits/dim and, under ``torchrun``, the ranks' agreed stop flag, stacked into one transfer. What a
non-finite reading then does is :mod:`flowood.train.nonfinite`'s business; the counters live in the trainer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowood.flows import NormalizingFlow
from flowood.perf import FastPath
from flowood.train.config import RunConfig
from flowood.train.distributed import DistInfo, all_reduce_sum
from flowood.train.objective import compute_loss, unwrap_flow
from flowood.train.optim import clip_gradients


@dataclass(frozen=True)
class StepReading:
    """What the host learns from one step (all read in one device→host transfer)."""

    ok: bool
    """Loss and gradient norm finite (the update may be applied)."""
    loss_finite: bool
    train_bpd: float
    """The (global) batch's training bits/dim."""
    ood_train_bpd: float | None
    """Negative training: the OOD batch's bits/dim."""
    time_up: bool | None
    """Under ``torchrun``: whether any rank had run out of ``train.max_minutes`` (None in one process)."""
    signal: bool | None = None
    """Under ``torchrun``: whether any rank had received SIGINT/SIGTERM (None in one process)."""
    inversion_residual: float | None = None
    """``train.memory=invert``: this rank's largest round-trip residual of a recomputed block so far
    (:meth:`flowood.flows.invert.BackpropByInversion.max_residual`); ``None`` in ``store`` mode."""


def set_learning_rate(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, global_step: int, lr_scale: float
) -> None:
    """Each group's lr: its base lr × the schedule at ``global_step`` × the rollback factor ``lr_scale``."""
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=False):
        group["lr"] = base * scheduler.lr_lambdas[0](global_step) * lr_scale


def advance_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Count a step in the scheduler (the learning rate itself is set by :func:`set_learning_rate`)."""
    # A skipped (non-finite) first step would otherwise trigger torch's "scheduler before optimizer" warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        scheduler.step()


def measure(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    fast: FastPath,
    cfg: RunConfig,
    batch: Tensor,
    ood_batch: Tensor | None,
    *,
    kind: str,
    dequant_gen: torch.Generator,
    dist: DistInfo,
    time_up: bool,
    signal: Tensor | None = None,
) -> StepReading:
    """Forward, backward, unscale and clip (gradients left in place for :func:`update`); one host read.

    ``model`` is the flow or its DDP wrapper; ``time_up`` is this rank's clock and ``signal`` (a 0/1 scalar
    on the device) whether this rank received SIGINT/SIGTERM, both folded into the all-reduce.
    """
    if kind == "vector" and cfg.train.input_noise > 0:
        # The dequantisation generator is unused for vectors; it is checkpointed, so resume stays exact.
        noise = torch.randn(batch.shape, generator=dequant_gen, device=batch.device, dtype=batch.dtype)
        batch = batch + cfg.train.input_noise * noise
    batch = fast.prepare_input(batch)
    if ood_batch is not None:
        ood_batch = fast.prepare_input(ood_batch)
    with fast.autocast():
        loss, logs = compute_loss(model, batch, ood_batch, cfg)
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    max_norm = cfg.train.grad_clip if cfg.train.grad_clip else float("inf")
    grad_norm = clip_gradients(optimizer, max_norm, cfg.train.grad_clip_scope)
    loss_value, train_bpd = loss.detach().float(), logs["train_bpd"].float()
    wanted: dict[str, Tensor] = {}
    if dist.enabled:
        # One small all-reduce: the global mean loss and bits/dim, and whether any rank ran out of time.
        # Gradients are already averaged by DDP, so grad_norm agrees on all ranks.
        flags = [torch.tensor(float(time_up), device=loss.device)] + ([signal] if signal is not None else [])
        reduced = all_reduce_sum(torch.stack([loss_value, train_bpd, *flags]), dist)
        loss_value, train_bpd = reduced[0] / dist.world_size, reduced[1] / dist.world_size
        wanted["time_up"] = reduced[2] > 0
        if signal is not None:
            wanted["signal"] = reduced[3] > 0  # any rank's SIGINT/SIGTERM: all stop after this step
    loss_finite = torch.isfinite(loss_value)
    wanted.update(ok=loss_finite & torch.isfinite(grad_norm), loss_finite=loss_finite, train_bpd=train_bpd)
    if "ood_train_bpd" in logs:
        wanted["ood_train_bpd"] = logs["ood_train_bpd"]
    inversion = unwrap_flow(model).inversion
    residual = inversion.max_residual() if inversion is not None else None
    if residual is not None:
        # Read with the rest; each rank judges its own blocks (a fallback changes memory, not the gradients).
        wanted["inversion_residual"] = residual
    # The only host sync of the step: every value the host needs from it, read together.
    host = dict(zip(wanted, torch.stack([v.float() for v in wanted.values()]).tolist(), strict=True))
    return StepReading(
        ok=bool(host["ok"]),
        loss_finite=bool(host["loss_finite"]),
        train_bpd=host["train_bpd"],
        ood_train_bpd=host.get("ood_train_bpd"),
        time_up=bool(host["time_up"]) if dist.enabled else None,
        signal=bool(host["signal"]) if "signal" in host else None,
        inversion_residual=host.get("inversion_residual"),
    )


def update(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    ema: torch.optim.swa_utils.AveragedModel | None,
    flow: NormalizingFlow,
) -> None:
    """Apply the measured gradients (through the fp16 scaler if any) and update the EMA copy."""
    if scaler is not None:
        scaler.step(optimizer)
    else:
        optimizer.step()
    if ema is not None:
        ema.update_parameters(flow)
