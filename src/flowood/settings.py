"""Declared ranges: every field of a settings dataclass states its type and its bounds or choices where it is
declared, and one checker reads them.

>>> @dataclass(frozen=True)
... class WAICSettings:
...     ensemble_size: int = setting(3, ge=2, doc="K, the number of flows")
...     def __post_init__(self) -> None:
...         check(self)

:func:`check` (called from ``__post_init__``) checks each field's value against its annotation (``int``,
``float``, ``bool``, ``str``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict``, a nested settings
dataclass), stores numbers in their declared type (an ``int`` given for a ``float`` becomes a float; a
NumPy scalar a Python one), and checks the declared range; the first bad value raises a
:class:`~flowood.errors.FieldError` whose message names the field as ``{name}``, so the caller that took the
value under another name (``train.grad_clip``, ``--score-setting waic.ensemble_size``, a protocol file's key)
re-says it with that name. :func:`build` turns a mapping (parsed YAML, ``--set`` values) into an instance,
refusing unknown keys. :func:`out_of_range_values` gives, for every declared range, a value just outside it:
the generic test feeds each to its dataclass and expects a one-line error naming the field, so a field
whose range nobody declared is visible (a numeric field must declare a range or ``unbounded=True``).

Why not pydantic: the checks are these few rules, the CLI imports settings modules on start-up, and
dataclasses stay plain (frozen, ``dataclasses.replace``, ``asdict``) for the rest of the code.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, TypeVar

from flowood.errors import ConfigError, FieldError

T = TypeVar("T")

_KEY = "flowood.range"


@dataclass(frozen=True)
class Range:
    """The values one field accepts (``None`` is governed by the annotation, never by the range).

    Attributes:
        ge, gt, le, lt: numeric bounds (inclusive ``ge``/``le``, exclusive ``gt``/``lt``).
        choices: the allowed values, or a function returning them (for registries filled at import time).
        unbounded: a numeric field that accepts any finite value, said explicitly (e.g. a seed, a threshold
            in nats that may be any real number).
        doc: what the field means, in one line (with its unit).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    unbounded: bool = False
    doc: str = ""

    def allowed(self) -> tuple[Any, ...] | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    @property
    def declared(self) -> bool:
        return self.unbounded or self.choices is not None or self.bounds() != ""

    def bounds(self) -> str:
        """The numeric bounds in words: ``">= 0"``, ``"in (0, 1]"``, ``""`` when there are none."""
        low = f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}" if self.gt is not None else None
        high = f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {_num(self.ge)}" if self.ge is not None else f"> {_num(self.gt)}"
        if high:
            return f"<= {_num(self.le)}" if self.le is not None else f"< {_num(self.lt)}"
        return ""

    def violation(self, value: Any) -> str | None:
        """Why ``value`` is refused (a message template with ``{name}``), or ``None`` when it is accepted."""
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            return f"{{name}}: {_lit(value)} is not one of {', '.join(map(str, allowed))}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"{{name}} must be a finite number, got {value}"
        x = float(value)
        ok = (
            (self.ge is None or x >= self.ge)
            and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le)
            and (self.lt is None or x < self.lt)
        )
        return None if ok else f"{{name}} must be {self.bounds()}, got {_lit(value)}"


def _lit(value: Any) -> str:
    """``repr(value)`` safe inside a message template (its braces doubled for ``str.format``)."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def setting(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None,
    unbounded: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field with its declared range (see :class:`Range`); use it in place of ``field``."""
    meta = {_KEY: Range(ge, gt, le, lt, choices, unbounded, doc)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_range(f: dataclasses.Field[Any]) -> Range | None:
    """The :class:`Range` declared for a dataclass field, or ``None``."""
    return f.metadata.get(_KEY)


# ------------------------------------------------------------------------------------------------- checking


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}


