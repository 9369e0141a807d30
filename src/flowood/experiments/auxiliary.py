"""Auxiliary models of the OOD detectors, trained with flowood's normal training and cached in the run directory.

:class:`RunContext` is the :class:`flowood.ood.detectors.FitContext` of one evaluated run: detectors ask it
for the run's training samples and for auxiliary flows; it trains those on first use and reuses them after.

* ``RUN/background/``: the likelihood-ratio background, an ordinary run directory whose config is the run's
  (same architecture) with ``data.dataset = npz:RUN/background/data/mutated.npz`` (training and test images
  mutated with rate μ); trained **as long as the main model** (the same number of optimiser steps the main run
  took, read from its ``metrics.csv``; ``ScoreSettings.background_minutes`` caps it explicitly).
  ``RUN/background/mutation.json`` records μ and the budget (a different one retrains it).
* ``RUN/ensemble/member-K/``: WAIC members, the run's config with seeds ``seed + 101 + K``.
* ``RUN/general/<dataset>/``: the general model of ``general_likelihood_ratio``, the run's config trained on
  the broad dataset with the main model's budget.
* ``RUN/embedding-flow/`` (+ ``RUN/embeddings/``): the tabular flow on pretrained-CNN features of the
  in-distribution training split, the layout ``flowood demo --embeddings`` writes (reused when present).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.atomic import atomic_write_text
from flowood.errors import ConfigError, FieldError
from flowood.experiments.runs import Run, load_run
from flowood.features import embed_dataset, extract_features, read_embeddings
from flowood.ood import score_bits_per_dim
from flowood.ood.detectors import DEFAULT_MUTATION_RATE, Samples, mutate_images
from flowood.ood.detectors.complexity import COMPRESSORS
from flowood.ood.detectors.dose import DOSE_ESTIMATORS
from flowood.ood.detectors.likelihood import nats_from_bpd
from flowood.perf import FastPath
from flowood.runs import RunDir
from flowood.train.config import DataConfig, apply_overrides, config_from_dict
from flowood.train.data import Standardizer, TensorBatches, load_split
from flowood.train.presets import EMBEDDING_PRESETS, get_preset
from flowood.train.trainer import train


@dataclass
class ScoreSettings:
    """Settings of the detectors and sizes of their auxiliary models (defaults: CPU-sized).

    Detector settings are passed by name to every detector that takes them
    (:meth:`flowood.ood.detectors.Detector.from_settings`); the rest size the auxiliary training here.

    Attributes:
        mutation_rate, mutation_copies: the likelihood-ratio background's μ and mutated copies of the training set.
        background_minutes: explicit wall-clock cap of the background and the general model (``None``: the main
            model's budget, i.e. as many optimiser steps as the main run took).
        ensemble_size: K, the number of WAIC members.
        member_minutes: training cap of each WAIC member (``None``: the main model's budget).
        aux_max_steps: step cap of every auxiliary image flow (``None``: only the budgets above).
        aux_test_limit: test images the auxiliary flows evaluate at the end of each epoch.
        aux_overrides: ``key=value`` overrides of the auxiliary flows' configs.
        typicality_m, typicality_batches, typicality_train_limit: typicality's M, batches per set and the
            training samples of its mean-NLL estimate (also used by ``typicality_m1``).
        compressor: ``input_complexity`` / ``compressed_size`` compressor (``png``, ``zlib``, ``bz2``, ``lzma``).
        extractor, embedding_size: CNN and input resolution of the embedding detectors.
        embedding_train_limit, embedding_test_limit: in-distribution images embedded for the embedding models.
        embedding_preset: the preset of ``embedding_likelihood``'s flow (an embedding preset: ``flowood presets``).
        embedding_minutes, embedding_max_steps, embedding_overrides: the embedding flow's budget and preset overrides.
        dose_train_limit, dose_estimator, dose_cv_folds: DoSE's training statistics, ``kde`` or ``ocsvm``, CV folds.
        general_dataset: the broad dataset of ``general_likelihood_ratio``.
        gaussian_reg_covar: covariance regulariser of ``embedding_gaussian``.
    """

    mutation_rate: float = DEFAULT_MUTATION_RATE
    mutation_copies: int = 1
    background_minutes: float | None = None
    ensemble_size: int = 3
    member_minutes: float | None = 1.0
    aux_max_steps: int | None = None
    aux_test_limit: int = 500
    aux_overrides: list[str] = field(default_factory=list)
    typicality_m: int = 10
    typicality_batches: int = 200
    typicality_train_limit: int | None = 2000
    compressor: str = "png"
    extractor: str = "efficientnet-lite0"
    embedding_size: int = 64
    embedding_train_limit: int | None = 3000
    embedding_test_limit: int | None = 1000
    embedding_preset: str = "tabular-embeddings-l2"
    embedding_minutes: float = 1.5
    embedding_max_steps: int | None = 700
    embedding_overrides: list[str] = field(default_factory=list)
    dose_train_limit: int | None = 2000
    dose_estimator: str = "kde"
    dose_cv_folds: int = 5
    general_dataset: str | None = None
    gaussian_reg_covar: float = 1e-4

    def __post_init__(self) -> None:
        """Refuse values no detector can use, before any scoring or auxiliary training starts.

        Raises:
            FieldError: one line naming the field (the CLI re-raises it with the flag's name).
        """
        _check_field_types(self)
        if not 0 <= self.mutation_rate <= 1:
            raise FieldError(
                "mutation_rate", f"{{name}} {self.mutation_rate:g}: give a mutation rate in [0, 1] (default 0.2)"
            )
        if self.dose_estimator not in DOSE_ESTIMATORS:
            raise FieldError("dose_estimator", f"{{name}} {self.dose_estimator}: choose {' or '.join(DOSE_ESTIMATORS)}")
        if self.compressor not in COMPRESSORS:
            raise FieldError("compressor", f"{{name}} {self.compressor}: choose one of {', '.join(COMPRESSORS)}")
        if self.embedding_preset not in EMBEDDING_PRESETS:
            raise FieldError(
                "embedding_preset",
                f"{{name}} {self.embedding_preset}: choose an embedding preset, one of {', '.join(EMBEDDING_PRESETS)}",
            )
        _at_least("ensemble_size", self.ensemble_size, 1, "a number of flows")
        _at_least("mutation_copies", self.mutation_copies, 1, "a number of mutated copies")
        _at_least("typicality_m", self.typicality_m, 1, "a number of samples per batch")
        _at_least("typicality_batches", self.typicality_batches, 1, "a number of batches")
        _at_least("dose_cv_folds", self.dose_cv_folds, 2, "a number of cross-validation folds")
        for name in ("member_minutes", "background_minutes", "embedding_minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise FieldError(name, f"{{name}} {value:g}: give a training time in minutes > 0 (or leave it out)")
        for name in ("aux_max_steps", "aux_test_limit", "typicality_train_limit", "dose_train_limit"):
            value = getattr(self, name)
            if value is not None:
                _at_least(name, value, 1, "a number")


def _check_field_types(settings: ScoreSettings) -> None:
    """Each field holds a value of its annotated type (an int is a float; a bool is not a number)."""
    hints = typing.get_type_hints(ScoreSettings)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        hint = hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if not any(_is_a(value, t) for t in allowed):
            names = " or ".join("None" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
            raise FieldError(f.name, f"{{name}} {value!r}: expected {names}")


def _is_a(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return isinstance(value, list) and all(_is_a(v, item) for v in value)
    return isinstance(value, kind)


def _at_least(name: str, value: int, low: int, what: str) -> None:
    if value < low:
        raise FieldError(name, f"{{name}} {value}: give {what} >= {low}")


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


def has_weights(run_dir: Path) -> bool:
    """``run_dir`` holds a finished run (config and weights)."""
    files = RunDir(run_dir)
    return files.config.is_file() and (files.model.is_file() or files.model_ema.is_file())


def main_budget(run: Run) -> dict[str, Any]:
    """The main model's training budget as ``train`` overrides: the optimiser steps it took (from
    ``metrics.csv``) with no wall-clock cap, so an auxiliary flow trains as long as the main model whatever
    the machine's load; the run's own ``train`` section when it logged no steps."""
    steps = [int(float(r["step"])) for r in run.metrics if r.get("step") not in (None, "")]
    tr = run.config.get("train", {})
    if not steps or max(steps) <= 0:
        return {"max_minutes": tr.get("max_minutes"), "max_steps": tr.get("max_steps")}
    return {"max_minutes": None, "max_steps": max(steps)}


@dataclass
class RunAuxFlow:
    """An auxiliary flow that is an ordinary run directory; scores :class:`Samples` like the evaluation."""

    directory: Path
    run: Run
    batch_size: int
    fast: FastPath | None
    info: dict[str, Any]

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        device = next(self.run.flow.parameters()).device
        std = self.run.standardizer
        transform = std if (samples.kind == "vector" and std is not None) else None
        data = samples.data.float() if samples.kind == "vector" else samples.data
        batches = TensorBatches(data, samples.kind, device).sequential(self.batch_size)
        with torch.inference_mode():
            bpd = score_bits_per_dim(
                self.run.flow, batches, seed=samples.noise_seed, transform=transform, fast=self.fast
            )
        return nats_from_bpd(bpd, self.run.flow.num_dims)

    def describe(self) -> dict[str, Any]:
        steps = [int(float(r["step"])) for r in self.run.metrics if r.get("step") not in (None, "")]
        return {"dir": str(self.directory), "steps": max(steps) if steps else None, **self.info}


@dataclass
class EmbeddingAuxFlow:
    """The tabular flow on CNN features: scores the features of :class:`Samples` (extracted on demand)."""

    directory: Path
    run: Run
    context: RunContext
    extractor: str
    size: int

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        feats = self.context.features(samples, self.extractor, self.size)
        vec = torch.from_numpy(np.ascontiguousarray(feats)).float()
        device = next(self.run.flow.parameters()).device
        vectors = TensorBatches(vec, "vector", device).sequential(self.context.batch_size)
        with torch.inference_mode():
            bpd = score_bits_per_dim(self.run.flow, vectors, transform=self.run.standardizer)
        return nats_from_bpd(bpd, self.run.flow.num_dims)

    def describe(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.directory),
            "extractor": self.extractor,
            "size": self.size,
            "flow_dim": self.run.flow.num_dims,
            "transform": self.run.run_config.data.transform,
            "pca_dim": self.run.run_config.data.pca_dim,
        }


def _embedding_source(emb_run: Run) -> tuple[str, int]:
    """Extractor name and input size of an embedding-flow run, read from its training file's metadata."""
    name = emb_run.run_config.data.dataset
    path = Path(name.split(":", 1)[1] if ":" in name else name)
    file = path / "train.npz" if path.is_dir() else path
    meta = read_embeddings(file).metadata
    if "extractor" not in meta:
        raise ConfigError(f"{file} does not say which extractor made it; re-embed with `flowood embed`")
    return str(meta["extractor"]), int(meta.get("size") or 0)


class RunContext:
    """The :class:`~flowood.ood.detectors.FitContext` of one run under evaluation."""

    def __init__(
        self,
        run: Run,
        settings: ScoreSettings,
        *,
        evaluated: list[str],
        device: str = "auto",
        batch_size: int = 512,
        fast: FastPath | None = None,
        quiet: bool = False,
    ) -> None:
        self.run = run
        self.settings = settings
        self.flow = run.flow
        self.num_dims = run.flow.num_dims
        self.is_image = run.flow.preprocess is not None
        self.in_dataset = run.run_config.data.dataset
        self.evaluated = list(evaluated)
        self.batch_size = batch_size
        self.device = device
        self.fast = fast
        # Auxiliary flows are scored eagerly (never compiled).
        self.aux_fast = replace(fast, compile=False) if fast is not None else None
        self.quiet = quiet
        self.input_transform: Callable[[Tensor], Tensor] | None = None if self.is_image else run.standardizer
        self._train: dict[int | None, Samples] = {}
        self._flow_device = next(run.flow.parameters()).device

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[scores] {message}", flush=True)

    # ---------------------------------------------------------------------------------------- training data

    def train_samples(self, limit: int | None) -> Samples:
        d = self.run.run_config.data
        caps = [c for c in (d.limit, limit) if c is not None]
        cap = min(caps) if caps else None
        if cap not in self._train:
            ds = load_split(d, "train", limit=cap, classes=d.classes, seed=self.run.run_config.seed)
            seed = self.run.run_config.seed + 7
            data = ds.data.float() if ds.kind == "vector" else ds.data
            batches = TensorBatches(data, ds.kind, self._flow_device).sequential(self.batch_size)
            with torch.inference_mode():
                bpd = score_bits_per_dim(self.flow, batches, seed=seed, transform=self.input_transform, fast=self.fast)
            self._train[cap] = Samples(f"{d.dataset}/train", ds.data, ds.kind, bpd, noise_seed=seed)
        return self._train[cap]

    # ---------------------------------------------------------------------------------------- image flows

    def _aux_config(self, *, seed: int, minutes: float | None) -> dict[str, Any]:
        """The run's config with the auxiliary budget: no samples, no negative training, no OOD sets."""
        s = self.settings
        raw = copy.deepcopy(self.run.config)
        for key in ("description", "paper", "name", "parameters", "input_shape"):
            raw.pop(key, None)
        raw["seed"] = seed
        raw["device"] = self.device
        data = raw.setdefault("data", {})
        data["ood"] = []
        data["negative_dataset"] = None
        data["test_limit"] = min(data.get("test_limit") or s.aux_test_limit, s.aux_test_limit)
        tr = raw.setdefault("train", {})
        tr.update(main_budget(self.run) if minutes is None else {"max_minutes": minutes})
        if s.aux_max_steps is not None:
            tr["max_steps"] = min(tr.get("max_steps") or s.aux_max_steps, s.aux_max_steps)
        tr["sample_every"] = 0
        tr["checkpoint_every"] = 0
        return apply_overrides(raw, list(s.aux_overrides))

    def _aux(self, directory: Path, info: dict[str, Any]) -> RunAuxFlow:
        aux = load_run(directory, device=self._flow_device)
        if self.aux_fast is not None:
            self.aux_fast.prepare_model(aux.flow)
        return RunAuxFlow(directory, aux, self.batch_size, self.aux_fast, info)

    def background_flow(self, mutation_rate: float, copies: int) -> RunAuxFlow:
        """Train (or reuse) the likelihood-ratio background in ``RUN/background`` (see the module docstring)."""
        run, s = self.run, self.settings
        bg = run.dir / "background"
        raw = self._aux_config(seed=run.run_config.seed + 100, minutes=s.background_minutes)
        want = {"mutation_rate": float(mutation_rate), "copies": int(copies), "train": raw["train"]}
        meta = bg / "mutation.json"
        info = {"mutation_rate": float(mutation_rate), "mutation_copies": int(copies), "budget": raw["train"]}
        if has_weights(bg) and meta.is_file() and json.loads(meta.read_text()).get("mutation") == want:
            return self._aux(bg, info)
        if bg.exists():
            shutil.rmtree(bg)
        d = run.run_config.data
        seed = run.run_config.seed
        train_ds = load_split(d, "train", limit=d.limit, classes=d.classes, seed=seed)
        if train_ds.kind != "image":
            raise ConfigError("likelihood_ratio needs an image run (the background is trained on mutated pixels)")
        test_limit = min(d.test_limit or s.aux_test_limit, s.aux_test_limit)
        test_ds = load_split(d, "test", limit=test_limit, classes=d.classes, seed=seed)
        base = train_ds.data.numpy()
        x_train = np.concatenate([mutate_images(base, mutation_rate, seed=1000 + seed + c) for c in range(copies)])
        x_test = mutate_images(test_ds.data.numpy(), mutation_rate, seed=2000 + seed)
        (bg / "data").mkdir(parents=True)
        file = bg / "data" / "mutated.npz"
        np.savez(file, x_train=x_train, x_test=x_test)
        raw["data"] = {"dataset": f"npz:{file.resolve()}", "ood": []}
        self.log(
            f"likelihood_ratio: training the background flow on {len(x_train)} images mutated with rate "
            f"{mutation_rate} -> {bg} (budget {raw['train'].get('max_steps')} steps / "
            f"{raw['train'].get('max_minutes')} min)"
        )
        train(config_from_dict(raw), bg, quiet=self.quiet)
        atomic_write_text(meta, json.dumps({"mutation": want, "seed": seed}, indent=2))
        return self._aux(bg, info)

    def ensemble_member(self, index: int) -> RunAuxFlow:
        """Train (or reuse) ``RUN/ensemble/member-INDEX`` (the run's config, seed ``seed + 101 + index``)."""
        member = self.run.dir / "ensemble" / f"member-{index}"
        seed = self.run.run_config.seed + 101 + index
        if not has_weights(member):
            if member.exists():
                shutil.rmtree(member)
            raw = self._aux_config(seed=seed, minutes=self.settings.member_minutes)
            self.log(f"waic: training ensemble member {index} (seed {seed}) -> {member}")
            train(config_from_dict(raw), member, quiet=self.quiet)
        return self._aux(member, {"seed": seed})

    def general_flow(self, dataset: str) -> RunAuxFlow:
        """Train (or reuse) ``RUN/general/<dataset>``: the run's config on ``dataset`` with the main budget."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
        out = self.run.dir / "general" / safe
        if not has_weights(out):
            if out.exists():
                shutil.rmtree(out)
            raw = self._aux_config(seed=self.run.run_config.seed + 200, minutes=self.settings.background_minutes)
            data = raw["data"]
            data.update({"dataset": dataset, "classes": None, "options": {}, "ood_classes": None})
            self.log(f"general_likelihood_ratio: training the general model on {dataset} -> {out}")
            train(config_from_dict(raw), out, quiet=self.quiet)
        return self._aux(out, {"general_dataset": dataset})

    # ---------------------------------------------------------------------------------------- embeddings

    def _fit_pca_dim(self, raw: dict[str, Any], train_file: Path) -> None:
        """Cap ``raw``'s ``data.pca_dim`` to the training embeddings in ``train_file`` (:func:`capped_pca_dim`)."""
        cfg = config_from_dict(raw).data
        if cfg.pca_dim is None:
            return
        x = torch.from_numpy(next(iter(read_embeddings(train_file).embeddings.values())))
        cap = capped_pca_dim(cfg, x)
        if cap != cfg.pca_dim:
            self.log(f"embedding_likelihood: data.pca_dim {cfg.pca_dim} -> {cap} ({x.shape[0]} training embeddings)")
            raw["data"]["pca_dim"] = cap

    def features(self, samples: Samples | None, extractor: str, size: int, limit: int | None = None) -> np.ndarray:
        """CNN features of ``samples`` or of the in-distribution training split (cached by content on disk)."""
        key = f"features/{extractor}/{size}"
        if samples is None:
            d = self.run.run_config.data
            ds = load_split(d, "train", limit=limit, classes=d.classes, seed=self.run.run_config.seed)
            samples = Samples(f"{d.dataset}/train", ds.data, ds.kind, np.zeros(len(ds)))
        if key not in samples.cache:
            samples.cache[key] = extract_features(
                samples.images(),
                extractor,
                size=size,
                device=self.device,
                progress=not self.quiet,
                desc=f"{samples.key} {extractor}@{size}px",
            )
        return samples.cache[key]

    def embedding_flow(
        self, extractor: str, size: int, train_limit: int | None, test_limit: int | None
    ) -> EmbeddingAuxFlow:
        """Train (or reuse) ``RUN/embedding-flow`` on features of ``RUN/embeddings/<dataset>/{train,test}.npz``."""
        run, s = self.run, self.settings
        emb = run.dir / "embedding-flow"
        # A flow trained here records its preset; another preset retrains it. One without the record (written
        # by `flowood demo --embeddings`) is reused as it is: describe() reports its preprocessing.
        want = {"preset": s.embedding_preset, "overrides": list(s.embedding_overrides)}
        meta = emb / "embedding.json"
        stale = meta.is_file() and json.loads(meta.read_text()) != want
        if not has_weights(emb) or stale:
            if emb.exists():
                shutil.rmtree(emb)
            d = run.run_config.data
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in d.dataset)
            in_dir = run.dir / "embeddings" / safe
            self.log(
                f"embedding_likelihood: embedding {d.dataset} with {extractor}@{size}px (cached by content) and "
                f"training a tabular flow -> {emb} (at most {s.embedding_minutes:g} min)"
            )
            for split, limit in (("train", train_limit), ("test", test_limit)):
                embed_dataset(
                    d.dataset,
                    extractor,
                    [split],
                    in_dir / f"{split}.npz",
                    size=size,
                    device=self.device,
                    limit=limit,
                    data_root=d.root,
                    seed=run.run_config.seed,
                    classes=d.classes,
                    progress=not self.quiet,
                )
            raw = get_preset(s.embedding_preset)
            raw["data"]["dataset"] = f"embeddings:{in_dir.resolve()}"
            raw["data"]["ood"] = []
            raw["train"]["max_minutes"] = s.embedding_minutes
            raw["train"]["max_steps"] = s.embedding_max_steps
            raw["train"]["epochs"] = max(raw["train"]["epochs"], 1000)  # the step / time caps decide
            raw["device"] = self.device
            raw["seed"] = run.run_config.seed
            raw = apply_overrides(raw, list(s.embedding_overrides))
            self._fit_pca_dim(raw, in_dir / "train.npz")
            train(config_from_dict(raw), emb, quiet=self.quiet)
            atomic_write_text(meta, json.dumps(want, indent=2))
        emb_run = load_run(emb, device=self._flow_device)
        used_extractor, used_size = _embedding_source(emb_run)
        return EmbeddingAuxFlow(emb, emb_run, self, used_extractor, used_size or size)
