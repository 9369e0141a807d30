"""Dataset registry: names, metadata, availability probes and :func:`load_dataset`."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from flowood.data import glyphs, images, sklearn_tables, synthetic, tabular, user
from flowood.data.base import (
    ArrayDataset,
    DatasetInfo,
    Kind,
    balanced_subset,
    carve_indices,
    convert_channels,
    filter_classes,
    resize_images,
)
from flowood.data.bundle import BUNDLE_SPLITS, bundle_path, load_bundle
from flowood.data.locate import DEBIAN_FASHION_MNIST, search_roots
from flowood.errors import DatasetError

#: Fractions used to carve ``fit`` / ``val`` from ``train`` when a dataset has no validation split.
VAL_FRACTION = 0.1
#: Fractions used to carve ``train`` / ``val`` / ``test`` from a single user source (native split ``all``).
USER_FRACTIONS = (0.8, 0.1, 0.1)
USER_SCHEMES = ("folder", "npz", "table", "embeddings")


@dataclass
class _Spec:
    name: str
    kind: Kind
    shape: tuple[int, ...] | None
    native: tuple[str, ...]
    num_classes: int | None
    description: str
    license: str
    how: str
    loader: Callable[..., ArrayDataset]
    probe: Callable[[str | Path | None], tuple[list[str], bool]]
    options: frozenset[str] = frozenset()
    handles_size: bool = False
    carve_val: bool = True

    @property
    def splits(self) -> tuple[str, ...]:
        extra = ("val", "fit") if self.carve_val and "val" not in self.native else ()
        return self.native + extra


# ------------------------------------------------------------------------------------------------------ probes


def _probe_paths(rel: Sequence[str], extra: Sequence[Path] = ()) -> Callable[[str | Path | None], tuple[list, bool]]:
    def probe(root: str | Path | None) -> tuple[list[str], bool]:
        cands = [base / r for base in search_roots(root) for r in rel] + list(extra)
        return [str(c) for c in cands], any(c.exists() for c in cands)

    return probe


def _probe_bundle(name: str) -> Callable[[str | Path | None], tuple[list[str], bool]]:
    return lambda root: ([str(bundle_path(name))], bundle_path(name).is_file())


def _probe_glyphs(root: str | Path | None) -> tuple[list[str], bool]:
    fonts = glyphs.candidate_fonts(True)
    dirs = sorted({str(p.parent) for p in fonts})
    return dirs, bool(fonts)


def _probe_embeddings(root: str | Path | None) -> tuple[list[str], bool]:
    if root is None:
        return ["path= / root= (an .npz with 'embeddings' and 'labels')"], False
    return [str(root)], Path(root).expanduser().exists()


def _tab_rel(name: str, files: Sequence[str]) -> list[str]:
    return [f"{d}/{f}" for d in (name, f"maf/{name}", f"data/{name}") for f in files]


def _imagenet_rel(res: int) -> list[str]:
    return [
        f"{d}/{f}"
        for d in (
            f"imagenet{res}",
            f"imagenet{res}/Imagenet{res}_val_npz",
            f"imagenet{res}/Imagenet{res}_train_npz",
            f"Imagenet{res}_val_npz",
        )
        for f in ("val_data.npz", "train_data_batch_1.npz")
    ]


# ----------------------------------------------------------------------------------------------------- registry


def _embeddings_via_user(*args: object, **kwargs: object) -> ArrayDataset:
    raise DatasetError("embeddings: pass path=/path/to/file.npz")  # load_dataset routes 'embeddings' to user.py


_MIT_FASHION = "MIT (Zalando SE)"
_MNIST_LIC = "CC BY-SA 3.0 (Y. LeCun, C. Cortes)"

SPECS: dict[str, _Spec] = {}


def _add(spec: _Spec) -> None:
    SPECS[spec.name] = spec


_add(
    _Spec(
        "mnist",
        "image",
        (1, 28, 28),
        ("train", "test"),
        10,
        "MNIST handwritten digits (60k/10k), torchvision",
        _MNIST_LIC,
        images._IDX_HOW["MNIST"],
        partial(images.load_idx_family, "MNIST"),
        _probe_paths(["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-images-idx3-ubyte.gz"]),
    )
)
_add(
    _Spec(
        "fashionmnist",
        "image",
        (1, 28, 28),
        ("train", "test"),
        10,
        "Fashion-MNIST clothing images (60k/10k), torchvision; Debian dataset-fashion-mnist found automatically",
        _MIT_FASHION,
        images._IDX_HOW["FashionMNIST"],
        partial(images.load_idx_family, "FashionMNIST"),
        _probe_paths(
            ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/train-images-idx3-ubyte.gz"],
            [DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"],
        ),
    )
)
_add(
    _Spec(
        "cifar10",
        "image",
        (3, 32, 32),
        ("train", "test"),
        10,
        "CIFAR-10 (50k/10k), python pickle batches",
        "no formal licence (Krizhevsky 2009; cite the tech report)",
        images.CIFAR_HOW,
        images.load_cifar10,
        _probe_paths(["cifar-10-batches-py/data_batch_1"]),
    )
)
_add(
    _Spec(
        "svhn",
        "image",
        (3, 32, 32),
        ("train", "test", "extra"),
        10,
        "SVHN cropped digits (73k/26k/531k), .mat",
        "non-commercial use (Netzer et al. 2011)",
        images.SVHN_HOW.format(split="train"),
        images.load_svhn,
        _probe_paths(["svhn/train_32x32.mat", "svhn/test_32x32.mat", "train_32x32.mat", "test_32x32.mat"]),
    )
)
_add(
    _Spec(
        "celeba",
        "image",
        (3, 32, 32),
        ("train", "val", "test", "all"),
        None,
        "CelebA aligned faces, center crop 148 + resize to 32x32 (the paper's setting; size= changes it)",
        "non-commercial research (CelebA agreement)",
        images.CELEBA_HOW,
        images.load_celeba,
        _probe_paths(["celeba/img_align_celeba"]),
        options=frozenset({"crop"}),
        handles_size=True,
    )
)
_add(
    _Spec(
        "notmnist",
        "image",
        (1, 28, 28),
        ("test", "train"),
        10,
        "notMNIST letters A-J (published folder layout; test = notMNIST_small, train = notMNIST_large)",
        "free for research (Y. Bulatov)",
        images.NOTMNIST_HOW,
        images.load_notmnist,
        _probe_paths(["notMNIST_small", "notmnist/notMNIST_small"]),
        options=frozenset({"strict"}),
        carve_val=False,
    )
)
for _res in (32, 64):
    _add(
        _Spec(
            f"imagenet{_res}",
            "image",
            (3, _res, _res),
            ("train", "test"),
            1000,
            f"Downsampled ImageNet {_res}x{_res} npz batches (train 1.28M; test = official val_data 50k)",
            "ImageNet terms of access (non-commercial research)",
            images.IMAGENET_HOW.format(r=_res),
            partial(images.load_imagenet, res=_res),
            _probe_paths(_imagenet_rel(_res)),
            options=frozenset({"batches"}),
        )
    )
_add(
    _Spec(
        "glyphs",
        "image",
        (1, 28, 28),
        ("train", "test"),
        10,
        "STAND-IN for notMNIST: letters A-J rendered from offline fonts (matplotlib DejaVu/STIX/cm, system "
        "DejaVu), 28x28, deterministic; train 10,000 / test 2,000",
        "fonts: DejaVu (Bitstream Vera licence), STIX (OFL), Computer Modern (Knuth licence)",
        "always available (fonts ship with matplotlib)",
        glyphs.load_glyphs,
        _probe_glyphs,
        options=frozenset({"count", "system_fonts"}),
    )
)
_add(
    _Spec(
        "fashionmnist-mini",
        "image",
        (1, 28, 28),
        BUNDLE_SPLITS["fashionmnist-mini"],
        10,
        "Embedded real FashionMNIST subset, class-balanced: 10,000 train / 2,000 test (offline, < 1 s)",
        _MIT_FASHION,
        "ships with flowood",
        load_bundle,
        _probe_bundle("fashionmnist-mini"),
    )
)
_add(
    _Spec(
        "mnist-mini",
        "image",
        (1, 28, 28),
        BUNDLE_SPLITS["mnist-mini"],
        10,
        "Embedded real MNIST digits: test = 2,000 (200 per digit); half-train / half-test = disjoint 1,000 halves",
        _MNIST_LIC,
        "ships with flowood",
        load_bundle,
        _probe_bundle("mnist-mini"),
        carve_val=False,
    )
)
_add(
    _Spec(
        "miniboone",
        "vector",
        (43,),
        tabular.TABULAR_SPLITS,
        2,
        "UCI MiniBooNE, MAF preprocessing (data.npy); in_class=0|1 for the class-conditional protocol "
        "(needs MiniBooNE_PID.txt)",
        "UCI ML repository (cite Roe et al. 2005)",
        tabular.MAF_HOW.format(files="miniboone/data.npy"),
        tabular.load_miniboone,
        _probe_paths(_tab_rel("miniboone", ["data.npy", "MiniBooNE_PID.txt"])),
        options=frozenset({"in_class"}),
    )
)
_add(
    _Spec(
        "hepmass",
        "vector",
        (21,),
        tabular.TABULAR_SPLITS,
        2,
        "UCI HEPMASS, MAF preprocessing (1000_train/test.csv, signal only); in_class=0|1 for the "
        "class-conditional protocol",
        "UCI ML repository (Baldi et al. 2016)",
        tabular.MAF_HOW.format(files="hepmass/1000_train.csv, hepmass/1000_test.csv"),
        tabular.load_hepmass,
        _probe_paths(_tab_rel("hepmass", ["1000_train.csv"])),
        options=frozenset({"in_class"}),
    )
)
_add(
    _Spec(
        "gas",
        "vector",
        (8,),
        tabular.TABULAR_SPLITS,
        None,
        "UCI gas sensors (ethylene_CO), MAF preprocessing",
        "UCI ML repository (Fonollosa et al. 2015)",
        tabular.MAF_HOW.format(files="gas/ethylene_CO.pickle"),
        tabular.load_gas,
        _probe_paths(_tab_rel("gas", ["ethylene_CO.pickle", "ethylene_CO.txt"])),
    )
)
_add(
    _Spec(
        "power",
        "vector",
        (6,),
        tabular.TABULAR_SPLITS,
        None,
        "UCI household electric power, MAF preprocessing (data.npy)",
        "UCI ML repository (Hebrail & Berard)",
        tabular.MAF_HOW.format(files="power/data.npy"),
        tabular.load_power,
        _probe_paths(_tab_rel("power", ["data.npy"])),
    )
)
_add(
    _Spec(
        "breast-cancer",
        "vector",
        (30,),
        sklearn_tables.SKLEARN_SPLITS,
        2,
        "UCI Breast Cancer Wisconsin (Diagnostic) from scikit-learn, 30 raw features; labels 0 = malignant, "
        "1 = benign; fixed per-class splits 60/10/30 (offline)",
        "CC BY 4.0 (UCI; Wolberg, Street, Mangasarian)",
        "ships with scikit-learn",
        sklearn_tables.load_breast_cancer_table,
        sklearn_tables.probe_sklearn,
        carve_val=False,
    )
)
_add(
    _Spec(
        "embeddings",
        "vector",
        None,
        ("all",),
        None,
        "Feature vectors from an .npz with 'embeddings' (N, D) and 'labels' (N,); path= or root= names the file "
        "(or a folder of <split>.npz)",
        "the user's",
        "pass path=/path/to/file.npz",
        _embeddings_via_user,
        _probe_embeddings,
        options=frozenset({"path"}),
    )
)

_USER_DOC: dict[str, tuple[Kind, str]] = {
    "folder": ("image", "user images in ImageFolder layout: folder:/path/<class>/<image> (or /path/<split>/<class>/)"),
    "npz": ("image", "user images in an .npz: npz:/path.npz with 'images' or 'x' (uint8 NHWC/NCHW), 'labels'/'y'"),
    "table": ("vector", "user table: table:/path.csv?label=col (header row) or table:/path.npz with 'x' and 'y'"),
}


# --------------------------------------------------------------------------------------------------- public API


def _parse_user(name: str, options: dict[str, Any], root: str | Path | None) -> tuple[str, Path] | None:
    """``scheme:/path`` or a plain existing path -> (scheme, path); ``embeddings`` uses path= or root."""
    if name == "embeddings":
        p = options.pop("path", None) or root
        if p is None:
            raise DatasetError(
                "embeddings: pass path=/path/to/file.npz (an .npz with 'embeddings' and 'labels') "
                "or root= a folder of <split>.npz files"
            )
        return "embeddings", Path(p).expanduser()
    scheme, sep, rest = name.partition(":")
    if sep and scheme.lower() in USER_SCHEMES and rest:
        scheme = scheme.lower()
        if "?" in rest:
            rest, _, query = rest.partition("?")
            for item in query.split("&"):
                k, _, v = item.partition("=")
                if k:
                    options.setdefault(k, v)
        return scheme, Path(rest).expanduser()
    p = Path(name).expanduser()
    if (sep or "/" in name or name.startswith(".")) and p.exists():
        if p.is_dir():
            return "folder", p
        if p.suffix.lower() == ".csv":
            return "table", p
        if p.suffix.lower() == ".npz":
            with user._open_npz(p) as z:
                return (
                    "npz"
                    if any(k in z.files or f"{k}_train" in z.files for k in ("images", "x"))
                    and any(np.asarray(z[k]).ndim >= 3 for k in z.files if k.startswith(("images", "x")))
                    else ("embeddings" if "embeddings" in z.files else "table")
                ), p
    return None


def _load_user(
    scheme: str, path: Path, split: str, options: dict[str, Any], seed: int, size: int | None, channels: int | None
) -> ArrayDataset:
    if not path.exists():
        raise DatasetError(f"{scheme}: {path} does not exist")
    name = f"{scheme}:{path}"
    allowed = {"folder": {"strict"}, "table": {"label"}, "npz": set(), "embeddings": set()}[scheme]
    unknown = set(options) - allowed
    if unknown:
        raise DatasetError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(allowed) or 'none'}")
    native = user.native_splits(path, scheme)
    wanted = split
    if split not in native:
        if native == ("all",) and split in ("train", "val", "test"):
            wanted = "all"
        else:
            raise DatasetError(
                f"{name}: unknown split {split!r}; available: {', '.join(native)}"
                + (", train, val, test (carved 80/10/10)" if native == ("all",) else "")
            )

    def read(s: str) -> ArrayDataset:
        if scheme == "folder":
            return user.load_image_folder(
                name,
                s,
                path,
                size=size,
                channels=channels,
                strict=str(options.get("strict", True)).lower() not in ("0", "false"),
            )
        if scheme == "npz":
            return user.load_images_npz(name, s, path)
        if scheme == "table":
            return user.load_table(name, s, path, label=options.get("label"))
        return user.load_embeddings_file(name, s, path)

    ds = read(wanted)
    if wanted != split:
        pieces = carve_indices(len(ds), USER_FRACTIONS, seed, salt=zlib.crc32(b"user"))
        idx = pieces[("train", "val", "test").index(split)]
        ds = _subset(ds, idx)
    return ds


def _subset(ds: ArrayDataset, idx: np.ndarray) -> ArrayDataset:
    t = np.asarray(idx, dtype=np.int64)
    out = ArrayDataset(
        ds.data[t],
        ds.labels[t],
        kind=ds.kind,
        name=ds.name,
        split=ds.split,
        source=ds.source,
        class_names=ds.class_names,
    )
    out.conversions = list(ds.conversions)
    return out


def available_names() -> list[str]:
    return list(SPECS)


for _name, _desc in (
    ("uniform-noise", "synthetic far-OOD set: i.i.d. uniform 8-bit pixels (5k/2k, seeded)"),
    ("gaussian-noise", "synthetic far-OOD set: i.i.d. N(128, 40^2) pixels, clipped (5k/2k, seeded)"),
    ("constant-images", "synthetic far-OOD set: one random grey level per image (5k/2k, seeded)"),
):
    _add(
        _Spec(
            _name,
            "image",
            (1, 28, 28),
            ("train", "test"),
            None,
            _desc + "; hflip:/vflip:/invert:NAME derive sets from any image dataset",
            "generated (no licence needed)",
            synthetic.HOW,
            synthetic.load_synthetic,
            lambda root: (["generated"], True),
            handles_size=True,
        )
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    classes: Sequence[int] | None = None,
    limit: int | None = None,
    seed: int = 0,
    channels: int | None = None,
    size: int | None = None,
    **options: Any,
) -> ArrayDataset:
    """Load one split of a dataset into memory.

    Args:
        name: a registered name (see :func:`list_datasets`), or user data ``folder:/path``, ``npz:/path.npz``,
            ``table:/path.csv?label=col``, ``embeddings:/path.npz`` (or ``"embeddings"`` with ``path=``).
        split: ``"train"``, ``"test"``, ...; ``"val"`` / ``"fit"`` are a seeded 10 % / 90 % partition of
            ``"train"`` for datasets without a validation split (``"train"`` itself stays the full official split).
        root: a directory searched first (then the flowood cache, then system installs).
        download: allow torchvision to download when the files are nowhere to be found.
        classes: keep only samples with these labels.
        limit: keep a seeded subset of at most this many samples, class-balanced as far as labels allow.
        seed: seeds ``limit`` and carved splits; the same seed gives the same samples.
        channels: 1 or 3, explicit grey <-> RGB conversion (RGB -> grey by ITU-R 601 luma).
        size: explicit square resize of images to ``size x size`` (for CelebA: the processing resolution).
        **options: dataset-specific (``in_class`` for miniboone/hepmass, ``path`` for embeddings, ``label`` for
            CSV tables, ``count``/``system_fonts`` for glyphs, ``batches`` for ImageNet, ``crop`` for CelebA,
            ``strict`` for notMNIST and folders).

    Returns:
        an :class:`ArrayDataset`: ``data`` uint8 ``(N, C, H, W)`` for images or float32 ``(N, D)`` for vectors,
        ``labels`` int64 ``(N,)`` (``-1`` where unlabeled).

    Raises:
        DatasetError: unknown name or split, files missing (names every place looked and how to get them),
            corrupt / truncated / wrongly shaped files (names the file).
    """
    if not isinstance(name, str) or not name:
        raise DatasetError(f"dataset name must be a non-empty string, got {name!r}")
    if channels is not None and channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    options = dict(options)
    derived = synthetic.split_derived(name.strip())
    if derived is not None:  # hflip:/vflip:/invert:NAME, the base set loaded with the same arguments
        op, base = derived
        base_ds = load_dataset(
            base,
            split,
            root=root,
            download=download,
            classes=classes,
            limit=limit,
            seed=seed,
            channels=channels,
            size=size,
            **options,
        )
        return synthetic.derive(op, base_ds, name.strip())
    key = name.strip().lower()
    parsed = _parse_user(
        name.strip() if ":" in name or "/" in name else key, options, root if key == "embeddings" else None
    )
    if parsed is not None:
        scheme, path = parsed
        ds = _load_user(scheme, path, split, options, seed, size, channels)
        size_done = scheme == "folder"
    else:
        spec = SPECS.get(key)
        if spec is None:
            raise DatasetError(
                f"unknown dataset {name!r}. Available: {', '.join(SPECS)}; user data: folder:/path, npz:/path.npz, "
                "table:/path.csv?label=col, embeddings with path=/file.npz"
            )
        unknown = set(options) - spec.options
        if unknown:
            raise DatasetError(
                f"{key}: unknown option(s) {sorted(unknown)}; accepted: {sorted(spec.options) or 'none'}"
            )
        if split not in spec.splits:
            raise DatasetError(f"{key}: unknown split {split!r}; available: {', '.join(spec.splits)}")
        if spec.handles_size:
            options["size"] = size
        if split in spec.native:
            ds = spec.loader(key, split, root, download, **options)
        else:  # val / fit carved from train
            full = spec.loader(key, "train", root, download, **options)
            fit, val = carve_indices(len(full), (1 - VAL_FRACTION, VAL_FRACTION), seed, salt=zlib.crc32(key.encode()))
            ds = _subset(full, val if split == "val" else fit)
        size_done = spec.handles_size
    ds.split = split

    data, labels = filter_classes(ds.data, ds.labels, classes, ds.name)
    if limit is not None and limit < data.shape[0]:
        idx = torch_index(balanced_subset(labels.numpy(), int(limit), seed))
        data, labels = data[idx], labels[idx]
    if ds.kind == "image":
        before = tuple(data.shape[1:])
        data = convert_channels(data, channels, ds.name)
        if data.shape[1] != before[0]:
            names = {1: "grey", 3: "RGB"}
            ds.conversions.append(f"{names[before[0]]} -> {names[int(data.shape[1])]}")
        if not size_done:
            data = resize_images(data, size, ds.name)
            if tuple(data.shape[2:]) != before[1:]:
                ds.conversions.append(f"resized {before[1]}x{before[2]} -> {data.shape[2]}x{data.shape[3]} (bilinear)")
    elif channels is not None or size is not None:
        raise DatasetError(
            f"{ds.name} is a {ds.kind} dataset: it cannot be converted to images (channels=/size=); a flow "
            "trained on images scores image datasets only (see `flowood datasets`)"
        )
    ds.data, ds.labels = data, labels
    if ds.conversions:
        # Never silent: a set scored at another shape than its own is said so (and kept in ds.conversions).
        print(f"note: {ds.name} ({split}): {'; '.join(ds.conversions)}", file=sys.stderr)
    return ds


def torch_index(idx: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(idx, dtype=np.int64))


def _info(spec: _Spec, root: str | Path | None) -> DatasetInfo:
    try:
        locations, available = spec.probe(root)
    except OSError:
        locations, available = [], False
    return DatasetInfo(
        name=spec.name,
        kind=spec.kind,
        shape=spec.shape,
        splits=spec.splits,
        num_classes=spec.num_classes,
        description=spec.description,
        locations=locations,
        available_now=available,
        license=spec.license,
        how_to_get=spec.how,
    )


def dataset_info(name: str, root: str | Path | None = None) -> DatasetInfo:
    """Registry entry of ``name`` with where it is looked for and whether it is available now."""
    key = name.strip().lower()
    if key in SPECS:
        return _info(SPECS[key], root)
    derived = synthetic.split_derived(name.strip())
    if derived is not None:
        base = dataset_info(derived[1], root)
        base.name, base.description = name, f"{derived[0]} of {base.name}: {base.description}"
        return base
    scheme = key.partition(":")[0]
    if scheme in _USER_DOC:
        kind, desc = _USER_DOC[scheme]
        path = Path(name.partition(":")[2].partition("?")[0]).expanduser()
        return DatasetInfo(
            name=name,
            kind=kind,
            shape=None,
            splits=("all", "train", "val", "test"),
            num_classes=None,
            description=desc,
            locations=[str(path)],
            available_now=path.exists(),
            license="the user's",
            how_to_get="your own files",
        )
    raise DatasetError(f"unknown dataset {name!r}. Available: {', '.join(SPECS)}")


def list_datasets(root: str | Path | None = None) -> list[DatasetInfo]:
    """Every registered dataset (plus the user-data schemes) with locations and current availability."""
    out = [_info(spec, root) for spec in SPECS.values()]
    for scheme, (kind, desc) in _USER_DOC.items():
        out.append(
            DatasetInfo(
                name=f"{scheme}:<path>",
                kind=kind,
                shape=None,
                splits=("all", "train", "val", "test"),
                num_classes=None,
                description=desc,
                locations=["the path given"],
                available_now=False,
                license="the user's",
                how_to_get="your own files",
            )
        )
    return out


def pick_ood_split(name: str) -> str:
    """The split to score when ``name`` is an OOD set: ``all`` for a single user file or folder without
    split structure (scored whole; use a limit to score fewer), else :func:`pick_split` ``(name, "test")``."""
    key = name.strip()
    try:
        parsed = _parse_user(key if ":" in key or "/" in key else key.lower(), {}, None)
    except DatasetError:
        parsed = None
    if parsed is not None:
        scheme, path = parsed
        try:
            native = user.native_splits(path, scheme)
        except DatasetError:
            return "test"  # load_dataset reports the problem itself
        return "all" if native == ("all",) else ("test" if "test" in native else native[0])
    return pick_split(name, "test")


def pick_split(name: str, preferred: str) -> str:
    """``preferred`` if dataset ``name`` has it, else its first split (e.g. ``mnist-mini`` has only ``test``)."""
    try:
        splits = list(dataset_info(name).splits)
    except Exception:  # user paths and unknown names are reported by load_dataset itself
        return preferred
    if preferred in splits or not splits:
        return preferred
    for alt in ("half-train", "train") if preferred == "train" else ("half-test", "test"):
        if alt in splits:
            return alt
    return splits[0]
