"""``embeddings``: feature vectors from an ``.npz`` that ``path=`` (or ``root=``) names.

The file holds ``embeddings (N, D)`` and ``labels (N,)`` as the paper's code saved them, or the per-split pairs
``<split>_embeddings`` / ``<split>_labels`` that ``flowood embed`` writes; a folder of ``<split>.npz`` works too
(formats: :mod:`flowood.data.user_files`). It is the same data as the user name ``embeddings:/path.npz``
(:mod:`flowood.data.user`), under a registered name for code that passes the file as an option; ``all`` is the
whole file, ``train``/``val``/``test`` its own splits or else the seeded 80/10/10 partition of it.
"""

from __future__ import annotations

from pathlib import Path

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root
from flowood.data.registry import Source, register
from flowood.data.user import load as load_user_data
from flowood.data.user_files import SPLIT_NAMES, native_splits
from flowood.errors import DatasetError

HOW = "pass path=/path/to/file.npz"


def load_embeddings(
    name: str, split: str, root: Root, download: bool, *, seed: int = 0, path: str | Path | None = None
) -> ArrayDataset:
    """One split of the embeddings in ``path`` (else ``root``): float32 ``(N, D)``, int64 labels."""
    file = path if path is not None else root
    if file is None:
        raise DatasetError(
            f"{name}: pass path=/path/to/file.npz (an .npz with 'embeddings' and 'labels') or root= a folder of "
            "<split>.npz files"
        )
    ds = load_user_data("embeddings", Path(file).expanduser(), split, {}, seed=seed)
    ds.name = name  # the registered name asked for; ds.source names the file
    return ds


def probe_embeddings(root: Root) -> tuple[list[str], bool]:
    """Available when ``root`` is an ``.npz`` file or a folder holding per-split ``.npz`` files."""
    if root is None:
        return ["path= / root= (an .npz with 'embeddings' and 'labels')"], False
    where = Path(root).expanduser()
    return [str(where)], where.is_file() or (where.is_dir() and native_splits(where, "embeddings") != ("all",))


register(
    Source(
        name="embeddings",
        kind="vector",
        shape=None,
        native=("all", *SPLIT_NAMES),
        num_classes=None,
        description="Feature vectors from an .npz with 'embeddings' (N, D) and 'labels' (N,); path= or root= names "
        "the file (or a folder of <split>.npz)",
        license="the user's",
        how=HOW,
        loader=load_embeddings,
        probe=probe_embeddings,
        options=frozenset({"path"}),
        takes=frozenset({"seed"}),
        order=170,
    )
)
