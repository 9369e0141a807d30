"""Every registered dataset, one module per file-format family; importing this package registers them all.

Each module here holds, for the datasets of one published layout, the loader, the "how to get it" text and
the :class:`~flowood.data.registry.Source` entry it passes to :func:`~flowood.data.registry.register`:

=====================  ===============================================================================
module                 datasets
=====================  ===============================================================================
``mnist``              ``mnist``, ``fashionmnist`` (idx files, torchvision's raw layout; Debian install)
``cifar``              ``cifar10`` (python pickle batches)
``svhn``               ``svhn`` (cropped digits ``.mat``)
``celeba``             ``celeba`` (aligned JPEGs + partition list, cropped and resized)
``notmnist``           ``notmnist`` (letter folders of PNGs)
``imagenet``           ``imagenet32``, ``imagenet64`` (downsampled-ImageNet npz batches)
``glyphs``             ``glyphs`` (rendered from local fonts: a stand-in for notMNIST)
``bundle``             ``fashionmnist-mini``, ``mnist-mini`` (embedded in the package)
``maf_tables``         ``miniboone``, ``hepmass``, ``gas``, ``power`` (MAF preprocessing)
``sklearn_tables``     ``breast-cancer`` (scikit-learn)
``embeddings``         ``embeddings`` (feature ``.npz`` files, ``path=`` or ``root=``)
``synthetic``          ``uniform-noise``, ``gaussian-noise``, ``constant-images`` (generated)
=====================  ===============================================================================

The modules are found by listing this package (``pkgutil``), not by a hand-kept list, so that adding a
dataset is one file: a list would be a second place to edit, and a module forgotten in it would be a
dataset that silently does not exist. ``tests/contracts/test_datasets.py`` runs one contract over every
registered source (each with a fixture writer in its published format) and fails for a source without
one; ``tests/data/test_registry.py`` fails for a module here that registers nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
