"""The evaluation report (``RUN/report.json``) as typed, frozen dataclasses.

``flowood evaluate`` (:func:`flowood.experiments.evaluate.evaluate_run`) returns an
:class:`EvaluationReport` and writes it with :meth:`EvaluationReport.save`; every consumer (the CLI table,
the demos, reproduce, benchmark, the HTML report) reads its attributes. On disk the JSON keeps the keys
flowood 0.1 wrote, plus ``schema_version``::

    schema_version    int, :data:`SCHEMA_VERSION` (absent in files written before it existed: version 1)
    run_dir           absolute path of the evaluated run
    model             the run config's ``model`` section
    metric_convention one sentence: score direction and positive class
    scoring           fast-path settings (device, precision, ...), batch_size, seconds, images, images_per_second
    in_distribution   {dataset, bits_per_dim: {mean, median, std, n, nonfinite}, samples: {split, limit, conversions}}
    ood               {KEY: {bits_per_dim, samples, metrics: {SCORE: {auroc, aupr_in, aupr_out, fpr95, nonfinite}}}}
    scores            (with --scores) {SCORE: detector description, facts, seconds, components_auroc}
    score_settings    (with --scores) the ScoreSettings used
    training, conclusion, embedding_flow, embedding_conclusion      added by ``flowood demo``

Bits/dim are ``-log2 p(x) / D`` per sample; every score is *higher = more in-distribution* and the
in-distribution test set is the positive class (docs/ARCHITECTURE.md, "Contracts").
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowood.errors import ReportError, RunWriteError

SCHEMA_VERSION = 1
"""Version of the report layout written today. Files without the field are the same layout (version 1)."""

_Json = dict[str, Any]


class _Reader:
    """Typed access to one JSON object of a report; every problem is a :class:`ReportError` naming the file
    and the key, so a hand-edited or truncated report says exactly what is wrong."""

    def __init__(self, data: object, where: str, source: str) -> None:
        if not isinstance(data, Mapping):
            raise ReportError(f"{source}: {where} is not a JSON object; run `flowood evaluate` again")
        self.data, self.where, self.source = data, where, source

    def _bad(self, key: str, what: str) -> ReportError:
        return ReportError(f"{self.source}: {self.where}.{key} {what}; run `flowood evaluate` again to rewrite it")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise self._bad(key, "is missing")
        return self.data[key]

    def number(self, key: str) -> float:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(key, f"is {v!r}, not a number")
        return float(v)

    def integer(self, key: str) -> int:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(key, f"is {v!r}, not an integer")
        return v

    def opt_integer(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def opt_number(self, key: str) -> float | None:
        return self.number(key) if self.has(key) else None

    def text(self, key: str) -> str:
        v = self.raw(key)
        if not isinstance(v, str):
            raise self._bad(key, f"is {v!r}, not a string")
        return v

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def obj(self, key: str) -> _Reader:
        return _Reader(self.raw(key), f"{self.where}.{key}", self.source)

    def mapping(self, key: str) -> dict[str, Any]:
        return dict(self.obj(key).data)

    def strings(self, key: str) -> tuple[str, ...]:
        v = self.raw(key)
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise self._bad(key, "is not a list of strings")
        return tuple(v)

    def items(self, key: str) -> list[tuple[str, _Reader]]:
        """``(name, reader)`` of every entry of the object at ``key``, in file order."""
        inner = self.obj(key)
        return [(str(k), _Reader(v, f"{inner.where}[{k!r}]", self.source)) for k, v in inner.data.items()]


@dataclass(frozen=True)
class BitsPerDim:
    """Summary of one set's per-sample bits/dim (:func:`flowood.ood.summarize_scores`).

    ``mean``/``median``/``std`` are over the finite values (NaN when none is); ``n`` counts every sample,
    ``nonfinite`` the NaN/±inf ones."""

    mean: float
    median: float
    std: float
    n: int
    nonfinite: int

    def to_json(self) -> _Json:
        return {"mean": self.mean, "median": self.median, "std": self.std, "n": self.n, "nonfinite": self.nonfinite}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "report") -> BitsPerDim:
        return cls._read(_Reader(data, "bits_per_dim", source))

    @classmethod
    def _read(cls, r: _Reader) -> BitsPerDim:
        return cls(r.number("mean"), r.number("median"), r.number("std"), r.integer("n"), r.integer("nonfinite"))


@dataclass(frozen=True)
class SampleRecord:
    """What was scored for one set: the split, the ``--limit`` asked for (None: all) and every conversion
    the loader made (channels, size, float pixels)."""

    split: str
    limit: int | None
    conversions: tuple[str, ...] = ()

    def to_json(self) -> _Json:
        return {"split": self.split, "limit": self.limit, "conversions": list(self.conversions)}

    @classmethod
    def _read(cls, r: _Reader) -> SampleRecord:
        return cls(r.text("split"), r.opt_integer("limit"), r.strings("conversions"))


@dataclass(frozen=True)
class DetectorMetrics:
    """Detection metrics of one score on one OOD set (in-distribution test set = positive class).

    ``nonfinite`` counts non-finite scores in both sets (ranked least in-distribution); per-batch detectors
    also record their batch size ``M`` and ``num_batches``."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    nonfinite: int
    M: int | None = None
    num_batches: int | None = None

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> DetectorMetrics:
        """From :func:`flowood.ood.detection_metrics`'s dict (+ ``M``/``num_batches``)."""
        return cls.from_json(metrics)

    def to_json(self) -> _Json:
        out: _Json = {
            "auroc": self.auroc,
            "aupr_in": self.aupr_in,
            "aupr_out": self.aupr_out,
            "fpr95": self.fpr95,
            "nonfinite": self.nonfinite,
        }
        out.update({k: v for k, v in (("M", self.M), ("num_batches", self.num_batches)) if v is not None})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "report") -> DetectorMetrics:
        return cls._read(_Reader(data, "metrics", source))

    @classmethod
    def _read(cls, r: _Reader) -> DetectorMetrics:
        return cls(
            auroc=r.number("auroc"),
            aupr_in=r.number("aupr_in"),
            aupr_out=r.number("aupr_out"),
            fpr95=r.number("fpr95"),
            nonfinite=r.integer("nonfinite"),
            M=r.opt_integer("M"),
            num_batches=r.opt_integer("num_batches"),
        )


