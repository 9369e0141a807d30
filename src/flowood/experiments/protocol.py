"""A ``flowood benchmark`` protocol: the YAML file, one budget of it applied, validated whole before anything trains.

A protocol names the in-distribution set and what is scored against it, in groups that are reported apart:

* ``ood: {near: [...], far: [...]}``: OOD datasets;
* ``holdout: [CLASS, ...]``: leave-one-class-out near-OOD: for each class, a flow (and every auxiliary model) is
  trained on the other classes, and the class's test images are the OOD set;
* ``shift: [blur-1:NAME, ...]``: covariate shifts of the in-distribution test images (``flowood.data.derived``):
  the same objects, mildly degraded; never averaged with OOD results.

``detectors`` lists the detectors; ``pipelines`` (optional) names feature pipelines (``aux.features`` settings:
a pretrained extractor, or ``learned``), and every detector that reads features runs once per pipeline, as
``DETECTOR@PIPELINE``; ``reference`` is the row every paired-bootstrap interval is taken against. ``budgets``
(``quick``, ``full``) may replace any of these and give the main flow's ``preset`` and ``overrides``, the scoring
``limit``, the bootstrap size ``n_boot`` and the detectors' ``settings`` (docs/scores.md).

:func:`load_protocol` checks everything that can be checked without data: unknown keys, types, the shape of
``ood``, lists given as strings, limits and ``n_boot``, overrides, detector and dataset names, an OOD set equal to
the in-distribution set, duplicates, a detector list with nothing to compare, a reference row the protocol does
not produce. Each problem is one line naming the file and the key (``budgets.quick.limit``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flowood.data import dataset_info
from flowood.data.derived import parse_derived
from flowood.errors import ConfigError, DatasetError, FieldError
from flowood.experiments.detector_settings import AUX, configure
from flowood.features import FeatureSettings
from flowood.ood.detectors import DETECTORS
from flowood.settings import as_config_error, build, check, setting
from flowood.train.config import apply_overrides, config_from_dict, load_config, parse_override
from flowood.train.presets import PRESETS, get_preset

BASELINE = "log_likelihood"
TOP_KEYS = ("name", "description", "budgets")
BUDGET_KEYS = (
    "in_distribution",
    "ood",
    "holdout",
    "shift",
    "detectors",
    "reference",
    "pipelines",
    "preset",
    "overrides",
    "limit",
    "n_boot",
    "settings",
)
"""Keys a budget may set; each may also be given at the top level, for every budget."""
_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def available_protocols() -> list[str]:
    """Names of the protocols shipped with flowood."""
    folder = resources.files("flowood.experiments") / "protocols"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def reads_features(name: str, settings: dict[str, Any]) -> bool:
    """Whether detector ``name``, configured by ``settings``, reads the feature pipeline (itself, or a detector it
    combines): such a detector runs once per pipeline."""
    if "features" in DETECTORS[name].info.auxiliary:
        return True
    det = next(d for d in configure([name], settings)[0] if d.info.name == name)
    return any(reads_features(n, settings) for n in getattr(det.settings, "inputs", ()))


@dataclass
class Protocol:
    """A benchmark protocol with one budget applied (every value checked on construction).

    Attributes:
        name, budget, description: what it is.
        in_distribution: the dataset every flow is trained on.
        near, far: OOD datasets, by group.
        holdout: classes held out of training in turn (leave-one-class-out); empty: none.
        shift: covariate shifts of the in-distribution test images.
        detectors: detector names (``log_likelihood`` first).
        reference: the row (``DETECTOR`` or ``DETECTOR@PIPELINE``) every interval is paired against.
        pipelines: feature pipeline name → ``aux.features`` settings (empty: the one of ``settings``).
        preset, overrides: the main flow's configuration.
        limit: samples scored per set; n_boot: bootstrap replicates of the intervals.
        settings: ``{DETECTOR: {...}, aux: {...}}`` (docs/scores.md).
    """

    name: str
    budget: str
    in_distribution: str
    near: list[str] = field(default_factory=list)
    far: list[str] = field(default_factory=list)
    holdout: list[int] = setting(default_factory=list, ge=0, doc="class held out of training (one run each)")
    shift: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=lambda: [BASELINE])
    reference: str = BASELINE
    pipelines: dict[str, Any] = field(default_factory=dict)
    preset: str = setting("demo", choices=lambda: list(PRESETS))
    overrides: list[str] = field(default_factory=list)
    limit: int | None = setting(None, ge=1, doc="samples scored per set")
    n_boot: int = setting(200, ge=1, doc="bootstrap resamples of the paired intervals")
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        check(self)

    def feature_settings(self) -> dict[str, FeatureSettings]:
        """Pipeline name → its feature settings (the protocol's ``aux.features`` with the pipeline's keys on top);
        ``{"": ...}`` when the protocol names no pipelines."""
        base = dict((self.settings.get(AUX) or {}).get("features") or {})
        if not self.pipelines:
            return {"": build(FeatureSettings, base)}
        return {label: build(FeatureSettings, {**base, **values}) for label, values in self.pipelines.items()}

    def rows(self) -> list[str]:
        """Every leaderboard row: each detector, once per pipeline (``DETECTOR@PIPELINE``) when it reads features."""
        out: list[str] = []
        for det in self.detectors:
            if self.pipelines and reads_features(det, self.settings):
                out += [f"{det}@{label}" for label in self.pipelines]
            else:
                out.append(det)
        return out


def load_protocol(source: str | Path, budget: str = "quick") -> Protocol:
    """A shipped protocol by name (``fashionmnist``, ``fashionmnist-near`` …) or a YAML file, with ``budget`` applied.

    Raises:
        ConfigError: one line naming the file and the key at fault (module docstring lists what is checked).
    """
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"protocol file {path} not found")
        raw = load_config(path)  # one-line errors naming the file for bad YAML or a non-mapping
        where = str(path)
    elif str(source) in available_protocols():
        raw = yaml.safe_load((resources.files("flowood.experiments") / "protocols" / f"{source}.yaml").read_text())
        where = str(source)
    else:
        raise ConfigError(f"unknown protocol {source!r}; shipped: {', '.join(available_protocols())} (or a .yaml file)")
    return _Reader(raw, where, budget).protocol()


class _Reader:
    """Reads one budget of a parsed protocol, each value from the budget or else the top level, checking each with
    an error that names the file and the key it came from."""

    def __init__(self, raw: Any, source: str, budget: str) -> None:
        self.source = source
        if not isinstance(raw, dict):
            self.fail("", f"must be a mapping of keys ({', '.join(TOP_KEYS + BUDGET_KEYS)}), got {raw!r}")
        self.raw = raw
        self.unknown(raw, TOP_KEYS + BUDGET_KEYS, "")
        budgets = raw.get("budgets")
        if not isinstance(budgets, dict) or not budgets:
            self.fail("budgets", f"must map budget names (quick, full) to their settings, got {budgets!r}")
        if budget not in budgets:
            self.fail("budgets", f"has no budget {budget!r}; it has: {', '.join(map(str, budgets))}")
        self.budget_name = budget
        self.budget = budgets[budget] or {}
        if not isinstance(self.budget, dict):
            self.fail(f"budgets.{budget}", f"must be a mapping, got {self.budget!r}")
        self.unknown(self.budget, BUDGET_KEYS, f"budgets.{budget}")

    # ---------------------------------------------------------------------------------------------- errors

    def fail(self, key: str, what: str) -> None:
        raise ConfigError(f"protocol {self.source}: {key + ' ' if key else ''}{what}")

    def unknown(self, mapping: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                prefix = f"{where}." if where else ""
                self.fail(f"{prefix}{key}", f"is not a protocol key; valid here: {', '.join(allowed)}")

    def key(self, name: str) -> str:
        """Where ``name`` is read from: the budget when it sets it, else the top level."""
        return f"budgets.{self.budget_name}.{name}" if name in self.budget else name

    def get(self, name: str, default: Any = None) -> Any:
        return self.budget[name] if name in self.budget else self.raw.get(name, default)

    def strings(self, name: str, value: Any = None, where: str | None = None) -> list[str]:
        where = where or self.key(name)
        value = self.get(name) if value is None else value
        if value is None:
            return []
        if isinstance(value, str):
            self.fail(where, f"must be a list, got the string {value!r} (write [{value}])")
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(where, f"must be a list of names, got {value!r}")
        if len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            self.fail(where, f"names {dup!r} twice")
        return [v.strip() for v in value]

    # --------------------------------------------------------------------------------------------- reading

    def protocol(self) -> Protocol:
        name = self.raw.get("name", Path(self.source).stem)
        if not isinstance(name, str) or not name.strip():
            self.fail("name", f"must be a non-empty string, got {name!r}")
        description = self.raw.get("description", "")
        if not isinstance(description, str):
            self.fail("description", f"must be a string, got {description!r}")
        in_dist = self.get("in_distribution")
        if not isinstance(in_dist, str) or not in_dist.strip():
            self.fail(self.key("in_distribution"), f"must name the dataset the flows train on, got {in_dist!r}")
        in_dist = in_dist.strip()
        self.dataset(in_dist, self.key("in_distribution"))
        near, far = self.ood(in_dist)
        holdout = self.holdout(in_dist)
        shift = self.shift(in_dist)
        seen = [*near, *far, *shift]
        if len(set(seen)) != len(seen):
            dup = next(v for v in seen if seen.count(v) > 1)
            self.fail(self.key("ood"), f"lists {dup!r} in two groups")
        if not (near or far or holdout or shift):
            self.fail(self.key("ood"), "is empty and there is no holdout or shift: give something to score against")
        detectors = self.detectors()
        pipelines = self.pipelines()
        settings = self.settings(detectors)
        values = {k: self.get(k) for k in ("preset", "limit") if self.get(k) is not None}
        if "n_boot" in self.budget or "n_boot" in self.raw:
            values["n_boot"] = self.get("n_boot")
        try:
            protocol = Protocol(
                name=name.strip(),
                budget=self.budget_name,
                in_distribution=in_dist,
                near=near,
                far=far,
                holdout=holdout,
                shift=shift,
                detectors=detectors,
                pipelines=pipelines,
                overrides=self.overrides(),
                settings=settings,
                description=description,
                **values,
            )
        except FieldError as err:
            raise ConfigError(
                f"protocol {self.source}: {as_config_error(err, self.key(err.field.split('[')[0]))}"
            ) from None
        self.check_pipelines(protocol)
        self.check_reference(protocol)
        self.check_main_config(protocol)
        return protocol

    def dataset(self, name: str, where: str) -> None:
        try:
            dataset_info(name)
        except DatasetError as err:
            self.fail(where, f"names an unknown dataset: {str(err).split('. Available')[0]}")

    def ood(self, in_dist: str) -> tuple[list[str], list[str]]:
        ood = self.get("ood") or {}
        where = self.key("ood")
        if not isinstance(ood, dict):
            self.fail(where, f"must be a mapping {{near: [...], far: [...]}}, got {ood!r}")
        self.unknown(ood, ("near", "far"), where)
        groups = []
        for group in ("near", "far"):
            names = self.strings(group, ood.get(group), f"{where}.{group}")
            for n in names:
                if n == in_dist:
                    self.fail(
                        f"{where}.{group}", f"names the in-distribution set {n!r}: an OOD set must differ from it"
                    )
            groups.append(names)
        return groups[0], groups[1]

    def holdout(self, in_dist: str) -> list[int]:
        value = self.get("holdout")
        where = self.key("holdout")
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.fail(where, f"must be a list of class indices, got {value!r}")
        if len(set(value)) != len(value):
            self.fail(where, f"names a class twice: {value}")
        classes = dataset_info(in_dist).num_classes
        if value and classes is None:
            self.fail(where, f"needs a labelled in-distribution set; {in_dist} has no classes")
        bad = [v for v in value if classes is not None and not 0 <= v < classes]
        if bad:
            self.fail(where, f"class {bad[0]} is not one of {in_dist}'s classes 0..{(classes or 1) - 1}")
        return list(value)

    def shift(self, in_dist: str) -> list[str]:
        names = self.strings("shift")
        for n in names:
            parsed = parse_derived(n) if ":" in n else None
            if parsed is None or not parsed[0].is_shift:
                self.fail(
                    self.key("shift"),
                    f"{n!r} is not a covariate shift: write blur-S:, jpeg-Q:, shift-P: or contrast-F:",
                )
            self.dataset(n, self.key("shift"))
        return names

    def detectors(self) -> list[str]:
        names = self.strings("detectors")
        where = self.key("detectors")
        for n in names:
            if n not in DETECTORS:
                self.fail(where, f"names an unknown detector {n!r}; registered: {', '.join(DETECTORS)}")
        if not names or names == [BASELINE]:
            self.fail(where, f"has nothing to compare: list detectors beside {BASELINE} (flowood benchmark --list)")
        return [BASELINE, *(n for n in names if n != BASELINE)]

    def pipelines(self) -> dict[str, Any]:
        value = self.get("pipelines") or {}
        where = self.key("pipelines")
        if not isinstance(value, dict):
            self.fail(where, f"must map pipeline names to aux.features settings, got {value!r}")
        for label, values in value.items():
            if not isinstance(label, str) or not _PIPELINE_NAME.match(label):
                self.fail(where, f"pipeline name {label!r} must be lower-case letters, digits, - or _")
            if not isinstance(values, dict):
                self.fail(f"{where}.{label}", f"must be a mapping of aux.features settings, got {values!r}")
        return dict(value)

    def settings(self, detectors: list[str]) -> dict[str, Any]:
        value = self.get("settings") or {}
        where = self.key("settings")
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {value!r}")
        try:
            configure(detectors, value)  # every value checked now, before anything trains
        except FieldError as err:
            raise ConfigError(f"protocol {self.source}: {as_config_error(err, f'{where}.{err.field}')}") from None
        return dict(value)

    def overrides(self) -> list[str]:
        items = self.strings("overrides")
        for item in items:
            try:
                parse_override(item)
            except ConfigError as err:
                self.fail(self.key("overrides"), str(err))
        return items

    def check_pipelines(self, p: Protocol) -> None:
        for label, values in p.pipelines.items():
            try:
                build(FeatureSettings, {**dict((p.settings.get(AUX) or {}).get("features") or {}), **values})
            except FieldError as err:
                name = f"{self.key('pipelines')}.{label}.{err.field}"
                raise ConfigError(f"protocol {self.source}: {as_config_error(err, name)}") from None

    def check_reference(self, p: Protocol) -> None:
        ref = self.get("reference", BASELINE)
        if not isinstance(ref, str) or ref not in p.rows():
            self.fail(self.key("reference"), f"{ref!r} is not a row of this protocol; rows: {', '.join(p.rows())}")
        p.reference = ref
        if DETECTORS[ref.split("@")[0]].info.per_batch:
            self.fail(self.key("reference"), f"{ref} scores batches; the reference must score samples")

    def check_main_config(self, p: Protocol) -> None:
        """The main flow's config builds (preset + overrides), so a bad override fails before anything trains."""
        raw = get_preset(p.preset)
        raw.setdefault("data", {})["dataset"] = p.in_distribution
        try:
            config_from_dict(apply_overrides(raw, list(p.overrides)))
        except ConfigError as err:
            self.fail(self.key("overrides"), str(err))
