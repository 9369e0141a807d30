"""flowood.settings: declared ranges, the one type/range checker and the out-of-range enumeration."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flowood.errors import FieldError
from flowood.settings import build, check, declared_fields, out_of_range_values, setting


@dataclass(frozen=True)
class _Example:
    count: int = setting(3, ge=2)
    rate: float = setting(0.2, ge=0, le=1)
    estimator: str = setting("kde", choices=("kde", "ocsvm"))
    minutes: float | None = setting(None, gt=0)
    overrides: tuple[str, ...] = ()
    threshold: float = setting(-3.0, unbounded=True)

    def __post_init__(self) -> None:
        check(self)


def test_values_are_stored_in_their_declared_type() -> None:
    s = _Example(rate=1, overrides=["a=1"])  # type: ignore[arg-type]
    assert isinstance(s.rate, float) and s.overrides == ("a=1",)
    assert hash(s) == hash(_Example(rate=1.0, overrides=("a=1",)))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": True}, "x.count must be an integer, got True"),
        ({"count": 1}, "x.count must be >= 2, got 1"),
        ({"rate": 1.5}, "x.rate must be in [0, 1], got 1.5"),
        ({"rate": float("nan")}, "x.rate must be a finite number, got nan"),
        ({"estimator": "gmm"}, "x.estimator: 'gmm' is not one of kde, ocsvm"),
        ({"minutes": 0}, "x.minutes must be > 0, got 0"),
        ({"minutes": "soon"}, "x.minutes must be a number, got 'soon'"),
        ({"nope": 1}, "unknown key x.nope"),
    ],
)
def test_build_refuses_with_one_line_naming_the_dotted_field(values: dict, message: str) -> None:
    with pytest.raises(FieldError) as err:
        build(_Example, values, "x")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert err.value.field.startswith("x.")


def test_the_template_renames_the_field_for_a_flag() -> None:
    with pytest.raises(FieldError) as err:
        _Example(count=0)
    assert err.value.template.format(name="--ensemble-size") == "--ensemble-size must be >= 2, got 0"


def test_every_out_of_range_value_is_refused_and_every_bound_is_enumerated() -> None:
    seen = set()
    for name, annotation, rng in declared_fields(_Example):
        if rng is None:
            continue
        for bad in out_of_range_values(rng, annotation):
            seen.add(name)
            with pytest.raises(FieldError) as err:
                build(_Example, {name: bad})
            assert err.value.field == name
    assert seen == {"count", "rate", "estimator", "minutes"}  # threshold is unbounded: nothing to feed it


@dataclass(frozen=True)
class _Budget:
    minutes: float | None = setting(None, gt=0)
    max_steps: int | None = setting(None, ge=1)

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class _Outer:
    ensemble: _Budget = _Budget(minutes=1.0)
    test_limit: int = setting(500, ge=1)

    def __post_init__(self) -> None:
        check(self)


def test_a_partial_mapping_updates_the_nested_default_instance() -> None:
    """Setting only ``ensemble.max_steps`` must not reset the ensemble's own default ``minutes`` to the budget
    type's default."""
    outer = build(_Outer, {"ensemble": {"max_steps": 2}})
    assert outer.ensemble == _Budget(minutes=1.0, max_steps=2)
    with pytest.raises(FieldError) as err:
        build(_Outer, {"ensemble": {"max_steps": 0}}, "aux")
    assert err.value.field == "aux.ensemble.max_steps"
    assert str(err.value) == "aux.ensemble.max_steps must be >= 1, got 0"
