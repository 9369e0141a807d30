"""Derived datasets: ``OP:NAME``, the images of any image dataset ``NAME`` changed by one operation.

=========================  ===========================================================================
name                       images
=========================  ===========================================================================
``hflip:NAME``             mirrored left-right
``vflip:NAME``             upside down
``invert:NAME``            ``255 - x``
``mutate-RATE:NAME``       each value replaced, independently with probability ``RATE`` in ``[0, 1]``, by a
                           uniform random value ``0..255`` (Ren et al. 2019's background data; it may equal
                           the old value)
``mutate-RATE-xK:NAME``    the same, with ``K >= 1`` mutated copies of every image of the ``train`` split,
                           concatenated copy after copy (other splits: one copy)
=========================  ===========================================================================

``NAME`` is loaded with the same arguments (split, limit, classes, seed, channels, size, options) and the
operation applied to what it returns, so a limit counts base images (``mutate-0.2-x2:NAME`` with ``limit=64``
gives 128 training images) and labels are kept (repeated per copy). ``NAME`` may itself be derived.

**Seed rule of ``mutate``.** Copy ``k`` (0-based) of split ``S`` of ``mutate-R[-xK]:NAME`` loaded with seed ``s``
is ``mutate_images(base, R, seed=[MUTATE_SALT, crc32(NAME), crc32(S), s, k])``: a pure function of the base
name, the split, the load seed and the copy index. It does not depend on ``R`` or ``K``, so the copies of
``-x2`` are the first two of ``-x3``, and a smaller rate replaces a subset of the values a larger one replaces.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from flowood.data.base import ArrayDataset
from flowood.errors import DatasetError

DEFAULT_MUTATION_RATE = 0.2
"""Ren et al. 2019 chose μ in [0.1, 0.3] on FashionMNIST; flowood's default is 0.2."""
MUTATE_SALT = 0x6D757461  # "muta": keeps these streams apart from every other seeded stream of the same seed
FIXED_OPS = ("hflip", "vflip", "invert")
_MUTATE_SYNTAX = "write mutate-RATE:NAME or mutate-RATE-xK:NAME (RATE in [0, 1], K >= 1), e.g. mutate-0.2:NAME"


def mutate_images(images: np.ndarray, rate: float = DEFAULT_MUTATION_RATE, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Ren et al.'s input perturbation: every value is replaced, independently with probability ``rate``, by a
    uniform random 8-bit value (``0..255``; it may equal the old value).

    Args:
        images: uint8 array of any shape (e.g. ``(N, C, H, W)``; each of the C·H·W values is perturbed).
        rate: mutation rate μ in ``[0, 1]``.
        seed: numpy generator seed, an int or a sequence of ints (the result is a pure function of inputs and
            seed).

    Returns:
        A new uint8 array of the same shape.

    Raises:
        ValueError: ``rate`` outside ``[0, 1]`` or images that are not uint8.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"mutation rate must be in [0, 1], got {rate}")
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"mutate_images expects uint8 images, got {images.dtype}")
    rng = np.random.default_rng(seed)
    mask = rng.random(images.shape) < rate
    noise = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    return np.where(mask, noise, images)


def mutation_seed(base_name: str, split: str, seed: int, copy: int) -> list[int]:
    """The generator seed of copy ``copy`` of split ``split`` of a ``mutate`` set of ``base_name`` (module
    docstring: the seed rule)."""
    return [MUTATE_SALT, zlib.crc32(base_name.encode()), zlib.crc32(split.encode()), int(seed), int(copy)]


@dataclass(frozen=True)
class Derivation:
    """One operation of a derived name: ``op`` (``hflip``, ``vflip``, ``invert``, ``mutate``) and, for ``mutate``,
    the rate and the number of copies of the ``train`` split."""

    op: str
    rate: float = 0.0
    copies: int = 1

    @property
    def prefix(self) -> str:
        """The name's prefix, canonical: ``"hflip"``, ``"mutate-0.2"``, ``"mutate-0.2-x2"``."""
        if self.op != "mutate":
            return self.op
        return f"mutate-{self.rate:g}" + (f"-x{self.copies}" if self.copies != 1 else "")


def parse_derived(name: str) -> tuple[Derivation, str] | None:
    """``"invert:mnist"`` → ``(Derivation("invert"), "mnist")``; ``None`` for a name that is not derived.

    Raises:
        DatasetError: a derived prefix with nothing after the colon, or a ``mutate`` prefix whose rate or copy
            count does not parse or is out of range (one line naming the whole name and the syntax).
    """
    prefix, sep, base = name.partition(":")
    key = prefix.strip().lower()
    if not sep or not (key in FIXED_OPS or key == "mutate" or key.startswith("mutate-")):
        return None
    if not base.strip():
        raise DatasetError(f"{name}: name the dataset to derive from after the colon, e.g. {key}:fashionmnist-mini")
    if key in FIXED_OPS:
        return Derivation(key), base.strip()
    return _parse_mutate(name, key), base.strip()


def _parse_mutate(name: str, key: str) -> Derivation:
    if not key.startswith("mutate-"):
        raise DatasetError(f"{name}: mutate needs a rate; {_MUTATE_SYNTAX}")
    rate_text, sep, copies_text = key[len("mutate-") :].rpartition("-x")
    if not sep:  # no "-xK": the whole rest is the rate
        rate_text, copies_text = copies_text, "1"
    try:
        rate = float(rate_text)
    except ValueError:
        raise DatasetError(f"{name}: mutation rate {rate_text!r} is not a number; {_MUTATE_SYNTAX}") from None
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise DatasetError(f"{name}: mutation rate {rate_text} is outside [0, 1]; {_MUTATE_SYNTAX}")
    if not copies_text.isdigit() or int(copies_text) < 1:
        raise DatasetError(f"{name}: the number of copies x{copies_text} must be an integer >= 1; {_MUTATE_SYNTAX}")
    return Derivation("mutate", rate, int(copies_text))


def derive(derivation: Derivation, ds: ArrayDataset, name: str, *, base_name: str, seed: int) -> ArrayDataset:
    """Apply ``derivation`` to every image of ``ds`` (the loaded base set ``base_name``; ``seed`` the load seed).

    Returns:
        A new image dataset named ``name``: same split and class names, labels kept (repeated per copy),
        the base's conversions carried over (for the caller to say).

    Raises:
        DatasetError: ``ds`` holds vectors (the operations act on 8-bit pixels).
    """
    if ds.kind != "image":
        raise DatasetError(
            f"{name}: {derivation.op} applies to image datasets, {ds.name} holds vectors; derive from an image set"
        )
    labels = ds.labels
    if derivation.op == "hflip":
        x = ds.data.flip(-1)
    elif derivation.op == "vflip":
        x = ds.data.flip(-2)
    elif derivation.op == "invert":
        x = 255 - ds.data
    else:
        copies = derivation.copies if ds.split == "train" else 1
        base = ds.data.numpy()
        x = torch.from_numpy(
            np.concatenate(
                [
                    mutate_images(base, derivation.rate, seed=mutation_seed(base_name, ds.split, seed, k))
                    for k in range(copies)
                ]
            )
        )
        labels = labels.repeat(copies)
    out = ArrayDataset(
        x.contiguous(),
        labels,
        kind="image",
        name=name,
        split=ds.split,
        source=f"{derivation.prefix} of {ds.source}",
        class_names=ds.class_names,
    )
    out.conversions = list(ds.conversions)
    return out
