"""The readers of user files: an image folder, an image ``.npz``, a CSV/NPZ table, an embeddings ``.npz``.

Formats (the names that select them are :mod:`flowood.data.user`):

* image folder - torchvision's ImageFolder layout ``/path/<class>/<image>`` (classes sorted by name -> 0..K-1);
  per-split sub-folders ``train/``, ``val/``, ``test/`` in that layout give native splits.
* image ``.npz`` - images under key ``images``, ``x`` or ``X`` (``(N, H, W)``, NHWC ``(N, H, W, C)`` or NCHW
  ``(N, C, H, W)``, C in {1, 3}); optional labels under ``labels``, ``y`` or ``Y``. Pixels: uint8 0..255, or
  floats / other integers by one rule: all values in [0, 1] are scaled ×255 (floats only), values in
  [0, 255] are taken as they are (rounded), anything else (or NaN/Inf) is an error. Keys suffixed ``_<split>``
  (``x_train``, ``y_test``...) give native splits; a directory holding ``<split>.npz`` files does too.
* table - a CSV with a header row and numeric columns, ``label`` naming the label column; or an ``.npz`` with
  ``x``/``X``/``data``/``features`` (N, D) and optional ``y``/``Y``/``labels``. Labels may be integers or
  strings; strings are mapped to codes 0..K-1 in sorted order (``dataset.class_names`` holds the mapping). NaN
  or infinite values are an error naming the file, column and number of rows: remove or impute them first.
  A directory holding ``<split>.csv`` / ``<split>.npz`` gives native splits.
* embeddings - an ``.npz`` with ``embeddings (N, D)`` and ``labels (N,)`` as the paper's code saved them, or
  ``<split>_embeddings`` / ``<split>_labels`` pairs as ``flowood embed`` writes them; a directory holding
  ``<split>.npz`` (or ``embeddings_<split>.npz``) gives native splits.

A reader returns one split (``all`` for a source without split structure); carving ``train``/``val``/``test``
out of ``all`` is :func:`flowood.data.user.load`'s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.errors import DatasetError

SPLIT_NAMES = ("train", "val", "test")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def open_npz(path: Path):
    """``np.load`` without pickles; a corrupt file is one error naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise DatasetError(f"cannot read {path}: {err} (corrupt or truncated npz)") from err


def _get(z, path: Path, keys: tuple[str, ...], split: str | None) -> np.ndarray | None:
    key = None
    try:
        for k in keys:
            key = f"{k}_{split}" if split else k
            if key in z.files:
                return np.asarray(z[key])
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DatasetError(
                f"{path}: array {key!r} holds Python objects (dtype=object), which flowood does not unpickle; "
                "save it as numbers or strings (np.asarray(values, dtype=str))"
            ) from None
        raise DatasetError(f"cannot read {path}: {err} (corrupt or truncated npz)") from err
    except Exception as err:
        raise DatasetError(f"cannot read {path}: {err} (corrupt or truncated npz)") from err
    return None


def encode_labels(y: np.ndarray, path: Path, what: str = "labels") -> tuple[np.ndarray, list[str] | None]:
    """Integer labels as they are; string labels → codes 0..K-1 (sorted names) and the names.

    Raises:
        DatasetError: float labels that are not whole numbers.
    """
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind in "US":
        names = sorted({str(v) for v in y.tolist()})
        codes = {n: i for i, n in enumerate(names)}
        return np.array([codes[str(v)] for v in y.tolist()], dtype=np.int64), names
    if y.dtype.kind == "b":
        return y.astype(np.int64), None
    if y.dtype.kind in "iu":
        return y.astype(np.int64), None
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DatasetError(f"{path}: {what} must be integers or strings, got non-integer numbers")
        return y.astype(np.int64), None
    raise DatasetError(f"{path}: {what} must be integers or strings, got dtype {y.dtype}")


