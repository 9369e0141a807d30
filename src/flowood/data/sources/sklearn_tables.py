"""Small real tables that ship with scikit-learn (offline), as vector datasets with fixed splits.

``breast-cancer``: the UCI Breast Cancer Wisconsin (Diagnostic) table, ``sklearn.datasets.load_breast_cancer``:
569 samples × 30 real-valued features (cell-nucleus measurements in their original units, all >= 0), labels as
scikit-learn gives them: ``0 = malignant`` (212), ``1 = benign`` (357). Splits are carved per class by a fixed
permutation (independent of any ``seed`` argument, so they never change): test = 30 %, val = 10 %, train = the
remaining 60 % of each class. Train 341 (214 benign / 127 malignant), val 57, test 171 (107 / 64).

The one-class OOD protocol (benign in, malignant out): train on ``classes=[1]``, score ``test`` with
``classes=[1]`` against ``test`` with ``classes=[0]`` (preset ``tabular-breast-cancer``).
"""

from __future__ import annotations

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

SKLEARN_SPLITS = ("train", "val", "test")
#: (test, val) fractions of each class; train is the rest.
SPLIT_FRACTIONS = (0.3, 0.1)
BREAST_CANCER_CLASSES = ("malignant", "benign")
_SPLIT_SEED = 20200603  # fixed: the splits are part of the dataset's definition


def stratified_splits(labels: np.ndarray, seed: int = _SPLIT_SEED) -> dict[str, np.ndarray]:
    """Per-class fixed partition of ``range(N)`` into ``train`` / ``val`` / ``test`` index arrays (sorted)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {s: [] for s in SKLEARN_SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(SPLIT_FRACTIONS[0] * len(idx))
        n_val = round(SPLIT_FRACTIONS[1] * len(idx))
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test : n_test + n_val])
        out["train"].append(idx[n_test + n_val :])
    return {s: np.sort(np.concatenate(v)) for s, v in out.items()}


def load_breast_cancer_table(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    """One split of the breast-cancer table: float32 ``(N, 30)`` raw features, int64 labels (1 = benign)."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError(f"{name} needs scikit-learn (`pip install scikit-learn`): {err}") from err
    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    idx = stratified_splits(y)[split]
    return ArrayDataset(
        x[idx],
        y[idx],
        kind="vector",
        name=name,
        split=split,
        source="scikit-learn load_breast_cancer (UCI WDBC)",
        class_names=BREAST_CANCER_CLASSES,
    )


def probe_sklearn(root: Root) -> tuple[list[str], bool]:
    """Where the table comes from and whether scikit-learn can provide it."""
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return ["scikit-learn (not installed)"], False
    return ["scikit-learn (sklearn.datasets, bundled with the package)"], True


register(
    Source(
        name="breast-cancer",
        kind="vector",
        shape=(30,),
        native=SKLEARN_SPLITS,
        num_classes=2,
        description="UCI Breast Cancer Wisconsin (Diagnostic) from scikit-learn, 30 raw features; labels 0 = "
        "malignant, 1 = benign; fixed per-class splits 60/10/30 (offline)",
        license="CC BY 4.0 (UCI; Wolberg, Street, Mangasarian)",
        how="ships with scikit-learn",
        loader=load_breast_cancer_table,
        probe=probe_sklearn,
        carve_val=False,
        order=160,
    )
)
