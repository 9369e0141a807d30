"""The non-finite policy: what a step with a non-finite loss or gradient norm does (``train.nonfinite``).

``skip`` drops the update; ``rollback`` restores the weights and optimiser state of the last good snapshot
(taken every 50 steps while training is healthy) and lowers the learning rate by ``train.rollback_lr_factor``;
``raise`` stops at once. More than ``train.max_nonfinite`` consecutive non-finite steps raise under any
policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowood.errors import FlowoodError
from flowood.flows import NormalizingFlow
from flowood.train.config import TrainConfig

SNAPSHOT_EVERY = 50
"""Steps between rollback snapshots (a snapshot costs a copy of the weights and the optimiser state)."""


class TrainingDivergedError(FlowoodError):
    """Too many consecutive non-finite steps."""


def _clone_state(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_state(v) for v in obj]
    return obj


class NonfiniteGuard:
    """The policy's state: consecutive non-finite steps and, for ``rollback``, the last good snapshot."""

    def __init__(self, train: TrainConfig) -> None:
        self.train = train
        self.consecutive = 0
        self.good_state: dict[str, Any] | None = None

    def before_step(self, flow: NormalizingFlow, optimizer: torch.optim.Optimizer, global_step: int) -> None:
        """Under ``rollback``, snapshot the healthy state (first step, then every :data:`SNAPSHOT_EVERY`)."""
        if (
            self.train.nonfinite == "rollback"
            and self.consecutive == 0
            and (self.good_state is None or global_step % SNAPSHOT_EVERY == 0)
        ):
            self.good_state = {
                "model": {k: v.detach().clone() for k, v in flow.state_dict().items()},
                "optimizer": _clone_state(optimizer.state_dict()),
                "global_step": global_step,
            }

    def finite(self) -> None:
        """A good step: the consecutive count restarts."""
        self.consecutive = 0

    def nonfinite(
        self,
        flow: NormalizingFlow,
        optimizer: torch.optim.Optimizer,
        *,
        global_step: int,
        epoch: int,
        nonfinite_steps: int,
        checkpoint: Path,
    ) -> int | None:
        """Apply the policy to a non-finite step (``nonfinite_steps`` already counts it).

        Returns the step rolled back to (the caller lowers the learning rate), or None (skipped).

        Raises:
            TrainingDivergedError: policy ``raise``, or more than ``train.max_nonfinite`` in a row.
        """
        self.consecutive += 1
        if self.train.nonfinite == "raise" or self.consecutive > self.train.max_nonfinite:
            raise TrainingDivergedError(
                f"non-finite loss or gradients at step {global_step} (epoch {epoch}); "
                f"{nonfinite_steps} non-finite steps so far. Lower train.lr, set train.grad_clip, "
                f"or use --set train.nonfinite=rollback. Last checkpoint: {checkpoint}"
            )
        optimizer.zero_grad(set_to_none=True)
        if self.train.nonfinite != "rollback" or self.good_state is None:
            return None
        good = self.good_state
        flow.load_state_dict(good["model"])
        optimizer.load_state_dict(good["optimizer"])
        return int(good["global_step"])
