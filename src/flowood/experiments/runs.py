"""Loading runs written by ``flowood train`` (the layout of a run directory is :class:`flowood.runs.RunDir`'s).

Loading rebuilds the flow with :func:`flowood.train.build.build_run_flow`; it does not import the training loop
(obtaining a run — train, continue or reuse — is :mod:`flowood.experiments.derived_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flowood.errors import CheckpointError, ConfigError
from flowood.evaluation import EvaluationReport, TrainingSummary
from flowood.flows import NormalizingFlow
from flowood.runs import RunDir
from flowood.train.build import build_run_flow
from flowood.train.checkpoint import load_checkpoint
from flowood.train.config import RunConfig, config_from_dict, load_config
from flowood.train.data import Standardizer


@dataclass
class Run:
    """A loaded run: its directory, typed config, trained flow (eval mode) and logs."""

    dir: Path
    config: RunConfig
    flow: NormalizingFlow
    metrics: list[dict[str, str]]
    standardizer: Standardizer | None
    weights_file: Path

    @property
    def report(self) -> EvaluationReport | None:
        """The run's ``report.json``, read when asked for (None before ``flowood evaluate``): a stale or
        newer-schema report never stops the run from loading, e.g. to be evaluated again."""
        return RunDir(self.dir).read_report()

    @property
    def steps(self) -> int | None:
        """Optimiser steps the run took (from ``metrics.csv``; ``None`` when it logged none)."""
        steps = [int(float(r["step"])) for r in self.metrics if r.get("step") not in (None, "")]
        return max(steps) if steps else None


def _input_shape(rundir: RunDir, weights: Path) -> tuple[int, ...]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise rundir.unreadable_weights(weights, err) from None
    if "input_shape" in meta:
        return tuple(int(s) for s in meta["input_shape"].split(","))
    raise CheckpointError(f"{weights} has no input_shape metadata; re-save it with flowood train")


def read_config(run_dir: str | Path) -> RunConfig:
    """The typed config saved in a run directory (one-line errors naming the file)."""
    rundir = RunDir(run_dir).require_run()
    try:
        return config_from_dict(load_config(rundir.config))
    except ValueError as err:
        raise ConfigError(f"{rundir.config}: {err}") from None


def load_run(run_dir: str | Path, *, device: str | torch.device = "cpu", weights: str = "auto") -> Run:
    """Load a run directory.

    Args:
        run_dir: directory written by ``flowood train`` or ``flowood demo``.
        device: where to put the flow.
        weights: ``auto`` (EMA weights when the run kept them), ``ema`` or ``raw``.
    """
    rundir = RunDir(run_dir).require_run()
    cfg = read_config(run_dir)
    path = rundir.weights(weights)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise rundir.unreadable_weights(path, err) from None
    shape = _input_shape(rundir, path)
    flow = build_run_flow(cfg, shape)
    try:
        flow.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"})
    except RuntimeError as err:  # missing / unexpected keys or shapes: config.yaml edited after training
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(
            f"{path} does not fit the model in {rundir.config} ({first}); was config.yaml edited after training? "
            "restore it, or train again with `flowood train --out DIR`"
        ) from None
    flow.to(device).eval()
    standardizer = Standardizer.load(rundir.standardize) if rundir.standardize.is_file() else None
    return Run(rundir.path, cfg, flow, rundir.read_metrics(), standardizer, path)


def training_summary(run_dir: str | Path) -> TrainingSummary | None:
    """How far the run in ``run_dir`` trained, and what stopped it, from its checkpoint's counters (the last
    ``metrics.csv`` row without one); ``None`` for a run that never trained here (``flowood convert``).

    ``stopped_by`` is the limit that ended the run (``epochs``, ``train.max_steps``, ``train.max_minutes``,
    ``train.early_stopping``) or ``interrupted`` when none did (a signal or a crash: ``flowood train --resume``
    continues it); :attr:`TrainingSummary.partial` says whether the model is short of its budget.
    """
    files = RunDir(run_dir)
    t = read_config(run_dir).train
    if files.checkpoint.is_file():
        state = load_checkpoint(files.checkpoint, mmap=True)
        epoch, in_epoch, steps = int(state["epoch"]), int(state["step_in_epoch"]), int(state["global_step"])
        elapsed, per_epoch = float(state.get("elapsed", 0.0)), state.get("steps_per_epoch")
        stopper = state.get("early_stopping") or {}
        stopped_early = t.early_stopping is not None and stopper.get("bad_epochs", 0) >= t.early_stopping.patience
    else:
        rows = files.read_metrics()
        if not rows:
            return None
        last = rows[-1]
        done = [r for r in rows if r.get("partial") in ("0", "", None)]
        epoch, steps = len(done), int(float(last.get("step") or 0))
        in_epoch = steps - int(float(done[-1]["step"])) if done else steps
        elapsed = float(last.get("seconds") or 0.0)
        per_epoch = int(float(done[0]["step"])) if done else None
        stopped_early = False
    planned = None
    if per_epoch:
        planned = int(per_epoch) * t.epochs
        planned = min(planned, t.max_steps) if t.max_steps is not None else planned
    if epoch >= t.epochs:
        stopped_by = "epochs"
    elif t.max_steps is not None and steps >= t.max_steps:
        stopped_by = "train.max_steps"
    elif stopped_early:
        stopped_by = "train.early_stopping"
    elif t.max_minutes is not None and elapsed >= t.max_minutes * 60:
        stopped_by = "train.max_minutes"
    else:
        stopped_by = "interrupted"
    return TrainingSummary(
        epochs=t.epochs,
        epochs_completed=epoch,
        steps=steps,
        partial_steps=in_epoch if epoch < t.epochs else 0,
        stopped_by=stopped_by,
        planned_steps=planned,
    )