def check_finite(x: np.ndarray, path: Path, columns: list[str] | None = None) -> None:
    """Error naming the file, the first bad columns and how many rows hold NaN/Inf (no silent dropping)."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    per_col = bad.sum(axis=0)
    cols = np.flatnonzero(per_col)
    names = [repr(columns[c]) if columns else str(int(c)) for c in cols[:3]]
    more = f" and {len(cols) - 3} more" if len(cols) > 3 else ""
    rows = int(bad.any(axis=1).sum())
    raise DatasetError(
        f"{path}: column {', '.join(names)}{more} holds NaN/Inf in {rows} rows of {x.shape[0]}; remove or impute "
        "those values first (a density is undefined there, and dropping the column would hide it)"
    )


def _split_file(folder: Path, split: str, patterns: tuple[str, ...]) -> Path | None:
    for p in patterns:
        cand = folder / p.format(split=split)
        if cand.is_file():
            return cand
    return None


def native_splits(path: Path, kind: str) -> tuple[str, ...]:
    """Native splits of a user source (``("all",)`` for a single source without split structure)."""
    if path.is_dir():
        if kind == "folder":
            subs = tuple(s for s in SPLIT_NAMES if (path / s).is_dir())
        else:
            pats = {
                "npz": ("{split}.npz",),
                "table": ("{split}.csv", "{split}.npz"),
                "embeddings": ("{split}.npz", "embeddings_{split}.npz", "{split}_embeddings.npz"),
            }[kind]
            subs = tuple(s for s in SPLIT_NAMES if _split_file(path, s, pats))
        return subs or ("all",)
    if path.suffix == ".npz" and kind in ("npz", "table"):
        z = open_npz(path)
        with z:
            subs = tuple(
                s
                for s in SPLIT_NAMES
                if any(f"{k}_{s}" in z.files for k in ("images", "x", "data", "features", "embeddings"))
            )
        return subs or ("all",)
    if path.suffix == ".npz" and kind == "embeddings":
        # `flowood embed` files hold `<split>_embeddings` per split.
        z = open_npz(path)
        with z:
            subs = tuple(s for s in SPLIT_NAMES if f"{s}_embeddings" in z.files)
        return subs or ("all",)
    return ("all",)


# -------------------------------------------------------------------------------------------------- images npz


def pixels_to_uint8(arr: np.ndarray, path: Path) -> tuple[np.ndarray, str | None]:
    """The documented rule for non-uint8 pixels: bool → 0 / 255; floats all in [0, 1] → ×255; values in [0, 255]
    → as they are (rounded); anything else, or NaN/Inf, an error. Returns the uint8 array and a note (None for
    uint8)."""
    if arr.dtype == np.uint8:
        return arr, None
    if arr.dtype.kind not in "fiub":
        raise DatasetError(f"{path}: images must be numbers (uint8 0..255 or floats in [0, 1]), got {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.uint8), None
    if arr.dtype.kind == "b":  # a mask: True is white, not the value 1 of 255
        return arr.astype(np.uint8) * np.uint8(255), "bool pixels read as 0 / 255"
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DatasetError(f"{path}: images hold NaN/Inf in {int((~np.isfinite(arr)).sum())} pixels")
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return np.round(arr.astype(np.float64) * 255.0).astype(np.uint8), f"{arr.dtype} pixels in [0, 1] scaled x255"
    if lo >= 0.0 and hi <= 255.0:
        return np.round(arr).astype(np.uint8), f"{arr.dtype} pixels in [0, 255] taken as 0..255"
    raise DatasetError(
        f"{path}: {arr.dtype} pixel values span [{lo:g}, {hi:g}]; flowood reads floats in [0, 1] (scaled x255) "
        "or values in [0, 255] - rescale the images to one of those ranges"
    )


def images_to_nchw(arr: np.ndarray, path: Path) -> np.ndarray:
    """uint8 (N, H, W) / NHWC / NCHW -> NCHW; errors name the file."""
    if arr.dtype != np.uint8:
        raise DatasetError(f"{path}: images must be uint8 (0..255), got {arr.dtype}")
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise DatasetError(f"{path}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {arr.shape}")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        return arr
    if arr.shape[-1] in (1, 3):
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    raise DatasetError(f"{path}: cannot tell the channel axis of shape {arr.shape} (channels must be 1 or 3)")


def load_images_npz(name: str, split: str, path: Path) -> ArrayDataset:
    file = path
    key_split: str | None = None if split == "all" else split
    if path.is_dir():
        file = path / f"{split}.npz"
        key_split = None
        if not file.is_file():
            raise DatasetError(f"{name}: no {file}")
    z = open_npz(file)
    with z:
        x = _get(z, file, ("images", "x", "X"), key_split)
        if x is None:
            raise DatasetError(
                f"{file}: no image array (keys {z.files}; expected 'images', 'x' or 'X'"
                f"{f' suffixed _{key_split}' if key_split else ''})"
            )
        y = _get(z, file, ("labels", "y", "Y"), key_split)
    x, note = pixels_to_uint8(x, file)
    data = images_to_nchw(x, file)
    names = None
    if y is not None:
        y, names = encode_labels(y, file)
    if y is not None and y.reshape(-1).shape[0] != data.shape[0]:
        raise DatasetError(f"{file}: {data.shape[0]} images but {y.reshape(-1).shape[0]} labels")
    ds = ArrayDataset(data, y, kind="image", name=name, split=split, source=str(file), class_names=names)
    if note:
        ds.conversions.append(note)
    return ds


# ------------------------------------------------------------------------------------------------ image folder


_MODE_NAMES = {"L": "grey", "1": "1-bit", "P": "palette", "RGB": "RGB", "RGBA": "RGBA", "LA": "grey+alpha"}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _image_array(im, mode: str, size: int | None) -> tuple[np.ndarray, list[str]]:
    """One PIL image as uint8 ``(H, W)`` / ``(H, W, 3)`` in ``mode`` (``L`` or ``RGB``) at ``size``, and what was
    converted to get there (said in the dataset's ``conversions``, never silently)."""
    from PIL import Image

    done: list[str] = []
    if im.mode in _WIDE_MODES:
        # PIL's convert("L") clips 16-bit values at 255 (a white image); scale 0..65535 to 0..255 instead.
        wide = np.asarray(im, dtype=np.float64)
        top = 65535.0 if wide.max(initial=0) > 255 or im.mode != "I" else 255.0
        im = Image.fromarray(np.round(np.clip(wide, 0, top) * (255.0 / top)).astype(np.uint8), mode="L")
        done.append("16-bit pixels scaled to 8 bits (/257)" if top > 255 else "32-bit integer pixels read as 8 bits")
    if im.mode != mode:
        source = _MODE_NAMES.get(im.mode, im.mode)
        alpha = " (alpha dropped)" if "A" in im.mode else ""
        done.append(f"{source} -> {_MODE_NAMES[mode]}{alpha}")
        im = im.convert(mode)
    if size is not None and im.size != (size, size):
        done.append(f"resized {im.size[0]}x{im.size[1]} -> {size}x{size} (bilinear)")
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8), done


