"""The one way to obtain a run — train it, continue it from its checkpoint, or reuse it — that every auxiliary
model of the detectors, the benchmark's main model, ``reproduce`` and the demos go through: a run directory is
reused only when its saved ``config.yaml`` equals the wanted typed config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flowood.errors import CheckpointError, ConfigError
from flowood.experiments.runs import read_config
from flowood.runs import RunDir
from flowood.train.config import RunConfig
from flowood.train.resume import RunFinishedError
from flowood.train.trainer import TrainResult, resume, train

Action = Literal["reused", "resumed", "trained"]


@dataclass(frozen=True)
class DerivedRun:
    """What :func:`train_or_reuse` did in ``directory``: ``reused`` a finished run of the same config, ``resumed``
    an unfinished one from its checkpoint, or ``trained`` it from scratch (``result`` of the training, if any)."""

    directory: Path
    action: Action
    result: TrainResult | None = None


def _saved_config(files: RunDir) -> RunConfig | None:
    """The config a directory's run was trained with, or ``None`` (no run, or a config this version refuses)."""
    if not files.is_run():
        return None
    try:
        return read_config(files.path)
    except (ConfigError, CheckpointError):
        return None


def train_or_reuse(
    directory: str | Path,
    config: RunConfig,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    label: str = "run",
) -> DerivedRun:
    """The one way to obtain a run of ``config`` in ``directory``.

    * its saved ``config.yaml`` equals ``config`` and a checkpoint is there: continue it (a run its own limits
      already ended is reused as it is — so an interrupted run is finished, never taken for a finished one);
    * the same config and weights without a checkpoint (written by ``flowood convert``): reuse it;
    * anything else (no run, another config — e.g. the main run was retrained for a different number of
      steps, the data moved, a setting changed): clear the directory's run files and train.

    ``config`` is the complete typed config, so everything that defines the model (data root, budget, seed,
    the derived dataset name) decides reuse; nothing is inferred from file names.

    Args:
        directory: the run directory (an auxiliary model's folder, the benchmark's ``OUT/run``, ...).
        config: the wanted run.
        quiet: no progress bars or per-epoch lines.
        log: where to say what happened (e.g. ``print``), or ``None``.
        label: what the run is, for ``log`` ("waic: ensemble member 0").
    """
    directory = Path(directory)
    files = RunDir(directory)
    say = log or (lambda message: None)
    if _saved_config(files) == config:
        if files.checkpoint.is_file():
            try:
                result = resume(directory, quiet=quiet)
            except RunFinishedError:
                say(f"{label}: reusing {directory} (finished, same config)")
                return DerivedRun(directory, "reused")
            say(f"{label}: continued {directory} from its checkpoint to step {result.steps}")
            return DerivedRun(directory, "resumed", result)
        if files.model.is_file() or files.model_ema.is_file():
            say(f"{label}: reusing {directory} (same config)")
            return DerivedRun(directory, "reused")
    say(f"{label}: training -> {directory}")
    return DerivedRun(directory, "trained", train(config, directory, quiet=quiet))
