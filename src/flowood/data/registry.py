"""The table of registered datasets: the :class:`Source` entry type, :func:`register`, and look-ups.

Only the mechanism lives here. Each entry is declared by the module that reads its files, next to its loader
and its "how to get it" text, one module per file-format family under :mod:`flowood.data.sources`; importing
that package (which :mod:`flowood.data.resolve` does) imports every module in it, and each module calls
:func:`register` for its datasets. Adding a dataset is therefore one new module (or one more
:func:`register` call in the module of its format).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowood.data.base import ArrayDataset, DatasetInfo, Kind
from flowood.data.locate import Probe, Root

Loader = Callable[..., ArrayDataset]
"""``loader(name, split, root, download, **options) -> ArrayDataset`` for one *native* split; ``options`` are
the source's own keywords (:attr:`Source.options`) plus the load arguments it asked for (:attr:`Source.takes`)."""

#: Load arguments a loader may ask to receive (by :attr:`Source.takes`) instead of getting them applied after
#: loading: ``size`` (it reads at that resolution itself, e.g. CelebA's crop-and-resize), ``seed`` (it carves
#: splits itself).
TAKEABLE = frozenset({"size", "seed"})
#: Listing position of a source that does not choose one: after every source that does.
LAST = 1000


@dataclass(frozen=True)
class Source:
    """One registered dataset: what ``flowood datasets`` shows, how to read a split, how to tell if it is here.

    Attributes:
        name: the registered name (lower case, no ``:`` or ``/``, which mark derived sets, user data and paths).
        kind: ``"image"`` (uint8 ``(N, C, H, W)``) or ``"vector"`` (float32 ``(N, D)``).
        shape: per-sample shape at the default size, ``None`` when the files decide it (embeddings).
        native: the splits the loader reads; see :attr:`splits` for the carved ones.
        num_classes: number of label values, ``None`` for unlabelled data.
        description, license, how: what it is, its terms, how to obtain its files (one line each).
        loader: reads one native split (:data:`Loader`).
        probe: where it is looked for and whether it is available now, without reading it.
        options: the dataset-specific keywords the loader accepts (``in_class``, ``crop``...).
        takes: load arguments passed to the loader (a subset of :data:`TAKEABLE`); ``"size"`` also means the
            generic resize is skipped.
        carve_val: give ``val`` / ``fit`` as a seeded 10 % / 90 % partition of ``train`` (when ``val`` is not
            native).
        order: position in listings (``flowood datasets``, "Available: ..."), ascending; ties keep registration
            order. Sources that leave it at :data:`LAST` are listed after the others.
    """

    name: str
    kind: Kind
    shape: tuple[int, ...] | None
    native: tuple[str, ...]
    num_classes: int | None
    description: str
    license: str
    how: str
    loader: Loader
    probe: Probe
    options: frozenset[str] = frozenset()
    takes: frozenset[str] = frozenset()
    carve_val: bool = True
    order: int = LAST

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split :func:`flowood.data.load_dataset` accepts: the native ones, then ``val``/``fit`` if carved."""
        extra = ("val", "fit") if self.carve_val and "val" not in self.native else ()
        return self.native + extra

    def info(self, root: Root = None) -> DatasetInfo:
        """This entry with where it is looked for under ``root`` and whether it is available now."""
        try:
            locations, available = self.probe(root)
        except OSError:  # an unreadable folder means "not available", not a crash of the listing
            locations, available = [], False
        return DatasetInfo(
            name=self.name,
            kind=self.kind,
            shape=self.shape,
            splits=self.splits,
            num_classes=self.num_classes,
            description=self.description,
            locations=locations,
            available_now=available,
            license=self.license,
            how_to_get=self.how,
        )


SOURCES: dict[str, Source] = {}
"""Registered name → :class:`Source`, in registration order (:func:`sources` gives listing order)."""


def register(source: Source) -> Source:
    """Add ``source`` to the table (called by its module at import time); returns it.

    Raises:
        ValueError: a name already registered, a name that the resolver would read as something else, or
            ``takes`` outside :data:`TAKEABLE` — mistakes in the source module, caught on import.
    """
    if source.name in SOURCES:
        raise ValueError(f"dataset {source.name!r} is registered twice ({SOURCES[source.name].how!r} first)")
    if not source.name or source.name != source.name.strip().lower() or any(c in source.name for c in ":/?"):
        raise ValueError(f"dataset name {source.name!r} must be lower case without ':', '/' or '?'")
    if not source.takes <= TAKEABLE:
        raise ValueError(f"{source.name}: takes {sorted(source.takes - TAKEABLE)} not in {sorted(TAKEABLE)}")
    SOURCES[source.name] = source
    return source


def sources() -> list[Source]:
    """Every registered source in listing order (:attr:`Source.order`, then registration order)."""
    return sorted(SOURCES.values(), key=lambda s: s.order)
