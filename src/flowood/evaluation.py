"""The evaluation report (``RUN/report.json``) as typed, frozen dataclasses.

``flowood evaluate`` (:func:`flowood.experiments.evaluate.evaluate_run`) returns an
:class:`EvaluationReport` and writes it with :meth:`EvaluationReport.save`; every consumer (the CLI table,
the demos, reproduce, benchmark, the HTML report) reads its attributes. On disk the JSON keeps the keys
flowood 0.1 wrote, plus ``schema_version``::

    schema_version    int, :data:`SCHEMA_VERSION` (absent in files written before it existed: version 1)
    provenance        (version 2) {flowood_version, git_commit, command_line}: the code and command that wrote it
    run_dir           absolute path of the evaluated run
    model             the run config's ``model`` section
    metric_convention one sentence: score direction and positive class
    scoring           fast-path settings (device, precision, ...), batch_size, seconds, images, images_per_second
    in_distribution   {dataset, bits_per_dim: {mean, median, std, n, nonfinite},
                       samples: {split, limit, conversions, seed, fingerprint}}
    ood               {KEY: {bits_per_dim, samples, metrics: {SCORE: {auroc, aupr_in, aupr_out, fpr95, nonfinite,
                       fingerprint}}}}
    scores            (with --scores) {SCORE: detector description, facts, seconds, components_auroc}
    score_settings    (with --scores) every detector's settings and the auxiliary models' (``aux``)
    training          how far the run's training got (stopped_by, steps, planned_steps)
    partial           (when any) the models behind the numbers whose training stopped short of its budget
    conclusion, embedding_flow, embedding_conclusion      added by ``flowood demo``

Bits/dim are ``-log2 p(x) / D`` per sample; every score is *higher = more in-distribution* and the
in-distribution test set is the positive class (docs/ARCHITECTURE.md, "Contracts").
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from flowood.atomic import atomic_write_text
from flowood.errors import ReportError

SCHEMA_VERSION = 2
"""Version of the report layout written today. Version 2 adds provenance (``provenance``, each set's ``seed`` and
``fingerprint``, each metric's ``fingerprint``) and per-detector throughput; every key it adds is optional, so a
version-1 file (or one without the field, which is version 1) loads as it is."""

_Json = dict[str, Any]
_P = TypeVar("_P", bound="_Part")


def _bad(source: str, where: str, what: str) -> ReportError:
    return ReportError(f"{source}: {where} {what}; run `flowood evaluate` again to rewrite it")


def _decode(value: Any, tp: Any, where: str, source: str) -> Any:
    """``value`` (parsed JSON) as annotation ``tp``; a mismatch is a :class:`ReportError` naming the file and
    the key path, so a hand-edited or truncated report says exactly what is wrong."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):  # X | None
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _decode(value, inner, where, source)
    if isinstance(tp, type) and issubclass(tp, _Part):
        if not isinstance(value, Mapping):
            raise _bad(source, where, "is not a JSON object")
        return tp._read(value, where, source)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise _bad(source, where, "is not a JSON object")
        return {str(k): _decode(v, args[1], f"{where}[{k!r}]", source) for k, v in value.items()}
    if origin is tuple:  # tuple[str, ...]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(source, where, "is not a list of strings")
        return tuple(value)
    if tp is Any:
        return value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise _bad(source, where, f"is {value!r}, not {'a number' if tp is float else f'a {tp.__name__}'}")
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, _Part):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value


class _Part:
    """A part of ``report.json``: its dataclass fields are its JSON keys, in file order.

    A field that defaults to None is left out of the file while None; ``_FLAT`` names a mapping field whose
    entries sit beside the other keys (``scoring``'s fast-path settings, a detector's facts)."""

    _FLAT: ClassVar[str | None] = None

    def to_json(self) -> _Json:
        out: _Json = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == self._FLAT:
                out.update(value)
            elif not (value is None and f.default is None):
                out[f.name] = _encode(value)
        return out

    @classmethod
    def from_json(cls: type[_P], data: Mapping[str, Any], *, source: str = "report") -> _P:
        """Parse this part from its JSON object (``source`` names the file in errors)."""
        return cls._read(data, cls.__name__, source)

    @classmethod
    def _read(cls: type[_P], data: Mapping[str, Any], where: str, source: str) -> _P:
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == cls._FLAT:
                kwargs[f.name] = {k: v for k, v in data.items() if k not in known}
            elif f.name in data:
                kwargs[f.name] = _decode(data[f.name], hints[f.name], f"{where}.{f.name}", source)
            elif f.default is MISSING and f.default_factory is MISSING:
                raise _bad(source, f"{where}.{f.name}", "is missing")
        return cls(**kwargs)


