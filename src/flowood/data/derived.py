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
``blur-SIGMA:NAME``        Gaussian blur of standard deviation ``SIGMA > 0`` pixels (separable kernel of
                           radius ``ceil(3 SIGMA)``, edges reflected), rounded to 8 bits
``jpeg-QUALITY:NAME``      compressed and decoded as JPEG (Pillow) at ``QUALITY`` in ``1..95``
``shift-PIXELS:NAME``      each image translated by ``(dy, dx)``, each drawn uniformly from ``-PIXELS..PIXELS``
                           (not both zero; seeded as ``mutate`` is), the uncovered border filled with 0
``contrast-FACTOR:NAME``   ``mean + FACTOR (x - mean)`` per image and channel (``FACTOR`` in ``(0, 1]`` lowers
                           contrast), rounded and clipped to ``0..255``
=========================  ===========================================================================

The last four are *covariate shifts*: the same objects, mildly degraded. ``flowood benchmark`` reports them in
a group of their own (they are not semantic OOD sets and are never averaged with them).

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
SHIFT_OPS = {
    "blur": ("SIGMA > 0 (pixels)", lambda v: 0 < v <= 32),
    "jpeg": ("QUALITY in 1..95", lambda v: float(v).is_integer() and 1 <= v <= 95),
    "shift": ("PIXELS in 1..16", lambda v: float(v).is_integer() and 1 <= v <= 16),
    "contrast": ("FACTOR in (0, 1]", lambda v: 0 < v <= 1),
}
"""Covariate shifts ``OP-AMOUNT:NAME``: what AMOUNT means and its valid range."""
SHIFT_SALT = 0x73686674  # "shft": the seed stream of shift's offsets
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
    amount: float = 0.0

    @property
    def prefix(self) -> str:
        """The name's prefix, canonical: ``"hflip"``, ``"mutate-0.2"``, ``"mutate-0.2-x2"``, ``"blur-1"``."""
        if self.op in SHIFT_OPS:
            return f"{self.op}-{self.amount:g}"
        if self.op != "mutate":
            return self.op
        return f"mutate-{self.rate:g}" + (f"-x{self.copies}" if self.copies != 1 else "")

    @property
    def is_shift(self) -> bool:
        """A covariate shift (blur, JPEG, translation, contrast) rather than a change of what is shown."""
        return self.op in SHIFT_OPS


def parse_derived(name: str) -> tuple[Derivation, str] | None:
    """``"invert:mnist"`` → ``(Derivation("invert"), "mnist")``; ``None`` for a name that is not derived.

    Raises:
        DatasetError: a derived prefix with nothing after the colon, or a ``mutate`` prefix whose rate or copy
            count does not parse or is out of range (one line naming the whole name and the syntax).
    """
    prefix, sep, base = name.partition(":")
    key = prefix.strip().lower()
    op = key.split("-", 1)[0]
    if not sep or not (key in FIXED_OPS or op == "mutate" or op in SHIFT_OPS):
        return None
    if not base.strip():
        raise DatasetError(f"{name}: name the dataset to derive from after the colon, e.g. {key}:fashionmnist-mini")
    if key in FIXED_OPS:
        return Derivation(key), base.strip()
    if op in SHIFT_OPS:
        return _parse_shift(name, key, op), base.strip()
    return _parse_mutate(name, key), base.strip()


def _parse_shift(name: str, key: str, op: str) -> Derivation:
    meaning, valid = SHIFT_OPS[op]
    text = key[len(op) + 1 :] if key.startswith(f"{op}-") else ""
    try:
        amount = float(text)
    except ValueError:
        raise DatasetError(f"{name}: write {op}-AMOUNT:NAME with {meaning}, e.g. {op}-2:fashionmnist") from None
    if not (math.isfinite(amount) and valid(amount)):
        raise DatasetError(f"{name}: {op} needs {meaning}, got {text}")
    return Derivation(op, amount=amount)


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
    elif derivation.is_shift:
        x = torch.from_numpy(
            covariate_shift(ds.data.numpy(), derivation, seed=[SHIFT_SALT, zlib.crc32(base_name.encode()), seed])
        )
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


def covariate_shift(images: np.ndarray, derivation: Derivation, seed: Sequence[int] = (0,)) -> np.ndarray:
    """``uint8 (N, C, H, W)`` images under one covariate shift (module docstring), as a new uint8 array."""
    op, amount = derivation.op, derivation.amount
    if op == "blur":
        return _blur(images, amount)
    if op == "jpeg":
        return _jpeg(images, int(amount))
    if op == "shift":
        return _translate(images, int(amount), np.random.default_rng(list(seed)))
    if op == "contrast":
        x = images.astype(np.float64)
        mean = x.mean(axis=(2, 3), keepdims=True)
        return np.clip(np.round(mean + amount * (x - mean)), 0, 255).astype(np.uint8)
    raise ValueError(f"not a covariate shift: {op}")


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = torch.from_numpy(images).double()
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    pad = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="reflect" if w > radius else "replicate")
    x = torch.nn.functional.conv2d(pad, kernel.view(1, 1, 1, -1))
    pad = torch.nn.functional.pad(x, (0, 0, radius, radius), mode="reflect" if h > radius else "replicate")
    x = torch.nn.functional.conv2d(pad, kernel.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w).round().clamp(0, 255).to(torch.uint8).numpy()


def _jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    out = np.empty_like(images)
    for i, img in enumerate(images):
        grey = img.shape[0] == 1
        pil = Image.fromarray(img[0] if grey else img.transpose(1, 2, 0), mode="L" if grey else "RGB")
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buf.getvalue())) as decoded:
            arr = np.asarray(decoded.convert("L" if grey else "RGB"), dtype=np.uint8)
        out[i] = arr[None] if grey else arr.transpose(2, 0, 1)
    return out


def _translate(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros_like(images)
    h, w = images.shape[2:]
    for i, img in enumerate(images):
        dy = dx = 0
        while dy == 0 and dx == 0:
            dy, dx = (int(v) for v in rng.integers(-pixels, pixels + 1, size=2))
        src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        out[i, :, dst_y, dst_x] = img[:, src_y, src_x]
    return out
