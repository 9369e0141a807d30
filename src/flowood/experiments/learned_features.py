"""The learned feature extractor of an evaluated run, kept in ``RUN/features/<pipeline>/extractor/``.

Obtained by the rule every derived model follows (:func:`flowood.experiments.derived_runs.train_or_reuse`): the
directory's saved ``config.json`` equal to the one wanted now → reuse the weights; anything else (no extractor,
other settings, other training images, an interrupted write) → clear the extractor's files and train it. The
config names the training images by a fingerprint of their bytes and labels, so a run retrained on other data,
another seed or other settings never reuses a stale network. ``--force`` on the run clears it with the run
(:attr:`flowood.runs.RunDir.OWNED`). The budget is in optimiser steps: the same network on any machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from flowood.atomic import atomic_write, atomic_write_text
from flowood.errors import CheckpointError
from flowood.features import FeatureExtractor
from flowood.features.extractors import file_digest
from flowood.features.learned import extractor_from_state, train_cnn
from flowood.features.settings import LearnedSettings
from flowood.runs import ExtractorDir

FORMAT = 1
"""Version of the extractor directory's layout (part of the reuse key)."""


def data_fingerprint(images: torch.Tensor, labels: np.ndarray) -> str:
    """SHA-256 of the images' bytes, dtype and shape and of the labels: which data a model was fitted on."""
    digest = hashlib.sha256()
    arr = np.ascontiguousarray(images.numpy())
    digest.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    digest.update(arr.reshape(-1).view(np.uint8).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class LearnedExtractor:
    """The extractor and what is known about it.

    Attributes:
        extractor: the frozen network (:func:`flowood.features.extract_features` takes it).
        action: ``reused`` or ``trained`` now.
        config: the saved reuse key (settings, seed, dataset, data fingerprint, input shape).
        metrics: what training measured (steps, final loss, held-out accuracy, wall and CPU seconds).
        directory: where it lives.
    """

    extractor: FeatureExtractor
    action: Literal["reused", "trained"]
    config: dict[str, Any]
    metrics: dict[str, Any]
    directory: ExtractorDir

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.directory.path), "action": self.action, **self.config, "training": self.metrics}


def _saved(files: ExtractorDir) -> dict[str, Any] | None:
    try:
        return json.loads(files.config.read_text()) if files.config.is_file() and files.model.is_file() else None
    except (OSError, ValueError):
        return None


def learned_extractor(
    files: ExtractorDir,
    images: torch.Tensor,
    labels: np.ndarray,
    settings: LearnedSettings,
    *,
    seed: int,
    dataset: str,
    val: tuple[torch.Tensor, np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> LearnedExtractor:
    """Reuse or train the extractor of ``settings`` on ``images`` / ``labels`` in ``files``.

    Args:
        files: the extractor's directory (:meth:`flowood.runs.RunDir.learned_extractor`).
        images: ``uint8 (N, C, H, W)`` training images (the reference images' split).
        labels: their ``(N,)`` labels (``-1`` unlabelled).
        settings: objective, steps, width, learning rate.
        seed: the run's seed.
        dataset: the in-distribution dataset's name (recorded).
        val: held-out images and labels for the accuracy in ``metrics.json`` (never trained on).
        log: progress lines.
    """
    say = log or (lambda message: None)
    wanted = {
        "format": FORMAT,
        "settings": asdict(settings),
        "seed": seed,
        "dataset": dataset,
        "input_shape": list(images.shape[1:]),
        "images": int(images.shape[0]),
        "data_fingerprint": data_fingerprint(images, labels),
    }
    if _saved(files) == wanted:
        try:
            state = load_file(files.model)
            metrics = json.loads(files.metrics.read_text()) if files.metrics.is_file() else {}
        except (OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{files.model} is unreadable ({err}); delete {files.path} to retrain it") from None
        say(f"learned extractor: reusing {files.path} (same config)")
        action: Literal["reused", "trained"] = "reused"
    else:
        files.clear()
        say(f"learned extractor: training -> {files.path} ({settings.steps} steps)")
        trained = train_cnn(images, labels, settings, seed=seed, val=val)
        state = trained.state
        metrics = {"objective": trained.objective, "outputs": trained.num_outputs, **trained.metrics}
        files.path.mkdir(parents=True, exist_ok=True)
        atomic_write(files.model, lambda tmp: save_file({k: v.contiguous() for k, v in state.items()}, tmp))
        atomic_write_text(files.metrics, json.dumps(metrics, indent=2))
        atomic_write_text(files.config, json.dumps(wanted, indent=2))  # last: the reuse key marks a finished write
        action = "trained"
    extractor = extractor_from_state(state, settings, int(images.shape[-1]), f"sha256:{file_digest(files.model)}")
    return LearnedExtractor(extractor, action, wanted, metrics, files)