def _metrics_map(r: _Reader, key: str) -> dict[str, DetectorMetrics]:
    return {name: DetectorMetrics._read(m) for name, m in r.items(key)}


@dataclass(frozen=True)
class InDistribution:
    """The run's own test split as scored: dataset name, bits/dim summary, what was scored."""

    dataset: str
    bits_per_dim: BitsPerDim
    samples: SampleRecord | None = None

    def to_json(self) -> _Json:
        out: _Json = {"dataset": self.dataset, "bits_per_dim": self.bits_per_dim.to_json()}
        if self.samples is not None:
            out["samples"] = self.samples.to_json()
        return out

    @classmethod
    def _read(cls, r: _Reader) -> InDistribution:
        samples = SampleRecord._read(r.obj("samples")) if r.has("samples") else None
        return cls(r.text("dataset"), BitsPerDim._read(r.obj("bits_per_dim")), samples)


@dataclass(frozen=True)
class OODResult:
    """One OOD set: its bits/dim summary, what was scored, and the metrics of every score (``SCORE -> metrics``,
    ``log_likelihood`` first)."""

    bits_per_dim: BitsPerDim
    samples: SampleRecord | None = None
    metrics: Mapping[str, DetectorMetrics] = field(default_factory=dict)

    def to_json(self) -> _Json:
        out: _Json = {"bits_per_dim": self.bits_per_dim.to_json()}
        if self.samples is not None:
            out["samples"] = self.samples.to_json()
        out["metrics"] = {name: m.to_json() for name, m in self.metrics.items()}
        return out

    @classmethod
    def _read(cls, r: _Reader) -> OODResult:
        samples = SampleRecord._read(r.obj("samples")) if r.has("samples") else None
        return cls(BitsPerDim._read(r.obj("bits_per_dim")), samples, _metrics_map(r, "metrics"))


_SCORING_KEYS = ("batch_size", "seconds", "images", "images_per_second")


