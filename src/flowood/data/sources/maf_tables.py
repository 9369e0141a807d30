"""``power``, ``gas``, ``hepmass``, ``miniboone``: UCI tables in the MAF-paper preprocessing (Papamakarios et al.
2017), read from the published file layout.

Files are looked for under ``<base>/<name>/``, ``<base>/maf/<name>/`` and ``<base>/data/<name>/`` for each base
in the look-up order (see :mod:`flowood.data.locate`):

=========  ====================================  ==========================================================
name       files                                 preprocessing (as the MAF code does it)
=========  ====================================  ==========================================================
power      ``power/data.npy`` (N, 8)             shuffle with ``RandomState(42)``; drop columns 3 and 1; add
                                                 uniform noise (gap 1e-3, voltage 1e-2, sub-meterings 1, time
                                                 0); test = last 10 %, val = last 10 % of the rest; normalise
                                                 with mean/std (ddof 0) of train+val. 6 dims.
gas        ``gas/ethylene_CO.pickle`` (pandas)   drop Meth, Eth, Time; repeatedly drop the first column with a
           or the UCI ``ethylene_CO.txt``        correlation > 0.98 to another; standardise (ddof 1); test =
                                                 last 10 %, val = last 10 % of the rest. 8 dims.
hepmass    ``hepmass/1000_train.csv`` and        keep signal rows (label column 0 == 1); drop the label;
           ``hepmass/1000_test.csv``             normalise with the train rows' mean/std (ddof 1); drop
                                                 features whose smallest value occurs > 5 times (and constant
                                                 ones); val = last 10 % of train. 21 dims.
miniboone  ``miniboone/data.npy`` (N, 43)        test = last 10 %, val = last 10 % of the rest; normalise with
                                                 train+val mean/std (ddof 0). 43 dims.
=========  ====================================  ==========================================================

**Class-conditional protocol** (the paper's tabular appendix: train on one class, the other class is OOD).
Pass ``in_class=c`` to :func:`flowood.data.load_dataset`; rows of *both* classes are returned with labels
(1 = signal, 0 = background), every row normalised with statistics of the in-distribution class only, and the
``classes`` option selects rows. For example: fit on ``load_dataset("hepmass", "train", in_class=1,
classes=[1])``, score ``load_dataset("hepmass", "test", in_class=1, classes=[1])`` (in-distribution) against
``load_dataset("hepmass", "test", in_class=1, classes=[0])`` (OOD).

* HEPMASS: both classes from the two csv files; mean/std (ddof 1) of the in-class rows of ``1000_train.csv``;
  features removed by the MAF rule evaluated on those normalised in-class rows; per class, train = first 90 %
  of its ``1000_train.csv`` rows, val = last 10 %, test = its ``1000_test.csv`` rows. ``in_class=1,
  classes=[1]`` is exactly the MAF HEPMASS above.
* MINIBOONE: needs the raw UCI ``miniboone/MiniBooNE_PID.txt`` (first line: number of signal events, number of
  background events; then signal rows, then background rows). Rows with a first feature < -100 (the -999
  placeholders) are removed and features selected by the MAF rule on all rows (which reproduces MAF's
  ``data.npy`` columns); per class, test = last 10 % of its rows, val = last 10 % of the rest, train = the
  remainder; mean/std (ddof 0) from the in-class train+val rows, as MAF normalises.

MAF's HEPMASS code drops the last column of ``1000_test.csv`` ("the data set is messed up"); that column is the
constant signal mass, which the feature rule also removes from train, so applying train's kept columns to the
test table (what is done here) is equivalent and also works for tables without the extra column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Probe, Root, find_first, missing_error, probe_paths
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

MAF_HOW = (
    "download the MAF-paper data archive (Papamakarios et al. 2017, 'data.tar.gz' from the MAF repository's "
    "Zenodo record) and extract it so that {files} exist under one of the folders listed."
)
TABULAR_SPLITS = ("train", "val", "test")


def _dirs(base: Path, name: str) -> list[Path]:
    return [base / name, base / "maf" / name, base / "data" / name, base / name.upper()]


def find_file(name: str, root: Root, filenames: list[str]) -> tuple[Path | None, list[str]]:
    """The first of ``filenames`` in the first folder (in look-up order) holding one -> (that file, places
    looked)."""
    return find_first(root, lambda base: [d / f for d in _dirs(base, name) for f in filenames])


def _load_npy(path: Path, ncols: int | None = None) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DatasetError(f"cannot read {path}: {err} (corrupt or truncated .npy)") from err
    if arr.ndim != 2 or (ncols is not None and arr.shape[1] != ncols):
        want = f"(N, {ncols})" if ncols else "(N, D)"
        raise DatasetError(f"{path}: expected a 2-D table {want}, got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float64)


def _load_text(path: Path, delimiter: str | None, skiprows: int = 1) -> np.ndarray:
    try:
        arr = np.loadtxt(path, delimiter=delimiter, skiprows=skiprows, dtype=np.float64, ndmin=2)
    except Exception as err:
        raise DatasetError(f"cannot parse {path}: {err}") from err
    if arr.shape[0] == 0:
        raise DatasetError(f"{path}: no data rows")
    return arr


def _tail_splits(data: np.ndarray) -> dict[str, np.ndarray]:
    """MAF split: test = last 10 %, val = last 10 % of the remainder, train = the rest (no shuffling here)."""
    n_test = int(0.1 * data.shape[0])
    test = data[data.shape[0] - n_test :]
    rest = data[: data.shape[0] - n_test]
    n_val = int(0.1 * rest.shape[0])
    return {"train": rest[: rest.shape[0] - n_val], "val": rest[rest.shape[0] - n_val :], "test": test}


def _std(x: np.ndarray, ddof: int) -> np.ndarray:
    s = x.std(axis=0, ddof=ddof)
    return np.where(s > 0, s, 1.0)


def repeated_value_features(x: np.ndarray) -> list[int]:
    """MAF's rule: drop a feature if its *smallest* value occurs more than 5 times; also drop constant features."""
    out = []
    for j in range(x.shape[1]):
        col = x[:, j]
        if not np.all(np.isfinite(col)) or col.std() == 0 or np.count_nonzero(col == col.min()) > 5:
            out.append(j)
    return out


