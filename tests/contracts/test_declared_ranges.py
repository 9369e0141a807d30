"""Every numeric or enumerated setting declares its range where it is declared, and every out-of-range value is
refused with one line naming the field (protects :mod:`flowood.settings` and each settings dataclass that uses
it: the run config's ``data``/``train`` sections and ``seed``, every registered detector's ``Settings``, the
auxiliary models' settings and the feature pipeline, the scoring options, the benchmark protocol and the
embedding demo's settings), each reached the way a user reaches it (a config mapping, ``--score-setting``'s
nested settings, a protocol file).

The fields are enumerated from the dataclasses themselves, so a new field without a declared range fails
:func:`test_every_numeric_field_declares_its_range` and a declared range that the code does not enforce fails
:func:`test_every_out_of_range_value_is_refused_naming_the_field`.
"""

from __future__ import annotations

import tempfile
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowood.errors import ConfigError, FieldError
from flowood.experiments.aux_models import AuxSettings
from flowood.experiments.detector_settings import configure
from flowood.experiments.embedding_demo import EmbeddingDemoSettings
from flowood.experiments.evaluate import ScoringOptions
from flowood.experiments.protocol import Protocol, load_protocol
from flowood.ood.detectors import DETECTORS
from flowood.settings import Range, as_config_error, build, declared_fields, is_numeric, out_of_range_values
from flowood.train.config import DataConfig, TrainConfig, config_from_dict


@dataclass(frozen=True)
class Owner:
    """A settings dataclass and how a user reaches one of its fields: ``attempt(path, value)`` raises the
    user-facing error; ``label(path)`` is the name the error must say."""

    name: str
    cls: type
    attempt: Callable[[str, Any], object]
    label: Callable[[str], str]


def _nested(path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _run_config(section: str) -> Callable[[str, Any], object]:
    return lambda path, value: config_from_dict({"model": "realnvp", section: _nested(path, value)})


def _detector(name: str) -> Callable[[str, Any], object]:
    return lambda path, value: _configure([name], {name: _nested(path, value)})


def _configure(names: list[str], values: dict[str, Any]) -> object:
    try:
        return configure(names, values)
    except FieldError as err:
        raise as_config_error(err) from None


def _protocol_file(path: str, value: Any) -> object:
    folder = Path(tempfile.mkdtemp())
    budget = {"preset": "demo", path: value}
    text = yaml.safe_dump(
        {
            "name": "p",
            "in_distribution": "fashionmnist-mini",
            "ood": {"far": ["glyphs"]},
            "detectors": ["log_likelihood", "dose"],
            "budgets": {"quick": budget},
        }
    )
    (folder / "p.yaml").write_text(text)
    return load_protocol(folder / "p.yaml", "quick")


def _built(cls: type) -> Callable[[str, Any], object]:
    def attempt(path: str, value: Any) -> object:
        try:
            return build(cls, _nested(path, value))
        except FieldError as err:
            raise as_config_error(err) from None

    return attempt


OWNERS = [
    Owner("data", DataConfig, _run_config("data"), lambda p: f"data.{p}"),
    Owner("train", TrainConfig, _run_config("train"), lambda p: f"train.{p}"),
    *(Owner(n, DETECTORS[n].Settings, _detector(n), lambda p, n=n: f"{n}.{p}") for n in DETECTORS),
    Owner("aux", AuxSettings, lambda p, v: _configure([], {"aux": _nested(p, v)}), lambda p: f"aux.{p}"),
    Owner("scoring", ScoringOptions, _built(ScoringOptions), lambda p: p),
    Owner("protocol", Protocol, _protocol_file, lambda p: f"budgets.quick.{p}"),
    Owner("embedding-demo", EmbeddingDemoSettings, _built(EmbeddingDemoSettings), lambda p: p),
]


def _fields() -> Iterator[tuple[Owner, str, Any, Range | None]]:
    for owner in OWNERS:
        for path, annotation, rng in declared_fields(owner.cls):
            yield owner, path, annotation, rng


def _bad_values() -> Iterator[Any]:
    for owner, path, annotation, rng in _fields():
        if rng is None:
            continue
        for bad in out_of_range_values(rng, annotation):
            yield pytest.param(owner, path, bad, id=f"{owner.name}.{path}={bad!r}")


@pytest.mark.parametrize(
    ("owner", "path", "annotation", "rng"), [pytest.param(*f, id=f"{f[0].name}.{f[1]}") for f in _fields()]
)
def test_every_numeric_field_declares_its_range(owner: Owner, path: str, annotation: Any, rng: Range | None) -> None:
    if is_numeric(annotation):
        assert rng is not None and rng.declared, (
            f"{owner.label(path)} holds numbers but declares no range: add setting(..., ge=/gt=/le=/lt=/choices=) "
            "or setting(..., unbounded=True) where it is declared"
        )


@pytest.mark.parametrize(("owner", "path", "bad"), list(_bad_values()))
def test_every_out_of_range_value_is_refused_naming_the_field(owner: Owner, path: str, bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        owner.attempt(path, bad)
    message = str(err.value)
    assert owner.label(path) in message and "\n" not in message, message


def test_seed_is_a_non_negative_integer() -> None:
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        config_from_dict({"model": "realnvp", "seed": -1})


def test_negative_grad_clip_is_refused_and_zero_means_off() -> None:
    """A negative clip would multiply every gradient by a negative coefficient: training would climb the loss."""
    with pytest.raises(ConfigError, match=r"^train.grad_clip must be >= 0"):
        config_from_dict({"model": "realnvp", "train": {"grad_clip": -1}})
    assert config_from_dict({"model": "realnvp", "train": {"grad_clip": 0}}).train.grad_clip == 0.0
    assert typing.get_type_hints(TrainConfig)["grad_clip"] == float | None