@dataclass(frozen=True)
class Scoring:
    """How the likelihoods were computed and how long it took.

    Attributes:
        batch_size: scoring batch size.
        fast_path: the fast-path settings (:meth:`flowood.perf.FastPath.describe`: device, precision, ...).
        seconds: wall time of the likelihood scoring, data loading included (auxiliary scores excluded).
        images: samples scored over all sets; images_per_second: their rate.
    """

    batch_size: int
    fast_path: Mapping[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    images: int | None = None
    images_per_second: float | None = None

    @property
    def precision(self) -> str:
        return str(self.fast_path.get("precision", "fp32"))

    def to_json(self) -> _Json:
        out: _Json = {**self.fast_path, "batch_size": self.batch_size}
        if self.seconds is not None:
            out.update({"seconds": self.seconds, "images": self.images, "images_per_second": self.images_per_second})
        return out

    @classmethod
    def _read(cls, r: _Reader) -> Scoring:
        rest = {k: v for k, v in r.data.items() if k not in _SCORING_KEYS}
        return cls(
            r.integer("batch_size"),
            rest,
            r.opt_number("seconds"),
            r.opt_integer("images"),
            r.opt_number("images_per_second"),
        )


_DETECTOR_KEYS = ("summary", "direction", "units", "cost", "reference", "per_batch", "seconds", "components_auroc")


@dataclass(frozen=True)
class DetectorRun:
    """One detector of ``--scores``: its registry description, what its fit learnt, and its cost.

    Attributes:
        summary, direction, units, cost, reference, per_batch: :class:`flowood.ood.detectors.DetectorInfo`.
        facts: the detector's settings and fitted facts (e.g. ``M``, ``train_samples``, ``bandwidth``).
        seconds: wall time of fit + scoring.
        components_auroc: ``COMPONENT -> OOD KEY -> AUROC`` for detectors with components (per scale...).
    """

    summary: str
    direction: str
    units: str
    cost: str
    reference: str
    per_batch: bool
    facts: Mapping[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    components_auroc: Mapping[str, Mapping[str, float]] | None = None

    def to_json(self) -> _Json:
        out: _Json = {
            "summary": self.summary,
            "direction": self.direction,
            "units": self.units,
            "cost": self.cost,
            "reference": self.reference,
            "per_batch": self.per_batch,
            **self.facts,
            "seconds": self.seconds,
        }
        if self.components_auroc is not None:
            out["components_auroc"] = {c: dict(v) for c, v in self.components_auroc.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "report") -> DetectorRun:
        return cls._read(_Reader(data, "scores", source))

    @classmethod
    def _read(cls, r: _Reader) -> DetectorRun:
        per_batch = r.raw("per_batch")
        if not isinstance(per_batch, bool):
            raise r._bad("per_batch", f"is {per_batch!r}, not true/false")
        comps = None
        if r.has("components_auroc"):
            comps = {c: {k: float(v) for k, v in inner.data.items()} for c, inner in r.items("components_auroc")}
        return cls(
            summary=r.text("summary"),
            direction=r.text("direction"),
            units=r.text("units"),
            cost=r.text("cost"),
            reference=r.text("reference"),
            per_batch=per_batch,
            facts={k: v for k, v in r.data.items() if k not in _DETECTOR_KEYS},
            seconds=r.opt_number("seconds"),
            components_auroc=comps,
        )


@dataclass(frozen=True)
class TrainingSummary:
    """How far ``flowood demo``'s training got (``stopped_by``: ``epochs`` or the limit that cut it)."""

    epochs: int
    epochs_completed: int
    steps: int
    partial_steps: int
    stopped_by: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> _Json:
        return {
            "epochs": self.epochs,
            "epochs_completed": self.epochs_completed,
            "steps": self.steps,
            "partial_steps": self.partial_steps,
            "stopped_by": self.stopped_by,
            "notes": list(self.notes),
        }

    @classmethod
    def _read(cls, r: _Reader) -> TrainingSummary:
        return cls(
            r.integer("epochs"),
            r.integer("epochs_completed"),
            r.integer("steps"),
            r.integer("partial_steps"),
            r.text("stopped_by"),
            r.strings("notes"),
        )


@dataclass(frozen=True)
class EmbeddingOOD:
    """One OOD set under ``flowood demo --embeddings``' tabular flow on classifier features."""

    metrics: DetectorMetrics
    bits_per_dim: BitsPerDim
    file: str

    def to_json(self) -> _Json:
        return {"metrics": self.metrics.to_json(), "bits_per_dim": self.bits_per_dim.to_json(), "file": self.file}

    @classmethod
    def _read(cls, r: _Reader) -> EmbeddingOOD:
        return cls(DetectorMetrics._read(r.obj("metrics")), BitsPerDim._read(r.obj("bits_per_dim")), r.text("file"))


@dataclass(frozen=True)
class EmbeddingFlowSummary:
    """The embedding flow of ``flowood demo --embeddings``: where it is, its sizes, cost and per-OOD results.

    ``seconds`` holds ``embed_seconds``/``train_seconds``/``evaluate_seconds``; ``settings`` the
    :class:`~flowood.experiments.embedding_demo.EmbeddingDemoSettings` used."""

    run_dir: str
    extractor: str
    size: int
    feature_dim: int
    flow_dim: int
    settings: Mapping[str, Any]
    torch_threads: int
    steps: int
    nonfinite_steps: int
    test_bits_per_dim: BitsPerDim
    seconds: Mapping[str, float]
    ood: Mapping[str, EmbeddingOOD]

    def to_json(self) -> _Json:
        return {
            "run_dir": self.run_dir,
            "extractor": self.extractor,
            "size": self.size,
            "feature_dim": self.feature_dim,
            "flow_dim": self.flow_dim,
            "settings": dict(self.settings),
            "torch_threads": self.torch_threads,
            "steps": self.steps,
            "nonfinite_steps": self.nonfinite_steps,
            "test_bits_per_dim": self.test_bits_per_dim.to_json(),
            "seconds": dict(self.seconds),
            "ood": {name: e.to_json() for name, e in self.ood.items()},
        }

    @classmethod
    def _read(cls, r: _Reader) -> EmbeddingFlowSummary:
        return cls(
            run_dir=r.text("run_dir"),
            extractor=r.text("extractor"),
            size=r.integer("size"),
            feature_dim=r.integer("feature_dim"),
            flow_dim=r.integer("flow_dim"),
            settings=r.mapping("settings"),
            torch_threads=r.integer("torch_threads"),
            steps=r.integer("steps"),
            nonfinite_steps=r.integer("nonfinite_steps"),
            test_bits_per_dim=BitsPerDim._read(r.obj("test_bits_per_dim")),
            seconds={k: float(v) for k, v in r.mapping("seconds").items()},
            ood={name: EmbeddingOOD._read(e) for name, e in r.items("ood")},
        )


_TOP_KEYS = (
    "schema_version",
    "run_dir",
    "model",
    "metric_convention",
    "scoring",
    "in_distribution",
    "ood",
    "scores",
    "score_settings",
    "training",
    "conclusion",
    "embedding_flow",
    "embedding_conclusion",
)


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``flowood evaluate`` (and ``flowood demo``) found for one run; ``RUN/report.json``.

    Attributes:
        run_dir: absolute path of the evaluated run.
        model: the run config's ``model`` section.
        metric_convention: the score direction and positive class, in words.
        scoring: precision, batch size and timing of the likelihood scoring.
        in_distribution: the run's test split as scored.
        ood: ``KEY -> OODResult`` in evaluation order (KEY is the dataset name, with ``[classes=...]`` for
            held-out classes of the run's own dataset).
        scores: ``SCORE -> DetectorRun`` when detectors beyond the likelihood ran, else None.
        score_settings: the :class:`~flowood.experiments.auxiliary.ScoreSettings` used, as a dict, else None.
        training, conclusion, embedding_flow, embedding_conclusion: added by ``flowood demo``.
        extra: top-level keys this version does not know (kept, and written back, unchanged).
        schema_version: the layout version read (:data:`SCHEMA_VERSION` for new reports).
    """

    run_dir: str
    model: Mapping[str, Any]
    metric_convention: str
    scoring: Scoring
    in_distribution: InDistribution
    ood: Mapping[str, OODResult]
    scores: Mapping[str, DetectorRun] | None = None
    score_settings: Mapping[str, Any] | None = None
    training: TrainingSummary | None = None
    conclusion: str | None = None
    embedding_flow: EmbeddingFlowSummary | None = None
    embedding_conclusion: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # ---- reading --------------------------------------------------------------------------------
    def aurocs(self, score: str = "log_likelihood") -> dict[str, float]:
        """``OOD KEY -> AUROC`` of ``score`` for every OOD set that has it, in evaluation order."""
        return {key: r.metrics[score].auroc for key, r in self.ood.items() if score in r.metrics}

    def metrics(self, key: str, score: str = "log_likelihood") -> DetectorMetrics | None:
        """Metrics of ``score`` on OOD set ``key`` (None when that score was not evaluated there)."""
        entry = self.ood.get(key)
        return entry.metrics.get(score) if entry is not None else None

    @property
    def nonfinite(self) -> int:
        """Non-finite bits/dim over the in-distribution and every OOD set."""
        return self.in_distribution.bits_per_dim.nonfinite + sum(r.bits_per_dim.nonfinite for r in self.ood.values())

    # ---- deriving (the report is frozen: these return a new one) --------------------------------
    def with_metrics(self, key: str, score: str, metrics: DetectorMetrics) -> EvaluationReport:
        """A copy with ``metrics`` of ``score`` on OOD set ``key`` (added after the scores already there).

        Raises:
            KeyError: ``key`` is not an OOD set of this report.
        """
        if key not in self.ood:
            raise KeyError(f"{key!r} is not an OOD set of this report ({', '.join(self.ood)})")
        entry = self.ood[key]
        ood = dict(self.ood)
        ood[key] = replace(entry, metrics={**entry.metrics, score: metrics})
        return replace(self, ood=ood)

    def with_(self, **changes: Any) -> EvaluationReport:
        """:func:`dataclasses.replace` (e.g. ``report.with_(conclusion="...")``)."""
        return replace(self, **changes)

    # ---- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> _Json:
        """The JSON object of ``report.json`` (keys in the order flowood has always written them)."""
        out: _Json = {
            "schema_version": self.schema_version,
            "run_dir": self.run_dir,
            "model": dict(self.model),
            "metric_convention": self.metric_convention,
            "scoring": self.scoring.to_json(),
            "in_distribution": self.in_distribution.to_json(),
            "ood": {key: r.to_json() for key, r in self.ood.items()},
        }
        if self.scores is not None:
            out["scores"] = {name: d.to_json() for name, d in self.scores.items()}
        if self.score_settings is not None:
            out["score_settings"] = dict(self.score_settings)
        if self.training is not None:
            out["training"] = self.training.to_json()
        if self.conclusion is not None:
            out["conclusion"] = self.conclusion
        if self.embedding_flow is not None:
            out["embedding_flow"] = self.embedding_flow.to_json()
        if self.embedding_conclusion is not None:
            out["embedding_conclusion"] = self.embedding_conclusion
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "report") -> EvaluationReport:
        """Parse a ``report.json`` object (``source`` names the file in errors).

        Raises:
            ReportError: a newer or unknown ``schema_version``, or a missing / mistyped entry.
        """
        r = _Reader(data, "report", source)
        version = r.raw("schema_version") if "schema_version" in r.data else 1
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
            hint = "upgrade flowood to read it" if newer else "run `flowood evaluate` again to rewrite it"
            raise ReportError(
                f"{source}: report schema_version {version!r} is not one this flowood reads "
                f"(1..{SCHEMA_VERSION}); {hint}"
            )
        scores = {name: DetectorRun._read(d) for name, d in r.items("scores")} if r.has("scores") else None
        return cls(
            run_dir=r.text("run_dir"),
            model=r.mapping("model"),
            metric_convention=r.text("metric_convention"),
            scoring=Scoring._read(r.obj("scoring")),
            in_distribution=InDistribution._read(r.obj("in_distribution")),
            ood={key: OODResult._read(e) for key, e in r.items("ood")},
            scores=scores,
            score_settings=r.mapping("score_settings") if r.has("score_settings") else None,
            training=TrainingSummary._read(r.obj("training")) if r.has("training") else None,
            conclusion=r.opt_text("conclusion"),
            embedding_flow=EmbeddingFlowSummary._read(r.obj("embedding_flow")) if r.has("embedding_flow") else None,
            embedding_conclusion=r.opt_text("embedding_conclusion"),
            extra={k: v for k, v in r.data.items() if k not in _TOP_KEYS},
            schema_version=SCHEMA_VERSION,
        )

    def dumps(self) -> str:
        """``report.json``'s text (indented; NaN written as ``NaN`` like Python's json)."""
        return json.dumps(self.to_json(), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``report.json`` beside and rename it over ``path``: a crash never leaves half a report."""
        path = Path(path)
        text = self.dumps()
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except OSError as err:
            raise RunWriteError(f"cannot write {path}: {err.strerror or err}; the previous version is kept") from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvaluationReport:
        """Read a ``report.json``.

        Raises:
            ReportError: the file is missing, not JSON, of an unknown schema or malformed (the message names it).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReportError(f"{path} not found: run `flowood evaluate RUN_DIR` first") from None
        except (OSError, ValueError) as err:
            raise ReportError(f"{path} is unreadable ({err}); run `flowood evaluate` again to rewrite it") from None
        return cls.from_json(data, source=str(path))