def load_image_folder(
    name: str, split: str, path: Path, *, size: int | None = None, channels: int | None = None, strict: bool = True
) -> ArrayDataset:
    """ImageFolder layout -> uint8 (N, C, H, W). ``size`` resizes each image to size x size on load.

    Images whose format differs from the set's (grey / RGB, an alpha channel, 16-bit pixels, another size) are
    converted, and every conversion is counted in the dataset's ``conversions`` (``"3 images: RGBA -> RGB
    (alpha dropped)"``), which the loading command prints as a ``note:`` line.
    """
    from PIL import Image

    folder = path if split == "all" else path / split
    if not folder.is_dir():
        raise DatasetError(f"{name}: no folder {folder}")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{folder}: expected one sub-folder per class (ImageFolder layout), found none")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    counts: dict[str, int] = {}
    mode: str | None = None
    for ci, cname in enumerate(classes):
        for p in sorted((folder / cname).iterdir()):
            if p.suffix.lower() not in IMAGE_EXTS:
                continue
            try:
                with Image.open(p) as im:
                    im.load()
                    if mode is None:
                        grey = im.mode in ("L", "1", "LA", *_WIDE_MODES)
                        mode = "L" if (channels == 1 or (channels is None and grey)) else "RGB"
                    a, done = _image_array(im, mode, size)
            except Exception as err:
                if strict:
                    raise DatasetError(f"cannot read {p}: {err} (corrupt or truncated image)") from err
                continue
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if arrays and a.shape != arrays[0].shape:
                raise DatasetError(
                    f"{p}: size {a.shape[2]}x{a.shape[1]} differs from {arrays[0].shape[2]}x{arrays[0].shape[1]} "
                    "of earlier images; pass size=... to resize on load"
                )
            for what in done:
                counts[what] = counts.get(what, 0) + 1
            arrays.append(a)
            labels.append(ci)
    if not arrays:
        raise DatasetError(f"{folder}: no images found (extensions {', '.join(sorted(IMAGE_EXTS))})")
    ds = ArrayDataset(
        np.stack(arrays),
        np.array(labels),
        kind="image",
        name=name,
        split=split,
        source=str(folder),
        class_names=classes,
    )
    total = len(arrays)
    ds.conversions += [f"{n} of {total} images: {what}" for what, n in counts.items()]
    return ds


# ------------------------------------------------------------------------------------------------------ tables