def _ds(name: str, split: str, x: np.ndarray, labels: np.ndarray | None, source: str) -> ArrayDataset:
    if x.shape[0] == 0:
        raise DatasetError(f"{name}: split {split!r} is empty (source {source})")
    return ArrayDataset(x.astype(np.float32), labels, kind="vector", name=name, split=split, source=source)


# ------------------------------------------------------------------------------------------------------- POWER


def load_power(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    path, looked = find_file(name, root, ["data.npy"])
    if path is None:
        raise missing_error(name, looked, MAF_HOW.format(files="power/data.npy"))
    data = _load_npy(path, ncols=8)
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    parts = _tail_splits(data)
    ref = np.vstack((parts["train"], parts["val"]))
    mu, s = ref.mean(axis=0), _std(ref, 0)
    return _ds(name, split, (parts[split] - mu) / s, None, str(path))


# --------------------------------------------------------------------------------------------------------- GAS


def _read_gas(path: Path) -> np.ndarray:
    """Sensor columns of the ethylene_CO recording (Time and the two concentrations dropped) -> (N, 16)."""
    if path.suffix == ".pickle":
        try:
            import pandas as pd
        except ImportError as err:
            raise DatasetError(
                f"{path} is a pandas pickle; install pandas (`pip install pandas`) or place the UCI text file "
                f"ethylene_CO.txt next to it"
            ) from err
        try:
            frame = pd.read_pickle(path)
            frame = frame.drop(columns=["Meth", "Eth", "Time"])
            return frame.to_numpy(dtype=np.float64)
        except Exception as err:
            raise DatasetError(f"cannot read {path}: {err} (expected MAF's DataFrame with Meth, Eth, Time)") from err
    arr = _load_text(path, delimiter=None, skiprows=1)
    if arr.shape[1] != 19:
        raise DatasetError(f"{path}: expected 19 columns (time, 2 concentrations, 16 sensors), got {arr.shape[1]}")
    return arr[:, 3:]


def load_gas(name: str, split: str, root: Root, download: bool) -> ArrayDataset:
    path, looked = find_file(name, root, ["ethylene_CO.pickle", "ethylene_CO.txt"])
    if path is None:
        raise missing_error(name, looked, MAF_HOW.format(files="gas/ethylene_CO.pickle (or UCI ethylene_CO.txt)"))
    data = _read_gas(path)

    def n_correlated(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(x, rowvar=False)
        return (c > 0.98).sum(axis=1)

    b = n_correlated(data)
    while np.any(b > 1):
        data = np.delete(data, int(np.flatnonzero(b > 1)[0]), axis=1)
        b = n_correlated(data)
    data = (data - data.mean(axis=0)) / _std(data, 1)
    return _ds(name, split, _tail_splits(data)[split], None, str(path))


# ----------------------------------------------------------------------------------------------------- HEPMASS


def _hepmass_tables(name: str, root: Root) -> tuple[np.ndarray, np.ndarray, Path]:
    path, looked = find_file(name, root, ["1000_train.csv"])
    how = MAF_HOW.format(files="hepmass/1000_train.csv and hepmass/1000_test.csv")
    if path is None:
        raise missing_error(name, looked, how)
    test_path = path.parent / "1000_test.csv"
    if not test_path.is_file():
        raise missing_error(name, [*looked, str(test_path)], how, f"found {path} but not {test_path}")
    train = _load_text(path, delimiter=",")
    test = _load_text(test_path, delimiter=",")
    for p, t in ((path, train), (test_path, test)):
        if t.shape[1] < 2 or not np.isin(t[:, 0], (0.0, 1.0)).all():
            raise DatasetError(f"{p}: column 0 must be the 0/1 class label followed by features")
    if test.shape[1] < train.shape[1]:
        raise DatasetError(f"{test_path} has {test.shape[1]} columns but {path} has {train.shape[1]}")
    return train, test, path


def load_hepmass(name: str, split: str, root: Root, download: bool, *, in_class: int | None = None) -> ArrayDataset:
    train, test, path = _hepmass_tables(name, root)
    ref_class = 1 if in_class is None else int(in_class)
    if ref_class not in (0, 1):
        raise DatasetError(f"{name}: in_class must be 0 (background) or 1 (signal), got {in_class}")
    ref = train[train[:, 0] == ref_class, 1:]
    if ref.shape[0] < 2:
        raise DatasetError(f"{path}: fewer than 2 rows of class {ref_class}")
    mu, s = ref.mean(axis=0), _std(ref, 1)
    drop = repeated_value_features((ref - mu) / s)
    keep = np.array([j for j in range(ref.shape[1]) if j not in drop], dtype=np.int64)
    classes = [1] if in_class is None else [0, 1]
    xs, ys = [], []
    for c in classes:
        rows = train[train[:, 0] == c] if split != "test" else test[test[:, 0] == c]
        x = (rows[:, 1 : 1 + ref.shape[1]] - mu) / s
        if split != "test":
            n_val = int(0.1 * x.shape[0])
            x = x[x.shape[0] - n_val :] if split == "val" else x[: x.shape[0] - n_val]
        xs.append(x[:, keep])
        ys.append(np.full(x.shape[0], c, dtype=np.int64))
    src = str(path.parent) + (f" (normalised by class {ref_class})" if in_class is not None else "")
    return _ds(name, split, np.concatenate(xs), np.concatenate(ys), src)


# --------------------------------------------------------------------------------------------------- MINIBOONE


def _read_miniboone_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniBooNE_PID.txt -> (features (N, 50), labels 1 = signal / 0 = background)."""
    try:
        with open(path) as f:
            first = f.readline().split()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    if len(first) != 2 or not all(t.isdigit() for t in first):
        raise DatasetError(f"{path}: first line must hold the signal and background counts, got {' '.join(first)!r}")
    n_sig, n_bkg = int(first[0]), int(first[1])
    data = _load_text(path, delimiter=None, skiprows=1)
    if data.shape[0] != n_sig + n_bkg:
        raise DatasetError(
            f"{path}: header announces {n_sig}+{n_bkg} events but {data.shape[0]} rows follow (truncated file?)"
        )
    labels = np.concatenate([np.ones(n_sig, dtype=np.int64), np.zeros(n_bkg, dtype=np.int64)])
    return data, labels


def load_miniboone(name: str, split: str, root: Root, download: bool, *, in_class: int | None = None) -> ArrayDataset:
    if in_class is None:
        path, looked = find_file(name, root, ["data.npy"])
        if path is None:
            raise missing_error(name, looked, MAF_HOW.format(files="miniboone/data.npy"))
        parts = _tail_splits(_load_npy(path))
        ref = np.vstack((parts["train"], parts["val"]))
        return _ds(name, split, (parts[split] - ref.mean(axis=0)) / _std(ref, 0), None, str(path))

    if int(in_class) not in (0, 1):
        raise DatasetError(f"{name}: in_class must be 0 (background) or 1 (signal), got {in_class}")
    path, looked = find_file(name, root, ["MiniBooNE_PID.txt"])
    if path is None:
        raise missing_error(
            name,
            looked,
            "the class-conditional protocol needs the raw UCI file MiniBooNE_PID.txt (UCI Machine Learning "
            "Repository, 'MiniBooNE particle identification'); place it in <root>/miniboone/.",
        )
    data, labels = _read_miniboone_raw(path)
    ok = data[:, 0] >= -100
    data, labels = data[ok], labels[ok]
    drop = repeated_value_features(data)
    data = np.delete(data, drop, axis=1)
    per_class = {c: _tail_splits(data[labels == c]) for c in (0, 1)}
    ref_parts = per_class[int(in_class)]
    ref = np.vstack((ref_parts["train"], ref_parts["val"]))
    mu, s = ref.mean(axis=0), _std(ref, 0)
    xs = [(per_class[c][split] - mu) / s for c in (0, 1)]
    ys = [np.full(x.shape[0], c, dtype=np.int64) for c, x in zip((0, 1), xs, strict=True)]
    return _ds(name, split, np.concatenate(xs), np.concatenate(ys), f"{path} (normalised by class {in_class})")


def _probe(name: str, files: list[str]) -> Probe:
    return probe_paths([f"{d}/{f}" for d in (name, f"maf/{name}", f"data/{name}") for f in files])


register(
    Source(
        name="miniboone",
        kind="vector",
        shape=(43,),
        native=TABULAR_SPLITS,
        num_classes=2,
        description="UCI MiniBooNE, MAF preprocessing (data.npy); in_class=0|1 for the class-conditional protocol "
        "(needs MiniBooNE_PID.txt)",
        license="UCI ML repository (cite Roe et al. 2005)",
        how=MAF_HOW.format(files="miniboone/data.npy"),
        loader=load_miniboone,
        probe=_probe("miniboone", ["data.npy", "MiniBooNE_PID.txt"]),
        options=frozenset({"in_class"}),
        order=120,
    )
)
register(
    Source(
        name="hepmass",
        kind="vector",
        shape=(21,),
        native=TABULAR_SPLITS,
        num_classes=2,
        description="UCI HEPMASS, MAF preprocessing (1000_train/test.csv, signal only); in_class=0|1 for the "
        "class-conditional protocol",
        license="UCI ML repository (Baldi et al. 2016)",
        how=MAF_HOW.format(files="hepmass/1000_train.csv, hepmass/1000_test.csv"),
        loader=load_hepmass,
        probe=_probe("hepmass", ["1000_train.csv"]),
        options=frozenset({"in_class"}),
        order=130,
    )
)
register(
    Source(
        name="gas",
        kind="vector",
        shape=(8,),
        native=TABULAR_SPLITS,
        num_classes=None,
        description="UCI gas sensors (ethylene_CO), MAF preprocessing",
        license="UCI ML repository (Fonollosa et al. 2015)",
        how=MAF_HOW.format(files="gas/ethylene_CO.pickle"),
        loader=load_gas,
        probe=_probe("gas", ["ethylene_CO.pickle", "ethylene_CO.txt"]),
        order=140,
    )
)
register(
    Source(
        name="power",
        kind="vector",
        shape=(6,),
        native=TABULAR_SPLITS,
        num_classes=None,
        description="UCI household electric power, MAF preprocessing (data.npy)",
        license="UCI ML repository (Hebrail & Berard)",
        how=MAF_HOW.format(files="power/data.npy"),
        loader=load_power,
        probe=_probe("power", ["data.npy"]),
        order=150,
    )
)
