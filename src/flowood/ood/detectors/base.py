"""The Detector protocol, the data it sees, and the registry.

flowood's convention everywhere: a detector's score is **higher = more in-distribution**, so
:func:`flowood.ood.detection_metrics` applies unchanged (in-distribution test set = positive class).

A detector is one class:

* ``info``: a :class:`DetectorInfo` (name, summary, direction, units, cost, reference, per-sample or per-batch,
  the auxiliary models it asks for);
* ``Settings``: its frozen settings dataclass, each field with its default and declared range
  (:func:`flowood.settings.setting`), taken by the constructor as pytorch-ood's detectors take theirs:
  ``WAIC(WAICSettings(ensemble_size=5))`` or ``get_detector("waic", ensemble_size=5)``;
* :meth:`Detector.check` on the :class:`FitContext` and the sets to score: refuses what cannot work before any
  detector of the evaluation fits (so no auxiliary model trains for an evaluation that then fails);
* :meth:`Detector.fit` on a :class:`FitContext`: the in-distribution run (its flow, its training data, and
  the auxiliary models the experiments layer trains or reuses for it);
* :meth:`Detector.score` on :class:`Samples`: one value per sample (or per batch where ``info.per_batch``).

This module imports nothing from ``flowood.train`` or ``flowood.experiments``: auxiliary models are asked
for through the :class:`FitContext` protocol, which :mod:`flowood.experiments.fit_context` implements.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from torch import Tensor

from flowood.errors import ConfigError
from flowood.flows import NormalizingFlow
from flowood.settings import build

AUXILIARY_MODELS = ("background", "ensemble", "general", "features", "embedding_flow", "detectors", "calibration")
"""What a :class:`FitContext` trains or computes for a detector beyond the run itself (``DetectorInfo.auxiliary``)."""


@dataclass(frozen=True)
class DetectorInfo:
    """What a detector is, for the registry, the report and the docs.

    Attributes:
        name: registry name (``--scores NAME``).
        summary: one line: what is computed.
        direction: how the paper's statistic relates to flowood's "higher = in-distribution" value.
        units: units of the returned value.
        cost: what it costs beyond the run's own likelihoods (fit and extra passes).
        reference: the paper that proposed it.
        per_batch: one score per batch of samples (typicality), not per sample.
        images_only: only defined for image runs.
        auxiliary: the auxiliary models its fit asks the context for (names of :data:`AUXILIARY_MODELS`;
            ``detectors``: other detectors' outputs, ``calibration``: held-out in-distribution training
            images); empty for detectors that need only the run's flow and training samples.
        reads_likelihood: its score reads the run's flow likelihood (the evaluation's one flow pass is part of
            its cost per image; ``False`` for detectors on CNN features alone).
    """

    name: str
    summary: str
    direction: str
    units: str
    cost: str
    reference: str
    per_batch: bool = False
    images_only: bool = False
    auxiliary: tuple[str, ...] = ()
    reads_likelihood: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.auxiliary) - set(AUXILIARY_MODELS))
        if unknown:
            raise ValueError(f"detector {self.name}: unknown auxiliary models {unknown}; known: {AUXILIARY_MODELS}")

    def describe(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "direction": self.direction,
            "units": self.units,
            "cost": self.cost,
            "reference": self.reference,
            "per_batch": self.per_batch,
        }


@dataclass
class Samples:
    """One set of samples an evaluation scored, as every detector sees it.

    Attributes:
        key: report key of the set (the in-distribution dataset name, or an OOD set's).
        data: ``uint8 (N, C, H, W)`` images or ``float32 (N, D)`` vectors, exactly the samples the
            likelihood evaluation scored, in the same order.
        kind: ``"image"`` or ``"vector"``.
        bpd: ``(N,)`` bits/dim of each sample under the run's flow (already computed by the evaluation).
        noise_seed: seed of the dequantisation noise the evaluation used for this set.
        name: dataset name as loaded (``None``: the run's own dataset).
        cache: per-set values shared between detectors (e.g. the flow's per-scale statistics).
    """

    key: str
    data: Tensor
    kind: str
    bpd: np.ndarray
    noise_seed: int = 0
    name: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def images(self) -> np.ndarray:
        """``uint8 (N, C, H, W)`` (image sets only)."""
        if self.kind != "image":
            raise ConfigError(f"{self.key}: an image detector was given vectors")
        return self.data.numpy()


class AuxFlow(Protocol):
    """An auxiliary model trained (or reused) by the experiments layer."""

    @property
    def directory(self) -> Path:
        """Its run directory."""

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        """``(N,)`` log-likelihood in nats of ``samples`` (for an embedding flow: of their CNN features)."""

    def describe(self) -> dict[str, Any]:
        """Facts for the report (directory, training steps, settings)."""


class FitContext(Protocol):
    """What :meth:`Detector.fit` may use: the in-distribution run and auxiliary models on demand.

    Attributes:
        flow: the run's trained flow (eval mode).
        num_dims: D of one sample.
        is_image: the run models 8-bit images.
        in_dataset: the run's in-distribution dataset name.
        evaluated: names of the OOD sets under evaluation (auxiliary training data must not be one of them).
        batch_size: scoring batch size.
        input_transform: the run's vector standardiser (applied before the flow), ``None`` for images.
    """

    flow: NormalizingFlow
    num_dims: int
    is_image: bool
    in_dataset: str
    evaluated: list[str]
    batch_size: int
    input_transform: Callable[[Tensor], Tensor] | None

    def train_samples(self, limit: int | None) -> Samples:
        """A seeded subset (at most ``limit``; ``None``: all, never more than the run's ``data.limit``) of the
        run's in-distribution **training** split, with its bits/dim under the run's flow."""

    def background_flow(self, mutation_rate: float, copies: int) -> AuxFlow:
        """The run's configuration trained, with the main model's training budget, on mutated training images."""

    def ensemble_member(self, index: int) -> AuxFlow:
        """Member ``index`` of an ensemble: the run's configuration with another seed."""

    def general_flow(self, dataset: str) -> AuxFlow:
        """The run's configuration trained on a broad dataset ``dataset``."""

    def embedding_flow(self) -> AuxFlow:
        """A tabular flow on the pretrained-CNN features (:meth:`features`) of the in-distribution training split."""

    def features(self, samples: Samples | None) -> np.ndarray:
        """``(N, F)`` CNN features of ``samples`` (``None``: of the feature pipeline's *reference* images, a seeded
        subset of the in-distribution training split's ``fit`` part); the extractor (pretrained, or learnt from
        the run's own training split), input size and reference images are the evaluation's (one feature
        pipeline per run, computed once per set)."""

    def feature_labels(self) -> np.ndarray | None:
        """``(N,)`` int64 class labels of the reference images, in the order of ``features(None)``; ``None``
        when the run's training data are unlabelled (fewer than two distinct labels)."""

    def feature_coordinates(self, samples: Samples | None) -> np.ndarray:
        """``(N, K)`` features in the embedding flow's own coordinates: its preset's transform (unit norm,
        centring, top principal components, whitening) fitted exactly as the embedding flow fits it on the
        reference features; ``None``: the reference images."""

    def calibration_samples(self, limit: int | None) -> Samples:
        """A seeded subset (at most ``limit``) of in-distribution training images that no feature model was
        fitted on (the ``val`` part of the training split; the run's own flow did train on them), with their
        bits/dim under the run's flow. Raises :class:`~flowood.errors.ConfigError` when the dataset has none."""

    def detector(self, name: str, *, fit: bool = True) -> Detector:
        """The evaluation's detector ``name`` (configured as the evaluation configured it, else with default
        settings), fitted unless ``fit`` is false: each is fitted once per evaluation and shared by every
        detector that reads it."""

    def describe_features(self) -> dict[str, Any]:
        """The feature pipeline's settings, for a detector's facts (extractor, size, reference images)."""

    def log(self, message: str) -> None:
        """A progress line (silent when quiet)."""


@dataclass(frozen=True)
class NoSettings:
    """The settings of a detector that has none."""


class Detector(ABC):
    """Base class of every detector: settings, ``check`` and ``fit`` on the in-distribution run, ``score``.

    Subclasses set :attr:`info` and :attr:`Settings` and implement :meth:`fit` and :meth:`score`; they may add
    :meth:`check` (refuse what cannot work, before anything fits), :meth:`components` (extra per-sample
    diagnostics reported next to the score) and :meth:`facts` (what the fit learnt, for the report).

    Args:
        settings: an instance of :attr:`Settings`, or leave it out and give its fields as keywords (validated:
            an unknown or out-of-range value raises :class:`~flowood.errors.ConfigError` naming
            ``DETECTOR.FIELD``).
    """

    info: ClassVar[DetectorInfo]
    Settings: ClassVar[type] = NoSettings
    in_all: ClassVar[bool] = True
    """Included in ``--scores all`` (``False`` for detectors that need a setting only the user can give)."""

    def __init__(self, settings: Any = None, /, **values: Any) -> None:
        if settings is None:
            settings = self.make_settings(values)
        elif values:
            raise ConfigError(f"detector {self.info.name}: give a {self.Settings.__name__} or keywords, not both")
        elif not isinstance(settings, self.Settings):
            raise ConfigError(
                f"detector {self.info.name} takes {self.Settings.__name__}, got {type(settings).__name__}"
            )
        self.settings = settings
        self.fitted = False

    @classmethod
    def make_settings(cls, values: dict[str, Any]) -> Any:
        """:attr:`Settings` from keywords; a bad one raises :class:`~flowood.errors.FieldError` whose field is
        ``DETECTOR.FIELD`` (the CLI re-says it with the flag that gave the value)."""
        return build(cls.Settings, values, cls.info.name)

    def check(self, context: FitContext, sets: Sequence[Samples]) -> None:
        """Raise :class:`~flowood.errors.ConfigError` if this detector cannot score ``sets`` of this run.

        Called for every detector of an evaluation before any of them fits, so a bad combination (an image
        detector on a vector run, a batch size M larger than a set) fails before minutes of auxiliary training.
        """
        if self.info.images_only and not context.is_image:
            raise ConfigError(f"score {self.info.name} is only defined for image runs; this run models vectors")

    @abstractmethod
    def fit(self, context: FitContext) -> None:
        """Learn what the score needs from the in-distribution run (training data, auxiliary models)."""

    @abstractmethod
    def score(self, samples: Samples) -> np.ndarray:
        """``(N,)`` float64 scores of ``samples`` (``(num_batches,)`` for per-batch detectors); higher = in."""

    def components(self, samples: Samples) -> dict[str, np.ndarray]:
        """Named per-sample diagnostics (higher = in-distribution) reported with their own AUROCs."""
        return {}

    def facts(self) -> dict[str, Any]:
        """What the fit learnt and the settings used (JSON-serialisable)."""
        return dataclasses.asdict(self.settings)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"detector {self.info.name}: call fit(context) before score(samples)")


def shared_score(det: Detector, samples: Samples) -> np.ndarray:
    """``det.score(samples)``, computed once per detector instance and set (kept in ``samples.cache``), so that
    the evaluation's row of a detector and every combination reading it share one computation."""
    key = f"score/{det.info.name}/{id(det)}"
    if key not in samples.cache:
        samples.cache[key] = np.asarray(det.score(samples), dtype=np.float64)
    return np.asarray(samples.cache[key])


DETECTORS: dict[str, type[Detector]] = {}
"""The registry: name → detector class (filled by :func:`register` in ``flowood.ood.detectors``)."""


def register(cls: type[Detector]) -> type[Detector]:
    """Add a detector class to :data:`DETECTORS` under ``cls.info.name``."""
    name = cls.info.name
    if name in DETECTORS and DETECTORS[name] is not cls:
        raise ValueError(f"detector {name!r} is registered twice")
    DETECTORS[name] = cls
    return cls


def available_detectors() -> list[str]:
    """Names of every registered detector, in registry order."""
    return list(DETECTORS)


def detector_info(name: str) -> DetectorInfo:
    """The :class:`DetectorInfo` of a registered detector."""
    return _cls(name).info


def _cls(name: str) -> type[Detector]:
    if name not in DETECTORS:
        raise ConfigError(f"unknown score {name!r}; available: {', '.join(DETECTORS)} (or all)")
    return DETECTORS[name]


def get_detector(name: str, **settings: Any) -> Detector:
    """A new, unfitted detector ``name`` with ``settings`` (fields of its ``Settings``; an unknown or
    out-of-range one raises :class:`~flowood.errors.FieldError`, a :class:`ConfigError`, naming ``NAME.FIELD``)."""
    return _cls(name)(**settings)


def adaptable_detectors() -> list[str]:
    """Detectors that need only a flow and in-distribution samples, one score per sample: what the pytorch-ood
    adapter (:class:`flowood.ood.detectors.interop.PytorchOODDetector`) can run outside an evaluation."""
    return [n for n, cls in DETECTORS.items() if not cls.info.auxiliary and not cls.info.per_batch]


def parse_detectors(text: str | list[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` (or ``"all"``) → validated detector names, in order, without duplicates.

    ``log_likelihood`` is always first (the report's baseline). Raises :class:`ConfigError` naming the unknown
    detector and the valid ones.
    """
    items: list[str] = []
    for part in [text] if isinstance(text, str) else list(text or []):
        items += [p.strip() for p in part.split(",") if p.strip()]
    if "all" in items:
        items = [n for n in DETECTORS if DETECTORS[n].in_all]
    for s in items:
        _cls(s)
    out = ["log_likelihood"]
    for s in items:
        if s not in out:
            out.append(s)
    return out