def _words(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) in (list, tuple):
        return "a list"
    if typing.get_origin(annotation) is dict:
        return "a mapping"
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return _TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the type ``annotation`` declares, or :class:`FieldError` naming ``name``.

    ``bool`` is never taken for a number; an integral value is taken for a ``float`` (and stored as one);
    NumPy scalars become Python numbers; lists are accepted for ``tuple[X, ...]`` and kept as tuples (frozen
    settings stay hashable); a mapping becomes a nested settings dataclass."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(name, value, options[0])  # its own message says more than "X or null"
        for option in options:
            try:
                return coerce(name, value, option)
            except FieldError:
                continue
        words = " or ".join(_words(a) for a in args)
        raise FieldError(name, f"{{name}} must be {words}, got {_lit(value)}")
    if annotation is Any or annotation is object:
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise FieldError(name, f"{{name}} must be a list, got {_lit(value)}")
        item = args[0] if args else Any
        items = [coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise FieldError(name, f"{{name}} must be a mapping, got {_lit(value)}")
        return dict(value)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if isinstance(value, Mapping):
            try:
                return build(annotation, value)
            except FieldError as err:
                raise FieldError(f"{name}.{err.field}", err.template) from None
        raise FieldError(name, f"{{name}} must be a mapping, got {_lit(value)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise FieldError(name, f"{{name}} must be true or false, got {_lit(value)}")
    if annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise FieldError(name, f"{{name}} must be an integer, got {_lit(value)}")
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise FieldError(name, f"{{name}} must be a number, got {_lit(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise FieldError(name, f"{{name}} must be a string, got {_lit(value)}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check(obj: Any) -> None:
    """Coerce and check every field of the dataclass instance ``obj`` (call it from ``__post_init__``).

    Raises:
        FieldError: the first field with a wrong type or a value outside its declared range.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = coerce(f.name, getattr(obj, f.name), hints[f.name])
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)
        rng = field_range(f)
        if rng is None or value is None:
            continue
        for v in value if isinstance(value, list | tuple) else (value,):
            problem = rng.violation(v)
            if problem is not None:
                raise FieldError(f.name, problem)


def build(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """An instance of the settings dataclass ``cls`` from a mapping, unknown keys refused.

    Args:
        cls: a dataclass whose ``__post_init__`` calls :func:`check`.
        values: keyword → value (parsed YAML, ``--set`` values).
        where: the dotted prefix that names the fields in errors (``"train"`` → ``train.grad_clip``).

    Raises:
        FieldError: an unknown key or a bad value; ``field`` is the dotted name (``train.grad_clip``).
    """
    prefix = f"{where}." if where else ""
    if not isinstance(values, Mapping):
        raise FieldError(where or cls.__name__, f"{{name}} must be a mapping, got {_lit(values)}")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise FieldError(f"{prefix}{unknown[0]}", f"unknown key {{name}}; valid: {', '.join(sorted(names))}")
    try:
        return cls(**{k: _onto_default(f, values[k]) for k, f in _by_name(cls) if k in values})
    except FieldError as err:
        if not prefix:
            raise
        raise FieldError(f"{prefix}{err.field}", err.template) from None


def _by_name(cls: type) -> list[tuple[str, dataclasses.Field[Any]]]:
    return [(f.name, f) for f in dataclasses.fields(cls)]


def _onto_default(f: dataclasses.Field[Any], value: Any) -> Any:
    """A mapping given for a nested settings field updates the field's *default instance* (so
    ``aux: {ensemble: {max_steps: 2}}`` keeps the ensemble's default ``minutes``); anything else as given."""
    if not isinstance(value, Mapping):
        return value
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    if default is MISSING or not dataclasses.is_dataclass(default) or isinstance(default, type):
        return value
    current = {g.name: getattr(default, g.name) for g in dataclasses.fields(default)}
    try:
        return build(type(default), {**current, **value})
    except FieldError as err:
        raise FieldError(f"{f.name}.{err.field}", err.template) from None


def as_config_error(err: FieldError, name: str | None = None) -> ConfigError:
    """``err`` re-said with ``name`` (a flag, a file's key) in place of the field's own name."""
    return ConfigError(err.template.format(name=name or err.field))


# ------------------------------------------------------------------------------------------- enumeration


def declared_fields(cls: type) -> Iterator[tuple[str, Any, Range | None]]:
    """``(name, annotation, range)`` of every field of ``cls``, nested settings dataclasses flattened with
    dotted names (``early_stopping.patience``)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        inner = _without_none(hint)
        if dataclasses.is_dataclass(inner) and isinstance(inner, type):
            for sub, ann, rng in declared_fields(inner):
                yield f"{f.name}.{sub}", ann, rng
        else:
            yield f.name, hint, field_range(f)


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def is_numeric(annotation: Any) -> bool:
    """The field holds numbers (``int``, ``float``, possibly optional or in a list)."""
    inner = _without_none(annotation)
    if typing.get_origin(inner) in (list, tuple):
        inner = typing.get_args(inner)[0] if typing.get_args(inner) else Any
    return inner in (int, float)


def out_of_range_values(rng: Range, annotation: Any) -> list[Any]:
    """Values just outside ``rng`` (each must be refused), in the field's type; ``[]`` when unbounded."""
    inner = _without_none(annotation)
    listy = typing.get_origin(inner) in (list, tuple)
    if listy:
        inner = typing.get_args(inner)[0]
    step: float = 1 if inner is int else 0.5
    bad: list[Any] = []
    allowed = rng.allowed()
    if allowed is not None:
        if inner is str or any(isinstance(a, str) for a in allowed):
            bad.append("not-a-choice")
        elif inner in (int, float):
            bad.append(max(allowed) + 1)
    if rng.ge is not None:
        bad.append(rng.ge - step)
    if rng.gt is not None:
        bad.append(rng.gt)
    if rng.le is not None:
        bad.append(rng.le + step)
    if rng.lt is not None:
        bad.append(rng.lt)
    if inner is int:
        bad = [int(b) if isinstance(b, float) and b.is_integer() else b for b in bad]
        bad = [b for b in bad if isinstance(b, int | str)]
    elif inner is float:
        bad = [float(b) if isinstance(b, int) else b for b in bad]
    return [[b] if listy else b for b in bad]
