""":class:`EvaluationContext`: the :class:`flowood.ood.detectors.FitContext` of one evaluated run.

Detectors ask it for the run's training samples, the feature pipeline's features and the auxiliary models;
it derives each auxiliary model's config (:mod:`flowood.experiments.aux_models`) and obtains the run through
:func:`flowood.experiments.derived_runs.train_or_reuse` (reused when its saved config equals the wanted one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.data import dataset_info, pick_split
from flowood.data.base import ArrayDataset
from flowood.errors import ConfigError
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
from flowood.experiments.learned_features import LearnedExtractor, learned_extractor
from flowood.experiments.runs import Run, load_run, training_summary
from flowood.features import extract_features, write_embedding_split
from flowood.ood import score_samples
from flowood.ood.detectors import DETECTORS, Detector, Samples, get_detector
from flowood.perf import FastPath, cpu_threads
from flowood.runs import RunDir
from flowood.train.config import RunConfig
from flowood.train.data import Standardizer, load_split
from flowood.train.setup import training_part, vector_standardizer


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
        detectors: the evaluation's configured detectors (:meth:`detector` hands them out, fitted once).
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
        detectors: Sequence[Detector] = (),
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
        self._detectors: dict[str, Detector] = {d.info.name: d for d in detectors}
        self._reference_data: ArrayDataset | None = None
        self._reference_features: np.ndarray | None = None
        self._calibration: dict[int | None, Samples] = {}
        self._learned: LearnedExtractor | None = None
        self._embedding_cfg: RunConfig | None = None
        self._space: Standardizer | None = None
        self._flow_device = next(run.flow.parameters()).device

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[scores] {message}", flush=True)

    # ---------------------------------------------------------------------------------------- training data

    def _scored_split(self, split: str, limit: int | None, seed_offset: int, key: str) -> Samples:
        """``limit`` images of the in-distribution ``split`` (the run's classes, its seed) with their bits/dim
        under the run's flow (dequantisation seeded ``seed + seed_offset``)."""
        d = self.run.config.data
        ds = load_split(d, split, limit=limit, classes=d.classes, seed=self.run.config.seed)
        seed = self.run.config.seed + seed_offset
        bpd = score_samples(
            self.flow, ds.data, batch_size=self.batch_size, seed=seed, transform=self.input_transform, fast=self.fast
        )
        return Samples(f"{d.dataset}/{key}", ds.data, ds.kind, bpd, noise_seed=seed)

    def train_samples(self, limit: int | None) -> Samples:
        caps = [c for c in (self.run.config.data.limit, limit) if c is not None]
        cap = min(caps) if caps else None
        if cap not in self._train:
            self._train[cap] = self._scored_split("train", cap, 7, "train")
        return self._train[cap]

    # ---------------------------------------------------------------------------------------- image flows

    def _obtain(self, directory: Path, config: RunConfig, label: str) -> tuple[Run, str]:
        """The auxiliary run in ``directory`` (trained, continued or reused, as the returned action says),
        noted when cut short."""
        derived = train_or_reuse(directory, config, quiet=self.quiet, log=self.log, label=label)
        summary = training_summary(directory)
        if summary is not None and summary.partial:
            self.partial.append(f"{label} ({directory}): {summary.describe()}")
            self.log(f"WARNING: {label} {summary.describe()}: its scores are those of a partly trained model")
        return load_run(directory, device=self._flow_device), derived.action

    def _image_flow(self, directory: Path, config: RunConfig, label: str, info: dict[str, Any]) -> RunAuxFlow:
        aux, _ = self._obtain(directory, config, label)
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
        described: dict[str, Any] = {
            "extractor": f.extractor,
            "size": f.size,
            "train_limit": f.train_limit,
            "reference_split": self._reference_split(),
        }
        if f.is_learned:
            described["learned"] = self.learned_extractor().describe()
        return described

    def _split_of(self, preferred: str) -> str | None:
        """``preferred`` when the in-distribution dataset has it, else ``None``."""
        d = self.run.config.data
        return preferred if preferred in dataset_info(d.dataset, d.root).splits else None

    def _reference_split(self) -> str:
        """The training split's ``fit`` part (its ``val`` part calibrates), or the whole training split."""
        return self._split_of("fit") or pick_split(self.run.config.data.dataset, "train")

    def _reference(self) -> ArrayDataset:
        """The reference images every feature model is fitted on: ``train_limit`` of the reference split."""
        if self._reference_data is None:
            d = self.run.config.data
            limit = self.aux.features.train_limit
            self._reference_data = load_split(
                d, self._reference_split(), limit=limit, classes=d.classes, seed=self.run.config.seed
            )
        return self._reference_data

    def calibration_samples(self, limit: int | None) -> Samples:
        d = self.run.config.data
        split = self._split_of("val")
        if split is None:
            raise ConfigError(
                f"{d.dataset} has no val split to calibrate a combination on (no training images held out of the "
                "feature models); choose a dataset with a training split"
            )
        if limit not in self._calibration:
            self._calibration[limit] = self._scored_split(split, limit, 9, "calibration")
        return self._calibration[limit]

    def learned_extractor(self) -> LearnedExtractor:
        """The CNN learnt from the run's reference split (all of it, within the run's ``data.limit``), trained or
        reused in ``RUN/features/<pipeline>/extractor``; its held-out accuracy is measured on the ``val`` part."""
        if self._learned is None:
            f, d = self.aux.features, self.run.config.data
            seed = self.run.config.seed
            ds = load_split(d, self._reference_split(), limit=d.limit, classes=d.classes, seed=seed)
            val_split = self._split_of("val")
            val = load_split(d, val_split, limit=2000, classes=d.classes, seed=seed) if val_split else None
            with cpu_threads(1):  # one thread: the same network on every machine, whatever its load
                self._learned = learned_extractor(
                    self.files.learned_extractor(f.pipeline),
                    ds.data,
                    ds.labels.numpy(),
                    f.learned,
                    seed=seed,
                    dataset=d.dataset,
                    val=(val.data, val.labels.numpy()) if val is not None else None,
                    log=self.log,
                )
        return self._learned

    def _extract(self, images: np.ndarray, label: str, cache: bool = True) -> np.ndarray:
        f = self.aux.features
        extractor = self.learned_extractor().extractor if f.is_learned else f.extractor
        return extract_features(
            images, extractor, size=None if f.is_learned else f.size, device=self.device,
            progress=not self.quiet and cache, desc=f"{label} {f.pipeline}", cache=cache,
        )  # fmt: skip

    def feature_seconds_per_image(self, images: np.ndarray, sample: int = 256) -> float:
        """Wall seconds the feature extractor takes per image, timed on up to ``sample`` of ``images`` with the
        content cache off (what a new image costs; the cache would make repeated evaluations look free)."""
        part = images[:sample]
        self._extract(part[:8], "warm-up", cache=False)  # weights loaded, kernels chosen: not per-image work
        start = time.perf_counter()
        self._extract(part, "timing", cache=False)
        return (time.perf_counter() - start) / max(1, len(part))

    def features(self, samples: Samples | None) -> np.ndarray:
        """CNN features of ``samples`` (cached on the set) or of the reference images (cached here; both cached
        on disk by content)."""
        key = f"features/{self.aux.features.pipeline}"
        if samples is None:
            if self._reference_features is None:
                ref = self._reference()
                self._reference_features = self._extract(ref.data.numpy(), f"{self.in_dataset}/reference")
            return self._reference_features
        if key not in samples.cache:
            samples.cache[key] = self._extract(samples.images(), samples.key)
        return samples.cache[key]

    def feature_labels(self) -> np.ndarray | None:
        labels = self._reference().labels.numpy().astype(np.int64)
        return labels if np.unique(labels[labels >= 0]).size >= 2 else None

    def _embedding_folder(self) -> Path:
        """``RUN/features/<pipeline>/{train,test}.npz``: the reference features and the test split's, the data of
        the embedding flow (rewritten from the content-cached features, so always this evaluation's)."""
        f, d = self.aux.features, self.run.config.data
        folder = self.files.feature_pipeline(f.pipeline)
        meta = {"dataset": d.dataset, "extractor": f.extractor, "pipeline": f.pipeline, "seed": self.run.config.seed}
        ref = self._reference()
        write_embedding_split(folder / "train.npz", "train", self.features(None), ref.labels.numpy(), meta)
        test = load_split(d, "test", limit=f.test_limit, classes=d.classes, seed=self.run.config.seed)
        feats = self._extract(test.data.numpy(), f"{d.dataset}/test")
        write_embedding_split(folder / "test.npz", "test", feats, test.labels.numpy(), meta)
        return folder

    def _embedding_config(self) -> RunConfig:
        if self._embedding_cfg is None:
            folder = self._embedding_folder()
            self._embedding_cfg = embedding_flow_config(
                self.aux.embedding_flow, folder, seed=self.run.config.seed, device=self.device
            )
        return self._embedding_cfg

    def _coordinates(self) -> Standardizer:
        """The embedding flow's transform, fitted exactly as its training fits it on the reference features."""
        if self._space is None:
            cfg = self._embedding_config()
            train_x, _ = training_part(cfg, torch.from_numpy(np.ascontiguousarray(self.features(None))))
            std = vector_standardizer(cfg, train_x)
            if std is None:
                raise ConfigError(f"{self.aux.embedding_flow.preset}: an embedding preset must standardise its vectors")
            self._space = std
        return self._space

    def feature_coordinates(self, samples: Samples | None) -> np.ndarray:
        key = f"coordinates/{self.aux.features.pipeline}/{self.aux.embedding_flow.preset}"
        if samples is not None and key in samples.cache:
            return samples.cache[key]
        x = torch.from_numpy(np.ascontiguousarray(self.features(samples), dtype=np.float32))
        coords = self._coordinates()(x).numpy().astype(np.float64)
        if samples is not None:
            samples.cache[key] = coords
        return coords

    def detector(self, name: str, *, fit: bool = True) -> Detector:
        det = self._detectors.get(name)
        if det is None:
            det = self._detectors[name] = DETECTORS[name]() if name in DETECTORS else get_detector(name)
        if fit:
            self.fit(det)
        return det

    def fit(self, det: Detector) -> None:
        """Fit ``det`` unless it is fitted already (a detector another one read is fitted once)."""
        if not det.fitted:
            det.fit(self)

    def embedding_flow(self) -> EmbeddingAuxFlow:
        """The tabular flow on the pipeline's features (``RUN/features/<pipeline>/{train,test}.npz``) in
        ``RUN/features/<pipeline>/embedding-flow`` (:func:`~.aux_models.embedding_flow_config`)."""
        cfg = self._embedding_config()
        directory = self.files.pipeline_embedding_flow(self.aux.features.pipeline)
        cpu = time.process_time()
        emb, action = self._obtain(directory, cfg, "embedding_likelihood: flow")
        spent = time.process_time() - cpu if action != "reused" else None
        return EmbeddingAuxFlow(emb, self.features, self.batch_size, self.aux.features, spent)
