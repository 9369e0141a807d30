"""Dataset registry: names, metadata, availability probes and :func:`load_dataset`.

One keyword ``_Spec`` per registered dataset; user data (``folder:``, ``npz:``, ``table:``, ``embeddings``) is
named, read and split by :mod:`flowood.data.user`, to which :func:`load_dataset` routes those names first.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    subset,
)
from flowood.data.bundle import BUNDLE_SPLITS, bundle_path, load_bundle
from flowood.data.locate import DEBIAN_FASHION_MNIST, search_roots
from flowood.errors import DatasetError

#: Fractions used to carve ``fit`` / ``val`` from ``train`` when a dataset has no validation split.
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class _Spec:
    """A registered dataset: what ``flowood datasets`` shows, how to read a split, how to tell if it is here."""

    name: str
    kind: Kind
    shape: tuple[int, ...] | None
    native: tuple[str, ...]
    num_classes: int | None
    description: str
    license: str
    how: str
    loader: Callable[..., ArrayDataset] | None  # (name, split, root, download, **options); None: user.py reads it
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


_MIT_FASHION = "MIT (Zalando SE)"
_MNIST_LIC = "CC BY-SA 3.0 (Y. LeCun, C. Cortes)"

SPECS: dict[str, _Spec] = {}


def _add(spec: _Spec) -> None:
    SPECS[spec.name] = spec


_add(
    _Spec(
        name="mnist",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="MNIST handwritten digits (60k/10k), torchvision",
        license=_MNIST_LIC,
        how=images._IDX_HOW["MNIST"],
        loader=partial(images.load_idx_family, "MNIST"),
        probe=_probe_paths(["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-images-idx3-ubyte.gz"]),
    )
)
_add(
    _Spec(
        name="fashionmnist",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="Fashion-MNIST clothing images (60k/10k), torchvision; Debian dataset-fashion-mnist found "
        "automatically",
        license=_MIT_FASHION,
        how=images._IDX_HOW["FashionMNIST"],
        loader=partial(images.load_idx_family, "FashionMNIST"),
        probe=_probe_paths(
            ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/train-images-idx3-ubyte.gz"],
            [DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"],
        ),
    )
)
_add(
    _Spec(
        name="cifar10",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "test"),
        num_classes=10,
        description="CIFAR-10 (50k/10k), python pickle batches",
        license="no formal licence (Krizhevsky 2009; cite the tech report)",
        how=images.CIFAR_HOW,
        loader=images.load_cifar10,
        probe=_probe_paths(["cifar-10-batches-py/data_batch_1"]),
    )
)
_add(
    _Spec(
        name="svhn",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "test", "extra"),
        num_classes=10,
        description="SVHN cropped digits (73k/26k/531k), .mat",
        license="non-commercial use (Netzer et al. 2011)",
        how=images.SVHN_HOW.format(split="train"),
        loader=images.load_svhn,
        probe=_probe_paths(["svhn/train_32x32.mat", "svhn/test_32x32.mat", "train_32x32.mat", "test_32x32.mat"]),
    )
)
_add(
    _Spec(
        name="celeba",
        kind="image",
        shape=(3, 32, 32),
        native=("train", "val", "test", "all"),
        num_classes=None,
        description="CelebA aligned faces, center crop 148 + resize to 32x32 (the paper's setting; size= changes it)",
        license="non-commercial research (CelebA agreement)",
        how=images.CELEBA_HOW,
        loader=images.load_celeba,
        probe=_probe_paths(["celeba/img_align_celeba"]),
        options=frozenset({"crop"}),
        handles_size=True,
    )
)
_add(
    _Spec(
        name="notmnist",
        kind="image",
        shape=(1, 28, 28),
        native=("test", "train"),
        num_classes=10,
        description="notMNIST letters A-J (published folder layout; test = notMNIST_small, train = notMNIST_large)",
        license="free for research (Y. Bulatov)",
        how=images.NOTMNIST_HOW,
        loader=images.load_notmnist,
        probe=_probe_paths(["notMNIST_small", "notmnist/notMNIST_small"]),
        options=frozenset({"strict"}),
        carve_val=False,
    )
)
for _res in (32, 64):
    _add(
        _Spec(
            name=f"imagenet{_res}",
            kind="image",
            shape=(3, _res, _res),
            native=("train", "test"),
            num_classes=1000,
            description=f"Downsampled ImageNet {_res}x{_res} npz batches (train 1.28M; test = official val_data 50k)",
            license="ImageNet terms of access (non-commercial research)",
            how=images.IMAGENET_HOW.format(r=_res),
            loader=partial(images.load_imagenet, res=_res),
            probe=_probe_paths(_imagenet_rel(_res)),
            options=frozenset({"batches"}),
        )
    )
_add(
    _Spec(
        name="glyphs",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="STAND-IN for notMNIST: letters A-J rendered from offline fonts (matplotlib DejaVu/STIX/cm, "
        "system DejaVu), 28x28, deterministic; train 10,000 / test 2,000",
        license="fonts: DejaVu (Bitstream Vera licence), STIX (OFL), Computer Modern (Knuth licence)",
        how="always available (fonts ship with matplotlib)",
        loader=glyphs.load_glyphs,
        probe=_probe_glyphs,
        options=frozenset({"count", "system_fonts"}),
    )
)
_add(
    _Spec(
        name="fashionmnist-mini",
        kind="image",
        shape=(1, 28, 28),
        native=BUNDLE_SPLITS["fashionmnist-mini"],
        num_classes=10,
        description="Embedded real FashionMNIST subset, class-balanced: 10,000 train / 2,000 test (offline, < 1 s)",
        license=_MIT_FASHION,
        how="ships with flowood",
        loader=load_bundle,
        probe=_probe_bundle("fashionmnist-mini"),
    )
)
_add(
    _Spec(
        name="mnist-mini",
        kind="image",
        shape=(1, 28, 28),
        native=BUNDLE_SPLITS["mnist-mini"],
        num_classes=10,
        description="Embedded real MNIST digits: test = 2,000 (200 per digit); half-train / half-test = disjoint "
        "1,000 halves",
        license=_MNIST_LIC,
        how="ships with flowood",
        loader=load_bundle,
        probe=_probe_bundle("mnist-mini"),
        carve_val=False,
    )
)
_add(
    _Spec(
        name="miniboone",
        kind="vector",
        shape=(43,),
        native=tabular.TABULAR_SPLITS,
        num_classes=2,
        description="UCI MiniBooNE, MAF preprocessing (data.npy); in_class=0|1 for the class-conditional protocol "
        "(needs MiniBooNE_PID.txt)",
        license="UCI ML repository (cite Roe et al. 2005)",
        how=tabular.MAF_HOW.format(files="miniboone/data.npy"),
        loader=tabular.load_miniboone,
        probe=_probe_paths(_tab_rel("miniboone", ["data.npy", "MiniBooNE_PID.txt"])),
        options=frozenset({"in_class"}),
    )
)
_add(
    _Spec(
        name="hepmass",
        kind="vector",
        shape=(21,),
        native=tabular.TABULAR_SPLITS,
        num_classes=2,
        description="UCI HEPMASS, MAF preprocessing (1000_train/test.csv, signal only); in_class=0|1 for the "
        "class-conditional protocol",
        license="UCI ML repository (Baldi et al. 2016)",
        how=tabular.MAF_HOW.format(files="hepmass/1000_train.csv, hepmass/1000_test.csv"),
        loader=tabular.load_hepmass,
        probe=_probe_paths(_tab_rel("hepmass", ["1000_train.csv"])),
        options=frozenset({"in_class"}),
    )
)
_add(
    _Spec(
        name="gas",
        kind="vector",
        shape=(8,),
        native=tabular.TABULAR_SPLITS,
        num_classes=None,
        description="UCI gas sensors (ethylene_CO), MAF preprocessing",
        license="UCI ML repository (Fonollosa et al. 2015)",
        how=tabular.MAF_HOW.format(files="gas/ethylene_CO.pickle"),
        loader=tabular.load_gas,
        probe=_probe_paths(_tab_rel("gas", ["ethylene_CO.pickle", "ethylene_CO.txt"])),
    )
)
_add(
    _Spec(
        name="power",
        kind="vector",
        shape=(6,),
        native=tabular.TABULAR_SPLITS,
        num_classes=None,
        description="UCI household electric power, MAF preprocessing (data.npy)",
        license="UCI ML repository (Hebrail & Berard)",
        how=tabular.MAF_HOW.format(files="power/data.npy"),
        loader=tabular.load_power,
        probe=_probe_paths(_tab_rel("power", ["data.npy"])),
    )
)
_add(
    _Spec(
        name="breast-cancer",
        kind="vector",
        shape=(30,),
        native=sklearn_tables.SKLEARN_SPLITS,
        num_classes=2,
        description="UCI Breast Cancer Wisconsin (Diagnostic) from scikit-learn, 30 raw features; labels 0 = "
        "malignant, 1 = benign; fixed per-class splits 60/10/30 (offline)",
        license="CC BY 4.0 (UCI; Wolberg, Street, Mangasarian)",
        how="ships with scikit-learn",
        loader=sklearn_tables.load_breast_cancer_table,
        probe=sklearn_tables.probe_sklearn,
        carve_val=False,
    )
)
_add(
    _Spec(
        name="embeddings",
        kind="vector",
        shape=None,
        native=("all",),
        num_classes=None,
        description="Feature vectors from an .npz with 'embeddings' (N, D) and 'labels' (N,); path= or root= names "
        "the file (or a folder of <split>.npz)",
        license="the user's",
        how="pass path=/path/to/file.npz",
        loader=None,  # read by data/user.py: load_dataset routes the name there before it looks here
        probe=_probe_embeddings,
        options=frozenset({"path"}),
    )
)
for _name, _desc in (
    ("uniform-noise", "synthetic far-OOD set: i.i.d. uniform 8-bit pixels (5k/2k, seeded)"),
    ("gaussian-noise", "synthetic far-OOD set: i.i.d. N(128, 40^2) pixels, clipped (5k/2k, seeded)"),
    ("constant-images", "synthetic far-OOD set: one random grey level per image (5k/2k, seeded)"),
):
    _add(
        _Spec(
            name=_name,
            kind="image",
            shape=(1, 28, 28),
            native=("train", "test"),
            num_classes=None,
            description=_desc + "; hflip:/vflip:/invert:NAME derive sets from any image dataset",
            license="generated (no licence needed)",
            how=synthetic.HOW,
            loader=synthetic.load_synthetic,
            probe=lambda root: (["generated"], True),
            handles_size=True,
        )
    )


# --------------------------------------------------------------------------------------------------- public API


def available_names() -> list[str]:
    return list(SPECS)


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
    parsed = user.parse_name(name, options, root)
    if parsed is not None:
        scheme, path = parsed
        ds = user.load(scheme, path, split, options, seed=seed, size=size, channels=channels)
        size_done = scheme == "folder"
    else:
        spec = SPECS.get(key)
        if spec is None or spec.loader is None:  # a loader-less spec's name was routed to user.py above
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
            ds = subset(full, val if split == "val" else fit)
        size_done = spec.handles_size
    ds.split = split

    data, labels = filter_classes(ds.data, ds.labels, classes, ds.name)
    if limit is not None and limit < data.shape[0]:
        idx = torch.as_tensor(balanced_subset(labels.numpy(), int(limit), seed).astype(np.int64))
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
    described = user.info(name)
    if described is not None:
        return described
    raise DatasetError(f"unknown dataset {name!r}. Available: {', '.join(SPECS)}")


def list_datasets(root: str | Path | None = None) -> list[DatasetInfo]:
    """Every registered dataset (plus the user-data schemes) with locations and current availability."""
    return [_info(spec, root) for spec in SPECS.values()] + user.scheme_infos()


def pick_ood_split(name: str) -> str:
    """The split to score when ``name`` is an OOD set: ``all`` for a single user file or folder without
    split structure (scored whole; use a limit to score fewer), else :func:`pick_split` ``(name, "test")``."""
    try:
        parsed = user.parse_name(name, {})
    except DatasetError:
        parsed = None
    if parsed is not None:
        return user.ood_split(*parsed)
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
