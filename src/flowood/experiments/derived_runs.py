"""The one way to obtain a run — train it, continue it from its checkpoint, or reuse it — that every auxiliary
model of the detectors, the benchmark's main model, ``reproduce`` and the demos go through: a run directory is
reused only when its saved ``config.yaml`` equals the wanted typed config."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flowood.errors import CheckpointError, ConfigError, RunInUseError, TrainingInterruptedError
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


def _differences(saved: RunConfig | None, wanted: RunConfig) -> str:
    """What differs between a saved run's config and the wanted one, in a few ``key: saved -> wanted`` words."""
    if saved is None:
        return "files of a run whose config.yaml this version cannot read"
    old, new = _flat(saved.to_dict()), _flat(wanted.to_dict())
    keys = [k for k in {**old, **new} if old.get(k) != new.get(k)]
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return f"a different config: {shown}{f' and {len(keys) - 3} more' if len(keys) > 3 else ''}"


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def train_or_reuse(
    directory: str | Path,
    config: RunConfig,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    label: str = "run",
    replace: bool = True,
) -> DerivedRun:
    """The one way to obtain a run of ``config`` in ``directory``.

    * its saved ``config.yaml`` equals ``config`` and a checkpoint is there: continue it (a run its own limits
      already ended is reused as it is — so an interrupted run is finished, never taken for a finished one);
      a config that differs only in the wall-clock safety cap ``train.max_minutes`` continues under the new cap
      (the cap does not define the model; a run it cut is finished when it is raised or lifted);
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
        replace: clear a run of another config (the auxiliary models' folders, which flowood owns); ``False``
            for a directory the user named (``flowood demo --out``): a run of another config there is refused.

    Raises:
        RunInUseError: ``replace=False`` and ``directory`` holds a run of another config (the message says what
            differs), or the directory is being written by another process.
        TrainingInterruptedError: a signal stopped the training (its checkpoint is kept; the message says to run
            the same command again, which continues it).
    """
    try:
        return _obtain(
            Path(directory), config, quiet=quiet, say=log or (lambda message: None), label=label, replace=replace
        )
    except TrainingInterruptedError:
        # The trainer's own message sends the user to `train --resume` on a folder the command chose for them.
        raise TrainingInterruptedError(
            f"{label} stopped by a signal; its checkpoint in {directory} is kept: run the same command again and it "
            "continues that training (a half-trained model is never reused)"
        ) from None


def _obtain(
    directory: Path, config: RunConfig, *, quiet: bool, say: Callable[[str], None], label: str, replace: bool
) -> DerivedRun:
    files = RunDir(directory)
    saved = _saved_config(files)
    same = saved is not None and _uncapped(saved) == _uncapped(config)
    if not same and not replace and files.has_run_files():
        differs = _differences(saved, config)
        raise RunInUseError(
            f"{directory} already holds another run ({differs}); keep it and choose another --out, or replace it "
            "with --force"
        )
    if same and saved is not None:
        if files.checkpoint.is_file():
            cap = config.train.max_minutes
            # The wall-clock cap is a safety, not part of the model: a run it cut continues under the new one.
            lift = [] if saved.train.max_minutes == cap else [f"train.max_minutes={'null' if cap is None else cap}"]
            try:
                result = resume(directory, quiet=quiet, overrides=lift)
            except RunFinishedError:
                say(f"{label}: reusing {directory} (finished, same config)")
                return DerivedRun(directory, "reused")
            say(f"{label}: continued {directory} from its checkpoint to step {result.steps}")
            return DerivedRun(directory, "resumed", result)
        if saved == config and (files.model.is_file() or files.model_ema.is_file()):
            say(f"{label}: reusing {directory} (same config)")
            return DerivedRun(directory, "reused")
    say(f"{label}: training -> {directory}")
    return DerivedRun(directory, "trained", train(config, directory, quiet=quiet))


def _uncapped(config: RunConfig) -> RunConfig:
    """``config`` without its wall-clock cap (``train.max_minutes``): what defines the model a run trains."""
    copy = deepcopy(config)
    copy.train.max_minutes = None
    return copy