@dataclass(frozen=True)
class BitsPerDim(_Part):
    """Summary of one set's per-sample bits/dim (:func:`flowood.ood.summarize_scores`).

    ``mean``/``median``/``std`` are over the finite values (NaN when none is); ``n`` counts every sample,
    ``nonfinite`` the NaN/±inf ones."""

    mean: float
    median: float
    std: float
    n: int
    nonfinite: int


@dataclass(frozen=True)
class SampleRecord(_Part):
    """What was scored for one set: the split, the ``--limit`` asked for (None: all), every conversion the loader
    made (channels, size, float pixels: the resize/convert policy as applied), the seed of the subset and of the
    dequantisation noise, and the SHA-256 fingerprint of the scored array (dtype, shape and bytes): two numbers
    were computed on the same samples exactly when their fingerprints agree."""

    split: str
    limit: int | None
    conversions: tuple[str, ...] = ()
    seed: int | None = None
    noise_seed: int | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Provenance(_Part):
    """Which code and command computed a report: ``flowood_version``, ``git_commit`` (``+dirty`` with local
    changes; None outside a checkout) and ``command_line``."""

    flowood_version: str
    git_commit: str | None
    command_line: str


@dataclass(frozen=True)
class DetectorMetrics(_Part):
    """Detection metrics of one score on one OOD set (in-distribution test set = positive class).

    ``nonfinite`` counts non-finite scores in both sets (ranked least in-distribution); per-batch detectors
    also record their batch size ``M`` and ``num_batches``; ``fingerprint`` is the SHA-256 of the two score
    arrays the metrics were computed from (in-distribution, then OOD)."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    nonfinite: int
    M: int | None = None
    num_batches: int | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class InDistribution(_Part):
    """The run's own test split as scored: dataset name, bits/dim summary, what was scored."""

    dataset: str
    bits_per_dim: BitsPerDim
    samples: SampleRecord | None = None


@dataclass(frozen=True)
class OODResult(_Part):
    """One OOD set: its bits/dim summary, what was scored, and the metrics of every score (``SCORE -> metrics``,
    ``log_likelihood`` first)."""

    bits_per_dim: BitsPerDim
    samples: SampleRecord | None = None
    metrics: Mapping[str, DetectorMetrics] = field(default_factory=dict)


@dataclass(frozen=True)
class Scoring(_Part):
    """How the likelihoods were computed and how long it took.

    Attributes:
        fast_path: the fast-path settings (:meth:`flowood.perf.FastPath.describe`: device, precision, ...),
            written beside the other keys.
        batch_size: scoring batch size.
        seconds: wall time of the likelihood scoring, data loading included (auxiliary scores excluded).
        images: samples scored over all sets; images_per_second: their rate.
        feature_seconds: wall time of the CNN feature extraction of the scored sets (shared by every feature
            detector; ``None`` when no detector read features).
    """

    _FLAT: ClassVar[str | None] = "fast_path"

    fast_path: Mapping[str, Any]
    batch_size: int
    seconds: float | None = None
    images: int | None = None
    images_per_second: float | None = None
    feature_seconds: float | None = None

    @property
    def precision(self) -> str:
        return str(self.fast_path.get("precision", "fp32"))


