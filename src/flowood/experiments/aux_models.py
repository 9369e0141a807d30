"""The auxiliary models of the OOD detectors: their settings, their configs (derived from the evaluated run's
typed config) and how each scores the evaluation's samples.

Every auxiliary model is an ordinary run directory inside the evaluated run (:class:`flowood.runs.RunDir` names
them), obtained through :func:`flowood.experiments.derived_runs.train_or_reuse`, so it is reused exactly when its
``config.yaml`` equals the config wanted now and retrained otherwise:

* ``RUN/background/``: the likelihood ratio's background — the run's config (same architecture) trained on the
  derived dataset ``mutate-RATE[-xK]:DATASET`` (the run's training images with a share RATE of their values
  replaced by noise, K copies), **as long as the main model** (the optimiser steps the main run took, read from
  its ``metrics.csv``; :attr:`AuxSettings.background` caps it explicitly);
* ``RUN/ensemble/member-K/``: WAIC's members, the run's config with seeds ``seed + 101 + K``;
* ``RUN/general/<dataset>/``: the general model of ``general_likelihood_ratio``, the run's config trained on a
  broad dataset with the main model's budget;
* ``RUN/embedding-flow/`` on ``RUN/embeddings/<dataset>/<pipeline>/{train,test}.npz``: the tabular flow on
  pretrained-CNN features of the in-distribution training split (:class:`EmbeddingFlowSettings`).

Derived configs start from the run's typed :class:`~flowood.train.config.RunConfig`, so evaluate-time values
(``--data-root``, the device) carry through to every auxiliary model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.experiments.runs import Run
from flowood.features import FeatureSettings, read_embeddings
from flowood.ood import score_samples
from flowood.ood.detectors import Samples
from flowood.ood.detectors.baseline import nats_from_bpd
from flowood.perf import FastPath
from flowood.settings import check, setting
from flowood.train.config import DataConfig, RunConfig, apply_overrides, config_from_dict
from flowood.train.data import Standardizer
from flowood.train.presets import EMBEDDING_PRESETS, get_preset


@dataclass(frozen=True)
class AuxBudget:
    """How long one auxiliary image flow trains: a budget in optimiser steps, so that the same evaluation gives
    the same numbers on an idle and on a busy machine.

    Attributes:
        max_steps: at most this many steps; ``None``: as many as the main run took.
        minutes: a wall-clock safety cap on top (``None``: none). A model it cuts is short of its budget: the
            evaluation's report lists it under ``partial`` and the CLI says PARTIAL RESULTS.
    """

    minutes: float | None = setting(None, gt=0, doc="wall-clock safety cap (null: none)")
    max_steps: int | None = setting(None, ge=1, doc="step budget (null: the main model's steps)")

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class EmbeddingFlowSettings:
    """The tabular flow on CNN features: its preset and budget (shared with ``flowood demo --embeddings``).

    Attributes:
        preset: an embedding preset (``flowood presets``), e.g. ``tabular-embeddings-l2`` (unit-norm features,
            top 512 principal components).
        minutes: a wall-clock safety cap of its training (``None``: none; a flow it cuts is reported as partial).
        max_steps: its budget in steps (``None``: the preset's epochs); the preset's epochs are raised so that
            the steps decide.
        overrides: ``key=value`` overrides of the preset.
    """

    preset: str = setting("tabular-embeddings-l2", choices=EMBEDDING_PRESETS)
    minutes: float | None = setting(None, gt=0, doc="wall-clock safety cap")
    max_steps: int | None = setting(700, ge=1, doc="step budget")
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class AuxSettings:
    """Everything an evaluation's auxiliary models need beyond the detectors' own settings. Every budget is in
    optimiser steps (by default each image flow trains as many steps as the main model did), so an evaluation
    gives the same numbers on any machine; wall-clock caps are opt-in safeties.

    Attributes:
        background: budget of the likelihood ratio's background flow.
        ensemble: budget of each WAIC member.
        general: budget of the general model.
        test_limit: test images each auxiliary image flow evaluates at the end of its epochs.
        overrides: ``key=value`` overrides of the auxiliary image flows' configs.
        features: the feature pipeline every feature detector shares (extractor, size, training images).
        embedding_flow: the flow on those features.
    """

    background: AuxBudget = AuxBudget()
    ensemble: AuxBudget = AuxBudget()
    general: AuxBudget = AuxBudget()
    test_limit: int = setting(500, ge=1, doc="test images of each auxiliary image flow's epochs")
    overrides: tuple[str, ...] = ()
    features: FeatureSettings = FeatureSettings()
    embedding_flow: EmbeddingFlowSettings = EmbeddingFlowSettings()

    def __post_init__(self) -> None:
        check(self)


# ------------------------------------------------------------------------------------------ derived configs


def _budget(run: Run, budget: AuxBudget) -> dict[str, Any]:
    """``train`` overrides of an auxiliary flow: the main model's optimiser steps (its own limits when it logged
    no steps), capped by ``budget.max_steps``; ``budget.minutes`` as the wall-clock safety cap."""
    tr = run.config.train
    steps = run.steps or tr.max_steps
    if budget.max_steps is not None:
        steps = min(steps or budget.max_steps, budget.max_steps)
    # A run whose length is unknown (converted, no metrics) keeps its own cap unless one is given.
    minutes = budget.minutes if budget.minutes is not None or run.steps else tr.max_minutes
    return {"max_steps": steps, "max_minutes": minutes}


def aux_image_config(
    run: Run, *, seed: int, budget: AuxBudget, settings: AuxSettings, device: str, **data: Any
) -> RunConfig:
    """The run's config as an auxiliary image flow: ``seed``, the budget, no samples, no negative training, no
    OOD sets, at most ``settings.test_limit`` test images; ``data`` replaces fields of its ``data`` section."""
    cfg = copy.deepcopy(run.config)
    cfg.seed, cfg.device = seed, device
    d = cfg.data
    d.ood, d.negative_dataset = [], None
    d.test_limit = min(d.test_limit or settings.test_limit, settings.test_limit)
    for key, value in data.items():
        setattr(d, key, value)
    t = cfg.train
    for key, value in _budget(run, budget).items():
        setattr(t, key, value)
    t.sample_every, t.checkpoint_every = 0, 0
    if not settings.overrides:
        return config_from_dict(cfg.to_dict())  # validated like any config
    return config_from_dict(apply_overrides(cfg.to_dict(), list(settings.overrides)))


def mutated_dataset(dataset: str, rate: float, copies: int) -> str:
    """The derived dataset name of the background's training data: ``mutate-RATE[-xK]:DATASET``."""
    return f"mutate-{rate:g}{f'-x{copies}' if copies > 1 else ''}:{dataset}"


