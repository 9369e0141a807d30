""":class:`EvaluationContext`: the :class:`flowood.ood.detectors.FitContext` of one evaluated run.

Detectors ask it for the run's training samples, the feature pipeline's features and the auxiliary models;
it derives each auxiliary model's config (:mod:`flowood.experiments.aux_models`) and obtains the run through
:func:`flowood.experiments.derived_runs.train_or_reuse` (reused when its saved config equals the wanted one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from flowood.experiments.aux_models import (
    AuxSettings,
    EmbeddingAuxFlow,
    RunAuxFlow,
    background_config,
    embedding_flow_config,
    general_config,
    member_config,
)
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.runs import Run, load_run, training_summary
from flowood.features import embed_dataset, extract_features
from flowood.ood import score_samples
from flowood.ood.detectors import Samples
from flowood.perf import FastPath
from flowood.runs import RunDir
from flowood.train.config import RunConfig
from flowood.train.data import load_split


class EvaluationContext:
    """The :class:`~flowood.ood.detectors.FitContext` of ``run`` under evaluation.

    Args:
        run: the loaded run (its typed config carries evaluate-time values such as ``--data-root``).
        aux: the auxiliary models' settings and the feature pipeline.
        evaluated: names of the OOD sets under evaluation.
        device: where auxiliary models train and CNN features are computed.
        batch_size: scoring batch size.
        fast: the evaluation's precision / memory format (auxiliary flows score eagerly, never compiled).
        quiet: no progress bars or auxiliary-training logs.
    """

    def __init__(
        self,
        run: Run,
        aux: AuxSettings,
        *,
        evaluated: list[str],
        device: str = "auto",
        batch_size: int = 512,
        fast: FastPath | None = None,
        quiet: bool = False,
    ) -> None:
        self.run = run
        self.aux = aux
        self.files = RunDir(run.dir)
        self.flow = run.flow
        self.num_dims = run.flow.num_dims
        self.is_image = run.flow.preprocess is not None
        self.in_dataset = run.config.data.dataset
        self.evaluated = list(evaluated)
        self.batch_size = batch_size
        self.device = device
        self.fast = fast
        self.aux_fast = replace(fast, compile=False) if fast is not None else None
        self.quiet = quiet
        self.input_transform: Callable[[Tensor], Tensor] | None = None if self.is_image else run.standardizer
        self.partial: list[str] = []
        """One line per auxiliary model whose training stopped short of its budget (its wall-clock cap, a
        signal): the evaluation's report says so."""
        self._train: dict[int | None, Samples] = {}
        self._train_features: np.ndarray | None = None
        self._flow_device = next(run.flow.parameters()).device

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[scores] {message}", flush=True)

    # ---------------------------------------------------------------------------------------- training data

    def train_samples(self, limit: int | None) -> Samples:
        d = self.run.config.data
        caps = [c for c in (d.limit, limit) if c is not None]
        cap = min(caps) if caps else None
        if cap not in self._train:
            ds = load_split(d, "train", limit=cap, classes=d.classes, seed=self.run.config.seed)
            seed = self.run.config.seed + 7
            bpd = score_samples(
                self.flow,
                ds.data,
                batch_size=self.batch_size,
                seed=seed,
                transform=self.input_transform,
                fast=self.fast,
            )
            self._train[cap] = Samples(f"{d.dataset}/train", ds.data, ds.kind, bpd, noise_seed=seed)
        return self._train[cap]

    # ---------------------------------------------------------------------------------------- image flows

    def _obtain(self, directory: Path, config: RunConfig, label: str) -> Run:
        """The auxiliary run in ``directory`` (trained, continued or reused), noted when cut short."""
        train_or_reuse(directory, config, quiet=self.quiet, log=self.log, label=label)
        summary = training_summary(directory)
        if summary is not None and summary.partial:
            self.partial.append(f"{label} ({directory}): {summary.describe()}")
            self.log(f"WARNING: {label} {summary.describe()}: its scores are those of a partly trained model")
        return load_run(directory, device=self._flow_device)

    def _image_flow(self, directory: Path, config: RunConfig, label: str, info: dict[str, Any]) -> RunAuxFlow:
        aux = self._obtain(directory, config, label)
        if self.aux_fast is not None:
            self.aux_fast.prepare_model(aux.flow)
        return RunAuxFlow(aux, self.batch_size, self.aux_fast, info)

    def background_flow(self, mutation_rate: float, copies: int) -> RunAuxFlow:
        """The likelihood ratio's background in ``RUN/background`` (:func:`~.aux_models.background_config`)."""
        cfg = background_config(self.run, mutation_rate, copies, self.aux, self.device)
        info = {"mutation_rate": mutation_rate, "mutation_copies": copies, "dataset": cfg.data.dataset}
        return self._image_flow(self.files.background, cfg, "likelihood_ratio: background flow", info)

    def ensemble_member(self, index: int) -> RunAuxFlow:
        """WAIC's member ``index`` in ``RUN/ensemble/member-INDEX`` (:func:`~.aux_models.member_config`)."""
        cfg = member_config(self.run, index, self.aux, self.device)
        return self._image_flow(
            self.files.ensemble_member(index), cfg, f"waic: ensemble member {index}", {"seed": cfg.seed}
        )

    def general_flow(self, dataset: str) -> RunAuxFlow:
        """The general model in ``RUN/general/<dataset>`` (:func:`~.aux_models.general_config`)."""
        cfg = general_config(self.run, dataset, self.aux, self.device)
        return self._image_flow(
            self.files.general(dataset), cfg, "general_likelihood_ratio: general model", {"general_dataset": dataset}
        )

    # ---------------------------------------------------------------------------------------- features

    def describe_features(self) -> dict[str, Any]:
        f = self.aux.features
        return {"extractor": f.extractor, "size": f.size, "train_limit": f.train_limit}

    def _extract(self, images: np.ndarray, label: str) -> np.ndarray:
        f = self.aux.features
        return extract_features(
            images, f.extractor, size=f.size, device=self.device, progress=not self.quiet, desc=f"{label} {f.pipeline}"
        )

    def features(self, samples: Samples | None) -> np.ndarray:
        """CNN features of ``samples`` (cached on the set) or of the in-distribution training split (cached here;
        both cached on disk by content)."""
        key = f"features/{self.aux.features.pipeline}"
        if samples is None:
            if self._train_features is None:
                d = self.run.config.data
                ds = load_split(
                    d, "train", limit=self.aux.features.train_limit, classes=d.classes, seed=self.run.config.seed
                )
                self._train_features = self._extract(ds.data.numpy(), f"{d.dataset}/train")
            return self._train_features
        if key not in samples.cache:
            samples.cache[key] = self._extract(samples.images(), samples.key)
        return samples.cache[key]

    def embedding_flow(self) -> EmbeddingAuxFlow:
        """The tabular flow on the features of ``RUN/embeddings/<dataset>/<pipeline>/{train,test}.npz`` in
        ``RUN/embedding-flow`` (:func:`~.aux_models.embedding_flow_config`)."""
        run, f = self.run, self.aux.features
        d = run.config.data
        folder = self.files.embeddings(d.dataset, f.pipeline)
        for split, limit in (("train", f.train_limit), ("test", f.test_limit)):
            # Cheap when written before: the features are cached by content.
            embed_dataset(
                d.dataset,
                f.extractor,
                [split],
                folder / f"{split}.npz",
                size=f.size,
                device=self.device,
                limit=limit,
                data_root=d.root,
                seed=run.config.seed,
                classes=d.classes,
                progress=not self.quiet,
            )
        cfg = embedding_flow_config(self.aux.embedding_flow, folder, seed=run.config.seed, device=self.device)
        emb = self._obtain(self.files.embedding_flow, cfg, "embedding_likelihood: flow")
        return EmbeddingAuxFlow(emb, self.features, self.batch_size, f)