@dataclass(frozen=True)
class DetectorRun(_Part):
    """One detector of ``--scores``: its registry description, what its fit learnt, and its cost.

    Attributes:
        summary, direction, units, cost, reference, per_batch: :class:`flowood.ood.detectors.DetectorInfo`.
        facts: the detector's settings and fitted facts (e.g. ``M``, ``train_samples``, ``bandwidth``),
            written beside the other keys.
        seconds: wall time of fit + scoring.
        fit_seconds, score_seconds: the two apart (a detector another one read is fitted where first read).
        images_per_second: scoring throughput: the scored images over the detector's scoring time plus the
            shared work it reads (the flow pass, the feature extraction, the detectors it combines).
        components_auroc: ``COMPONENT -> OOD KEY -> AUROC`` for detectors with components (per scale...).
    """

    _FLAT: ClassVar[str | None] = "facts"

    summary: str
    direction: str
    units: str
    cost: str
    reference: str
    per_batch: bool
    facts: Mapping[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    fit_seconds: float | None = None
    score_seconds: float | None = None
    images_per_second: float | None = None
    components_auroc: Mapping[str, Mapping[str, float]] | None = None


PARTIAL_STOPS = ("train.max_minutes", "interrupted")
"""What can stop a training short of its budget: the wall-clock safety cap (how far a run gets then depends on
the machine's load) and a signal or crash before its limits. ``epochs``, ``train.max_steps`` and
``train.early_stopping`` are the budget itself."""


@dataclass(frozen=True)
class TrainingSummary(_Part):
    """How far a run's training got: ``stopped_by`` is ``epochs``, the limit that ended it (``train.max_steps``,
    ``train.max_minutes``, ``train.early_stopping``) or ``interrupted`` (a signal before its limits);
    ``planned_steps`` the steps its epochs and ``train.max_steps`` allow (None where unknown)."""

    epochs: int
    epochs_completed: int
    steps: int
    partial_steps: int
    stopped_by: str
    notes: tuple[str, ...] = ()
    planned_steps: int | None = None

    @property
    def partial(self) -> bool:
        """True when the training stopped short of its budget (:data:`PARTIAL_STOPS`): the model is not the one
        its config describes, and numbers from it depend on how busy the machine was."""
        return self.stopped_by in PARTIAL_STOPS

    def describe(self) -> str:
        """``"stopped by train.max_minutes after 29 of 156 steps"`` (or ``"complete: 156 steps"``)."""
        of = f" of {self.planned_steps}" if self.planned_steps is not None else ""
        if not self.partial:
            return f"complete: {self.steps} steps ({self.stopped_by})"
        return f"stopped by {self.stopped_by} after {self.steps}{of} steps"


@dataclass(frozen=True)
class EmbeddingOOD(_Part):
    """One OOD set under ``flowood demo --embeddings``' tabular flow on classifier features."""

    metrics: DetectorMetrics
    bits_per_dim: BitsPerDim
    file: str


@dataclass(frozen=True)
class EmbeddingFlowSummary(_Part):
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


@dataclass(frozen=True)
class EvaluationReport(_Part):
    """Everything ``flowood evaluate`` (and ``flowood demo``) found for one run; ``RUN/report.json``.

    Attributes:
        schema_version: the layout version (:data:`SCHEMA_VERSION`; older layouts are read into it).
        run_dir: absolute path of the evaluated run.
        model: the run config's ``model`` section.
        metric_convention: the score direction and positive class, in words.
        scoring: precision, batch size and timing of the likelihood scoring.
        in_distribution: the run's test split as scored.
        ood: ``KEY -> OODResult`` in evaluation order (KEY is the dataset name, with ``[classes=...]`` for
            held-out classes of the run's own dataset).
        scores: ``SCORE -> DetectorRun`` when detectors beyond the likelihood ran, else None.
        score_settings: each detector's settings (``{NAME: {FIELD: VALUE}}``) and, when a detector used
            auxiliary models, ``aux`` (:class:`~flowood.experiments.aux_models.AuxSettings`); else None.
        training: how far the evaluated run's training got (:class:`TrainingSummary`; None for a converted run).
        partial: one line per model behind these numbers (the run, an auxiliary model) whose training stopped
            short of its budget — the numbers are then for partly trained models; None when none did.
        conclusion, embedding_flow, embedding_conclusion: added by ``flowood demo``.
        provenance: the code and command that computed it (None in files written before version 2).
        extra: top-level keys this version does not know (kept, and written back, unchanged).
    """

    _FLAT: ClassVar[str | None] = "extra"

    run_dir: str
    model: Mapping[str, Any]
    metric_convention: str
    scoring: Scoring
    in_distribution: InDistribution
    ood: Mapping[str, OODResult]
    scores: Mapping[str, DetectorRun] | None = None
    score_settings: Mapping[str, Any] | None = None
    training: TrainingSummary | None = None
    partial: tuple[str, ...] | None = None
    conclusion: str | None = None
    embedding_flow: EmbeddingFlowSummary | None = None
    embedding_conclusion: str | None = None
    provenance: Provenance | None = None
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
        """The JSON object of ``report.json``: ``schema_version`` first, then the keys flowood always wrote."""
        return {
            "schema_version": self.schema_version,
            **{k: v for k, v in super().to_json().items() if k != "schema_version"},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "report") -> EvaluationReport:
        """Parse a ``report.json`` object (``source`` names the file in errors).

        Raises:
            ReportError: a newer or unknown ``schema_version``, or a missing / mistyped entry.
        """
        if not isinstance(data, Mapping):
            raise _bad(source, "report", "is not a JSON object")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
            hint = "upgrade flowood to read it" if newer else "run `flowood evaluate` again to rewrite it"
            raise ReportError(
                f"{source}: report schema_version {version!r} is not one this flowood reads "
                f"(1..{SCHEMA_VERSION}); {hint}"
            )
        # Version 2 only adds optional keys to version 1: nothing to convert. A later version converts here.
        return replace(cls._read(data, "report", source), schema_version=SCHEMA_VERSION)

    def dumps(self) -> str:
        """``report.json``'s text (indented; NaN written as ``NaN`` like Python's json)."""
        return json.dumps(self.to_json(), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``report.json`` beside and rename it over ``path``: a crash never leaves half a report."""
        path = Path(path)
        atomic_write_text(path, self.dumps())
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
