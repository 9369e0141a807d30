"""Datasets for flowood: the paper's image and tabular datasets, an embedded offline bundle, and user data.

>>> from flowood.data import load_dataset
>>> ds = load_dataset("fashionmnist-mini", "test")          # embedded, offline
>>> ds.data.shape, ds.data.dtype                             # (torch.Size([2000, 1, 28, 28]), torch.uint8)
>>> x, y = ds[0]                                             # x float32 (1, 28, 28) in [0, 1], y int

Registered names: ``mnist``, ``fashionmnist``, ``cifar10``, ``svhn``, ``celeba``, ``notmnist``, ``imagenet32``,
``imagenet64``, ``glyphs`` (rendered stand-in for notMNIST), ``fashionmnist-mini``, ``mnist-mini`` (embedded),
``miniboone``, ``hepmass``, ``gas``, ``power`` (MAF preprocessing), ``breast-cancer``, ``embeddings``, the
synthetic ``uniform-noise``, ``gaussian-noise``, ``constant-images``; derived sets ``hflip:NAME``,
``vflip:NAME``, ``invert:NAME``, ``mutate-RATE[-xK]:NAME``; user data as ``folder:/path``, ``npz:/path.npz``,
``table:/path.csv?label=col``, ``embeddings:/path.npz``. :mod:`flowood.data.resolve` gives the order in which a
name is understood, :mod:`flowood.data.locate` where files are looked for, :mod:`flowood.data.sources` one
module per registered file format, :mod:`flowood.data.user` user data.
"""

from flowood.data.base import ArrayDataset, DatasetInfo
from flowood.data.load import load_dataset
from flowood.data.locate import cache_dir
from flowood.data.resolve import (
    available_names,
    dataset_info,
    list_datasets,
    pick_ood_split,
    pick_split,
    resolve,
)

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "available_names",
    "cache_dir",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "pick_ood_split",
    "pick_split",
    "resolve",
]
