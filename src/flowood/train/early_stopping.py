"""Early stopping: the best validation bits/dim so far, its weights, and the epochs since it improved."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from flowood.train.config import EarlyStopping


class EarlyStopper:
    """Tracks ``train.early_stopping`` (see :class:`flowood.train.config.EarlyStopping`); checkpointed via
    :meth:`state` / :meth:`load` so a resumed run stops where an uninterrupted one would."""

    def __init__(self, settings: EarlyStopping) -> None:
        self.settings = settings
        self.best = float("inf")
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.bad_epochs = 0

    def record(self, epoch: int, val_bpd: float, model: nn.Module) -> None:
        """Note epoch ``epoch``'s validation bits/dim; copies ``model``'s weights when it is a new best."""
        if math.isfinite(val_bpd) and val_bpd < self.best - self.settings.min_delta:
            self.best, self.best_epoch, self.bad_epochs = val_bpd, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.settings.patience

    def state(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), state["best_epoch"]
        self.best_state, self.bad_epochs = state["best_state"], int(state["bad_epochs"])