def background_config(run: Run, rate: float, copies: int, settings: AuxSettings, device: str) -> RunConfig:
    """The likelihood ratio's background: the run's config on its mutated training images, seed + 100."""
    return aux_image_config(
        run,
        seed=run.config.seed + 100,
        budget=settings.background,
        settings=settings,
        device=device,
        dataset=mutated_dataset(run.config.data.dataset, rate, copies),
    )


def member_config(run: Run, index: int, settings: AuxSettings, device: str) -> RunConfig:
    """WAIC's member ``index``: the run's config with seed ``seed + 101 + index``."""
    return aux_image_config(
        run, seed=run.config.seed + 101 + index, budget=settings.ensemble, settings=settings, device=device
    )


def general_config(run: Run, dataset: str, settings: AuxSettings, device: str) -> RunConfig:
    """The general model: the run's config trained on ``dataset`` (no class selection, no dataset options)."""
    return aux_image_config(
        run,
        seed=run.config.seed + 200,
        budget=settings.general,
        settings=settings,
        device=device,
        dataset=dataset,
        classes=None,
        ood_classes=None,
        options={},
    )


def capped_pca_dim(data: DataConfig, x: Tensor) -> int | None:
    """``data.pca_dim`` capped below the number of usable features and of training vectors ``x (N, F)``.

    A small extractor or a small training set has fewer components than a preset's 512, and the null
    directions of an undersized sample would be whitened into noise. Usable features are those the run's own
    :class:`~flowood.train.data.Standardizer` keeps (after ``drop_constant``), so the result never exceeds
    what it can project."""
    if data.pca_dim is None:
        return None
    kept = Standardizer.fit(
        x, transform=data.transform, log_offset=data.log_offset, drop_constant=data.drop_constant
    ).out_dim
    return min(data.pca_dim, max(1, min(kept, int(x.shape[0])) - 1))


