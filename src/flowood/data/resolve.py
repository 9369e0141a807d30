"""The one resolver: any dataset name -> a reference saying what it is; and the look-ups built on it.

:func:`resolve` tries, in this order (the first that matches wins):

1. **derived** - ``hflip:NAME``, ``vflip:NAME``, ``invert:NAME``, ``mutate-RATE[-xK]:NAME``
   (:mod:`flowood.data.derived`), with ``NAME`` resolved by these same rules;
2. **user scheme** - ``folder:``, ``npz:``, ``table:``, ``embeddings:`` followed by a path (and
   ``?key=value`` options) (:mod:`flowood.data.user`);
3. **registered** - a name in the table (:mod:`flowood.data.registry`, filled by
   :mod:`flowood.data.sources`), case-insensitive;
4. **plain path** - an existing file or folder, written with a ``/`` or ``:`` or starting with ``.``, read as
   the scheme its contents call for;
5. otherwise a one-line :class:`~flowood.errors.DatasetError` listing the registered names and user schemes.

Registered names hold no ``:`` or ``/`` (``register`` refuses them), so steps 2-4 never compete for a name; the
order only fixes which rule a reader looks at first. :func:`flowood.data.load_dataset`, :func:`dataset_info`,
:func:`pick_split` and :func:`pick_ood_split` all go through :func:`resolve`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import flowood.data.sources  # noqa: F401 - importing the package registers every source
from flowood.data import user
from flowood.data.base import DatasetInfo
from flowood.data.derived import Derivation, parse_derived
from flowood.data.locate import Root
from flowood.data.registry import SOURCES, Source, sources
from flowood.errors import DatasetError


@dataclass(frozen=True)
class RegisteredRef:
    """A registered dataset. ``name`` is its registered (lower-case) name."""

    name: str
    source: Source


@dataclass(frozen=True)
class UserRef:
    """User data: ``scheme`` (``folder``, ``npz``, ``table``, ``embeddings``) read from ``path``, with the
    options the name carried (``?label=col``). ``name`` is the name as given (stripped)."""

    name: str
    scheme: str
    path: Path
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DerivedRef:
    """``derivation`` applied to the dataset ``base``. ``name`` is the name as given (stripped)."""

    name: str
    derivation: Derivation
    base: DatasetRef


DatasetRef = RegisteredRef | UserRef | DerivedRef
"""What :func:`resolve` returns: a frozen reference saying what a name is."""


def resolve(name: str) -> DatasetRef:
    """Turn any dataset name into a :data:`DatasetRef` (look-up order: module docstring).

    Raises:
        DatasetError: an empty name, a malformed derived name, an unreadable ``.npz`` given as a plain path,
            or a name that is none of the above (the message lists what is available).
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()
    derived = parse_derived(name)
    if derived is not None:
        derivation, base = derived
        return DerivedRef(name, derivation, resolve(base))
    scheme = user.parse_scheme(name)
    if scheme is not None:
        return UserRef(name, scheme[0], scheme[1], tuple(scheme[2].items()))
    source = SOURCES.get(name.lower())
    if source is not None:
        return RegisteredRef(source.name, source)
    path = user.parse_path(name)
    if path is not None:
        return UserRef(name, path[0], path[1])
    raise DatasetError(
        f"unknown dataset {name!r}. Available: {', '.join(available_names())}; user data: folder:/path, "
        "npz:/path.npz, table:/path.csv?label=col, embeddings:/path.npz; derived: hflip:NAME, vflip:NAME, "
        "invert:NAME, mutate-RATE:NAME; shifted: blur-SIGMA:NAME, jpeg-QUALITY:NAME, shift-PIXELS:NAME, "
        "contrast-FACTOR:NAME"
    )


def describe(ref: DatasetRef, root: Root = None) -> DatasetInfo:
    """What is known of ``ref`` without reading its data (registered: where it is looked for under ``root``)."""
    if isinstance(ref, RegisteredRef):
        return ref.source.info(root)
    if isinstance(ref, UserRef):
        return user.info(ref.name, ref.scheme, ref.path)
    base = describe(ref.base, root)
    return dataclasses.replace(
        base, name=ref.name, description=f"{ref.derivation.prefix} of {base.name}: {base.description}"
    )


def dataset_info(name: str, root: Root = None) -> DatasetInfo:
    """Registry entry of ``name`` (any name :func:`resolve` accepts) with where it is looked for and whether it
    is available now."""
    return describe(resolve(name), root)


def available_names() -> list[str]:
    """The registered names, in listing order (user schemes and derived names are not listed)."""
    return [s.name for s in sources()]


def list_datasets(root: Root = None) -> list[DatasetInfo]:
    """Every registered dataset (plus the user-data schemes) with locations and current availability."""
    return [s.info(root) for s in sources()] + user.scheme_infos()


def pick_split(name: str, preferred: str) -> str:
    """``preferred`` if dataset ``name`` has it, else its closest split (``mnist-mini`` has ``half-train`` and
    ``half-test``), else its first; ``preferred`` when the name does not resolve (loading reports it)."""
    try:
        splits = dataset_info(name).splits
    except (DatasetError, OSError):
        return preferred
    if preferred in splits or not splits:
        return preferred
    for alt in ("half-train", "train") if preferred == "train" else ("half-test", "test"):
        if alt in splits:
            return alt
    return splits[0]


def pick_ood_split(name: str) -> str:
    """The split to score when ``name`` is an OOD set: ``all`` for a single user file or folder without split
    structure (scored whole; use a limit to score fewer), else :func:`pick_split` ``(name, "test")``. A derived
    set is scored on the split its base would be."""
    try:
        ref = resolve(name)
    except DatasetError:
        return "test"
    while isinstance(ref, DerivedRef):
        ref = ref.base
    if isinstance(ref, UserRef):
        return user.ood_split(ref.scheme, ref.path)
    return pick_split(ref.name, "test")
