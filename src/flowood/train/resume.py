"""Exact resume: the global RNG states a checkpoint keeps, the settings a resume may change, and the check
that a run is not already finished.

A checkpoint (:meth:`flowood.train.trainer.Trainer.state`) holds the model, optimiser, scheduler, EMA and
scaler states, the counters, the data-order and dequantisation generators and the RNG states below, in
tensors, numbers and plain containers only (it is read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.errors import ConfigError
from flowood.runs import RunDir
from flowood.train.config import RunConfig, TrainConfig, apply_overrides, config_from_dict, load_config

RESUME_OVERRIDABLE = (
    "train.epochs",
    "train.max_steps",
    "train.max_minutes",
    "train.checkpoint_every",
    "train.sample_every",
)
"""Settings ``resume`` may change: when to stop and how often to write. Anything else would make the
continued run differ from an uninterrupted one."""


class RunFinishedError(ConfigError):
    """``resume`` of a run that its own limits (epochs, ``max_steps``, ``max_minutes``) already ended."""


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors, numbers and lists only, so checkpoints load with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (also a flowood 0.1 checkpoint's numpy / python tuples)."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    else:  # a flowood 0.1 checkpoint: numpy's own tuple
        np.random.set_state(npy)
    py = state["python"]
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    else:
        random.setstate(py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resumed_config(run_dir: Path, epochs: int | None, overrides: Sequence[str]) -> RunConfig:
    """The saved config of the run in ``run_dir`` with the allowed changes applied.

    Raises:
        ConfigError: not a run directory, an override outside :data:`RESUME_OVERRIDABLE`, or an invalid value.
    """
    cfg_path = RunDir(run_dir).require_run().config
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in RESUME_OVERRIDABLE:
            raise ConfigError(
                f"--set {text}: a resumed run can only change {', '.join(RESUME_OVERRIDABLE)} "
                "(anything else would not continue the same run; start a new one with --out)"
            )
    raw = apply_overrides(load_config(cfg_path), list(overrides))
    if epochs is not None:
        raw.setdefault("train", {})["epochs"] = epochs
    try:
        return config_from_dict(raw)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_resumable(run_dir: Path, t: TrainConfig, *, epoch: int, global_step: int, elapsed: float) -> None:
    """Refuse to resume a run that its limits have already stopped, naming the setting to lift.

    Raises:
        RunFinishedError: ``epoch``, ``global_step`` or ``elapsed`` (seconds) has reached its limit in ``t``.
    """
    if epoch >= t.epochs:
        raise RunFinishedError(
            f"{run_dir} has finished its {t.epochs} epochs; continue it with --epochs N (N > {t.epochs})"
        )
    if t.max_steps is not None and global_step >= t.max_steps:
        raise RunFinishedError(
            f"{run_dir} stopped at train.max_steps={t.max_steps}; continue it with --set train.max_steps=N "
            "(N larger, or null for no limit)"
        )
    if t.max_minutes is not None and elapsed >= t.max_minutes * 60:
        raise RunFinishedError(
            f"{run_dir} has used its train.max_minutes={t.max_minutes:g} ({elapsed / 60:.1f} min of training); "
            "continue it with --set train.max_minutes=M (the run's total, M larger) or train.max_minutes=null"
        )
