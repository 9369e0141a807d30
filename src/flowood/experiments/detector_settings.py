"""Detector settings from where users write them: ``--score-setting DETECTOR.FIELD=VALUE`` (and the convenience
flags that alias some of them), a benchmark protocol's ``settings:`` mapping, or Python keywords.

The settings are one nested mapping: a section per detector (``waic: {ensemble_size: 5}``, the fields of that
detector's ``Settings``) and ``aux`` (:class:`~flowood.experiments.aux_models.AuxSettings`: the auxiliary
models' budgets and the feature pipeline, e.g. ``aux: {ensemble: {max_steps: 50}, features: {size: 96}}``).
Every value is checked against the registry before anything is scored; a bad one raises a
:class:`~flowood.errors.FieldError` whose field is the dotted path (``waic.ensemble_size``), which the caller
re-says with the flag, item or file key that gave it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowood.errors import ConfigError, FieldError
from flowood.experiments.aux_models import AuxSettings
from flowood.ood.detectors import DETECTORS, Detector, parse_detectors
from flowood.settings import as_config_error, build
from flowood.train.config import parse_override

AUX = "aux"
"""The section of the auxiliary models' settings."""


def configure(
    names: Sequence[str] | str | None, values: Mapping[str, Any] | None = None
) -> tuple[list[Detector], AuxSettings]:
    """Configured detectors (``log_likelihood`` first) and auxiliary settings from a nested settings mapping.

    Args:
        names: detector names (``"a,b"``, ``"all"``).
        values: ``{DETECTOR: {FIELD: VALUE}, "aux": {...}}``; sections of registered detectors that are not in
            ``names`` are checked too (a shared settings file may hold them).

    Raises:
        FieldError: an unknown section or field, or a bad value; ``field`` is the dotted path.
        ConfigError: an unknown detector name.
    """
    values = dict(values or {})
    for section, fields in values.items():
        if section != AUX and section not in DETECTORS:
            raise FieldError(section, f"unknown settings section {{name}}: a detector ({', '.join(DETECTORS)}) or aux")
        if not isinstance(fields, Mapping):
            raise FieldError(section, f"{{name}} must map setting names to values, got {fields!r}")
    checked = {name: DETECTORS[name].make_settings(dict(f)) for name, f in values.items() if name != AUX}
    detectors = [
        DETECTORS[n](checked[n]) if n in checked else DETECTORS[n]()
        for n in parse_detectors(names if isinstance(names, str) or names is None else list(names))
    ]
    return detectors, build(AuxSettings, dict(values.get(AUX) or {}), AUX)


def nest(path: Sequence[str], value: Any, into: dict[str, Any]) -> dict[str, Any]:
    """Set ``into[path[0]][path[1]]... = value`` (creating the mappings), returns ``into``."""
    node = into
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return into


def parse_setting_items(items: Sequence[str], flag: str = "--score-setting") -> dict[str, Any]:
    """``["waic.ensemble_size=5", "aux.features.size=96"]`` → the nested settings mapping (values parsed as
    ``--set`` parses them); a key without a section gets a one-line error with an example."""
    out: dict[str, Any] = {}
    for item in items:
        nest(*_parse_item(item, flag), out)
    return out


def _parse_item(item: str, flag: str) -> tuple[list[str], Any]:
    path, value = parse_override(item, flag=flag)
    if len(path) < 2:
        raise ConfigError(
            f"{flag} {item!r}: write DETECTOR.FIELD=VALUE or aux.FIELD=VALUE, e.g. waic.ensemble_size=5 or "
            "aux.features.size=96 (the fields are listed in docs/scores.md)"
        )
    return path, value


ALIASES: dict[str, tuple[str, ...]] = {
    "--ensemble-size": ("waic.ensemble_size",),
    "--mutation-rate": ("likelihood_ratio.mutation_rate",),
    "--typicality-m": ("typicality.m",),
    "--aux-steps": ("aux.ensemble.max_steps",),
    "--aux-minutes": ("aux.ensemble.minutes",),
    "--background-minutes": ("aux.background.minutes", "aux.general.minutes"),
    "--general-dataset": ("general_likelihood_ratio.dataset",),
    "--dose-estimator": ("dose.estimator",),
}
"""The settings each convenience flag sets (``--score-setting`` items given for the same keys win)."""


def from_command_line(
    scores: Sequence[str], aliases: Mapping[str, Any], items: Sequence[str]
) -> tuple[list[Detector], AuxSettings]:
    """Configured detectors and auxiliary settings from ``--scores``, the alias flags given (not ``None``) and
    ``--score-setting`` items; a bad value's error names the flag or item that gave it, before any scoring."""
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # dotted key -> the flag or item that set it, for the error message
    for flag, value in aliases.items():
        if value is None:
            continue
        for key in ALIASES[flag]:
            nest(key.split("."), value, values)
            given[key] = flag
    for item in items:
        path, value = _parse_item(item, "--score-setting")
        nest(path, value, values)
        given[".".join(path)] = f"--score-setting {'.'.join(path)}"
    try:
        return configure(list(scores), values)
    except FieldError as err:
        raise as_config_error(err, given.get(err.field, f"--score-setting {err.field}")) from None