def _read_csv(path: Path, label: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    rows: list[list[str]] = []
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            start = 1
            for row in reader:
                if any("\n" in v or "\r" in v for v in row):
                    # An opening quote never closed: csv reads every following line into one field.
                    raise DatasetError(
                        f'{path}: line {start} opens a quote (") that no later field closes, so lines '
                        f"{start}-{reader.line_num} were read as one value; remove the stray quote or close it"
                    )
                rows.append(row)
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    if len(rows) < 2:
        raise DatasetError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    li: int | None = None
    if label is not None:
        if label in header:
            li = header.index(label)
        elif label.lstrip("-").isdigit():
            li = int(label) % len(header)
        else:
            raise DatasetError(f"{path}: no label column {label!r}; columns are {header}")
    ragged = next((i for i, r in enumerate(body, 2) if len(r) != len(header)), None)
    if ragged is not None:
        raise DatasetError(f"{path}: every row must have {len(header)} fields (line {ragged} has a different number)")
    raw_labels = [r[li].strip() for r in body] if li is not None else None
    try:
        table = np.array([[float(v) for j, v in enumerate(r) if j != li] for r in body], dtype=np.float64)
    except ValueError as err:
        raise DatasetError(f"{path}: non-numeric data: {err}") from err
    if li is None or raw_labels is None:
        return table, None
    try:
        y: np.ndarray = np.array([float(v) for v in raw_labels], dtype=np.float64)
    except ValueError:
        y = np.array(raw_labels, dtype=str)  # class names, mapped to codes by encode_labels
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DatasetError(f"{path}: label column {header[li]!r} must hold integers or class names")
    return table, y


def load_table(name: str, split: str, path: Path, *, label: str | None = None) -> ArrayDataset:
    file = path
    key_split: str | None = None if split == "all" else split
    if path.is_dir():
        file = _split_file(path, split, ("{split}.csv", "{split}.npz")) or path / f"{split}.csv"
        key_split = None
    if file.suffix == ".npz":
        z = open_npz(file)
        with z:
            x = _get(z, file, ("x", "X", "data", "features"), key_split)
            y = _get(z, file, ("y", "Y", "labels"), key_split)
            if x is None:
                raise DatasetError(f"{file}: no table array (keys {z.files}; expected 'x', 'X', 'data' or 'features')")
        columns = None
    elif file.is_file():
        x, y = _read_csv(file, label)
        columns = _csv_feature_names(file, label)
    else:
        raise DatasetError(f"{name}: no {file}")
    if x.ndim != 2:
        raise DatasetError(f"{file}: a table must be 2-D (N, D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{file}: table values must be numeric, got {x.dtype}")
    check_finite(x, file, columns)
    names = None
    if y is not None:
        y, names = encode_labels(y, file)
    if y is not None and y.reshape(-1).shape[0] != x.shape[0]:
        raise DatasetError(f"{file}: {x.shape[0]} rows but {y.reshape(-1).shape[0]} labels")
    return ArrayDataset(
        x.astype(np.float32), y, kind="vector", name=name, split=split, source=str(file), class_names=names
    )


def _csv_feature_names(path: Path, label: str | None) -> list[str]:
    with open(path, newline="") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    if label is None:
        return header
    li = header.index(label) if label in header else int(label) % len(header)
    return [h for j, h in enumerate(header) if j != li]


def load_embeddings_file(name: str, split: str, path: Path) -> ArrayDataset:
    """An npz with ``embeddings (N, D)`` and ``labels (N,)`` -> vector dataset.

    Files written by ``flowood embed`` hold one pair per split, ``<split>_embeddings`` and
    ``<split>_labels``; those are used when present, else the top-level pair.
    """
    file = path
    if path.is_dir():
        file = _split_file(path, split, ("{split}.npz", "embeddings_{split}.npz", "{split}_embeddings.npz")) or (
            path / f"{split}.npz"
        )
    if not file.is_file():
        raise DatasetError(f"{name}: no {file}")
    z = open_npz(file)
    with z:
        x = _get(z, file, (f"{split}_embeddings", "embeddings"), None)
        y = _get(z, file, (f"{split}_labels", "labels"), None)
        if x is None or y is None:
            raise DatasetError(f"{file}: expected arrays 'embeddings' and 'labels', found {z.files}")
    if x.ndim != 2 or y.reshape(-1).shape[0] != x.shape[0]:
        raise DatasetError(f"{file}: expected embeddings (N, D) and labels (N,), got {x.shape} and {y.shape}")
    check_finite(x, file)
    codes, names = encode_labels(y, file)
    return ArrayDataset(
        x.astype(np.float32), codes, kind="vector", name=name, split=split, source=str(file), class_names=names
    )