def embedding_flow_config(
    settings: EmbeddingFlowSettings, embeddings: Path, *, seed: int, device: str, ood: tuple[str, ...] = ()
) -> RunConfig:
    """The embedding preset on the features in ``embeddings`` (a folder of ``train.npz``/``test.npz``), capped
    to the settings' budget, ``data.pca_dim`` capped to the training features (:func:`capped_pca_dim`)."""
    raw = get_preset(settings.preset)
    raw["data"]["dataset"] = f"embeddings:{Path(embeddings).resolve()}"
    raw["data"]["ood"] = list(ood)
    raw["train"]["max_minutes"] = settings.minutes
    raw["train"]["max_steps"] = settings.max_steps
    if settings.max_steps is not None:
        raw["train"]["epochs"] = max(raw["train"]["epochs"], 1000)  # the step budget decides
    raw["device"] = device
    raw["seed"] = seed
    cfg = config_from_dict(apply_overrides(raw, list(settings.overrides)))
    if cfg.data.pca_dim is not None:
        x = torch.from_numpy(next(iter(read_embeddings(Path(embeddings) / "train.npz").embeddings.values())))
        cfg.data.pca_dim = capped_pca_dim(cfg.data, x)
    return cfg


# ---------------------------------------------------------------------------------------------- scoring


@dataclass
class RunAuxFlow:
    """An auxiliary image flow (a loaded run directory): scores :class:`Samples` as the evaluation does."""

    run: Run
    batch_size: int
    fast: FastPath | None
    info: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.run.dir

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        """``(N,)`` nats of exactly ``samples`` (same dequantisation seed as the evaluation's)."""
        std = self.run.standardizer if samples.kind == "vector" else None
        bpd = score_samples(
            self.run.flow, samples.data, batch_size=self.batch_size, seed=samples.noise_seed, transform=std,
            fast=self.fast,
        )  # fmt: skip
        return nats_from_bpd(bpd, self.run.flow.num_dims)

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.run.dir), "steps": self.run.steps, **self.info}


@dataclass
class EmbeddingAuxFlow:
    """The tabular flow on CNN features: scores the features of :class:`Samples` that ``features`` gives."""

    run: Run
    features: Callable[[Samples], np.ndarray]
    batch_size: int
    pipeline: FeatureSettings
    train_cpu_seconds: float | None = None
    """CPU seconds this process spent training (or continuing) it now; ``None`` when it was reused."""

    @property
    def directory(self) -> Path:
        return self.run.dir

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        vectors = torch.from_numpy(np.ascontiguousarray(self.features(samples))).float()
        bpd = score_samples(self.run.flow, vectors, batch_size=self.batch_size, transform=self.run.standardizer)
        return nats_from_bpd(bpd, self.run.flow.num_dims)

    def describe(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run.dir),
            "extractor": self.pipeline.extractor,
            "size": self.pipeline.size,
            "flow_dim": self.run.flow.num_dims,
            "transform": self.run.config.data.transform,
            "pca_dim": self.run.config.data.pca_dim,
            "steps": self.run.steps,
            "train_cpu_seconds": self.train_cpu_seconds,
        }
