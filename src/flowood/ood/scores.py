"""The field's OOD scores for likelihood models: a registry and the arithmetic of each score.

Every score is returned with the flowood convention **higher = more in-distribution**, so
:func:`flowood.ood.detection_metrics` applies unchanged (in-distribution test set = positive class). The
models a score needs (background flow, ensemble, embedding flow) are trained and cached by
:mod:`flowood.experiments.scores`; this module holds only what is computed from their outputs, so every
formula is testable on numbers whose answer is known.

==========================  ======================================================  ==========================
score                       value returned (higher = in-distribution)               extra cost
==========================  ======================================================  ==========================
``log_likelihood``          ``log p(x)`` (as ``-bits/dim``: same ranking)           none (the baseline)
``bits_per_dim``            ``-bits/dim`` (same ranking as ``log_likelihood``)      none
``likelihood_ratio``        ``log p_model(x) - log p_background(x)``                one background flow
``input_complexity``        ``-(bpd_model(x) - L(x))``, ``L`` = PNG bits/dim        one PNG encode per sample
``typicality``              ``-|mean NLL(batch) - mean train NLL|`` per batch       one pass over training data
``waic``                    ``mean_k log p_k(x) - var_k log p_k(x)``                K extra flows
``embedding_likelihood``    ``log p(embedding(x))`` under a flow on CNN features    CNN features + one flow
==========================  ======================================================  ==========================

References: Ren et al. 2019 (likelihood ratios), Serrà et al. 2020 (input complexity), Nalisnick et al.
2019 (typicality test), Choi et al. 2018 (WAIC), Kirichenko et al. 2020 section 8 (flows on embeddings).
See ``docs/scores.md``.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowood.errors import ConfigError

DEFAULT_MUTATION_RATE = 0.2
"""Ren et al. 2019 chose μ in [0.1, 0.3] on FashionMNIST; flowood's default is 0.2."""


@dataclass(frozen=True)
class ScoreSpec:
    """What a score is, which way it points and what it costs.

    Attributes:
        name: registry key (also the key under ``report["ood"][NAME]["metrics"]``).
        summary: one line.
        direction: how the raw statistic points and what flowood returns.
        cost: what computing the score costs beyond the run's own likelihoods.
        reference: the paper that proposed it.
        needs: auxiliary models trained on first use (``background``, ``ensemble``, ``embedding-flow``) or
            data passes (``train-nll``); empty for scores computed from the run alone.
        images_only: only defined for image runs.
    """

    name: str
    summary: str
    direction: str
    cost: str
    reference: str
    needs: tuple[str, ...] = ()
    images_only: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "direction": self.direction,
            "cost": self.cost,
            "reference": self.reference,
        }


SCORES: dict[str, ScoreSpec] = {
    s.name: s
    for s in (
        ScoreSpec(
            "log_likelihood",
            "exact log-likelihood of the 8-bit image (or density of the vector) under the run's flow",
            "higher log p = more in-distribution; returned as -bits/dim (a positive multiple of log p + const)",
            "one forward pass per sample (the baseline)",
            "Kirichenko et al. 2020; Nalisnick et al. 2019 (why it fails)",
        ),
        ScoreSpec(
            "bits_per_dim",
            "bits per dimension, -log2 p(x) / D: the log-likelihood in the units of the report",
            "lower bits/dim = more in-distribution; returned negated (metrics equal log_likelihood's)",
            "free given log_likelihood",
            "Theis et al. 2016 (the unit)",
        ),
        ScoreSpec(
            "likelihood_ratio",
            "log p_model(x) - log p_background(x), background = same flow family trained on mutated inputs",
            "higher ratio = more in-distribution (semantic content explains the likelihood, not background "
            "statistics); returned as is",
            "trains one background flow (cached in RUN/background/), one extra forward pass per sample",
            "Ren et al. 2019, Likelihood Ratios for Out-of-Distribution Detection",
            needs=("background",),
            images_only=True,
        ),
        ScoreSpec(
            "input_complexity",
            "S(x) = bpd_model(x) - L(x), L = lossless-compressed size of the image in bits/dim (PNG)",
            "higher S = more OOD (the model explains the image worse than a generic compressor); returned as -S",
            "one PNG encode per sample (CPU, ~0.1 ms for 28x28)",
            "Serrà et al. 2020, Input Complexity and Out-of-Distribution Detection with Likelihood-based "
            "Generative Models",
            images_only=True,
        ),
        ScoreSpec(
            "typicality",
            "typicality test on batches of M samples: |mean NLL of the batch - mean NLL of the training data|",
            "larger distance = more OOD; returned negated; one score per BATCH, not per sample",
            "one scoring pass over (a subset of) the training split to estimate the training NLL",
            "Nalisnick et al. 2019, Detecting Out-of-Distribution Inputs to Deep Generative Models Using Typicality",
            needs=("train-nll",),
        ),
        ScoreSpec(
            "waic",
            "WAIC = mean_k log p_k(x) - var_k log p_k(x) over K independently trained flows",
            "higher WAIC = more in-distribution (high likelihood that the members agree on); returned as is",
            "trains K flows (cached in RUN/ensemble/), K forward passes per sample",
            "Choi et al. 2018, WAIC, but Why? Generative Ensembles for Robust Anomaly Detection",
            needs=("ensemble",),
        ),
        ScoreSpec(
            "embedding_likelihood",
            "log-density of the image's pretrained-CNN embedding under a tabular flow fit to in-distribution "
            "embeddings",
            "higher log p(embedding) = more in-distribution; returned as is (nats of the standardised features)",
            "one CNN forward pass per image (cached by content) + one flow on embeddings (RUN/embedding-flow/)",
            "Kirichenko et al. 2020, section 8",
            needs=("embedding-flow",),
            images_only=True,
        ),
    )
}


def available_scores() -> list[str]:
    """Names of every registered score."""
    return list(SCORES)


def parse_scores(text: str | list[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` (or ``"all"``) → validated score names, in order, without duplicates.

    ``log_likelihood`` is always included first (the report's baseline). Raises ``ValueError`` naming the
    unknown score and the valid ones.
    """
    items: list[str] = []
    for part in [text] if isinstance(text, str) else list(text or []):
        items += [p.strip() for p in part.split(",") if p.strip()]
    if "all" in items:
        items = available_scores()
    unknown = [s for s in items if s not in SCORES]
    if unknown:
        raise ConfigError(f"unknown score {unknown[0]!r}; available: {', '.join(SCORES)} (or all)")
    out = ["log_likelihood"]
    for s in items:
        if s not in out:
            out.append(s)
    return out


# ------------------------------------------------------------------------------------------------ likelihood ratio


def mutate_images(images: np.ndarray, rate: float = DEFAULT_MUTATION_RATE, seed: int = 0) -> np.ndarray:
    """Ren et al.'s input perturbation: every value is replaced, independently with probability ``rate``, by a
    uniform random 8-bit value (``0..255``; it may equal the old value).

    Applied to each of the C·H·W values of a uint8 image (for grey images: each pixel).

    Args:
        images: uint8 array of any shape (e.g. ``(N, C, H, W)``).
        rate: mutation rate μ in ``[0, 1]``.
        seed: numpy generator seed (the result is a pure function of inputs and seed).

    Returns:
        A new uint8 array of the same shape.
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


def likelihood_ratio(log_p_model: np.ndarray, log_p_background: np.ndarray) -> np.ndarray:
    """``log p_model - log p_background`` per sample (same units for both; higher = in-distribution).

    Works on nats, bits or negated bits/dim alike, since the ratio of two models of the same input is a
    difference of their log-likelihoods in any common unit."""
    a = np.asarray(log_p_model, dtype=np.float64)
    b = np.asarray(log_p_background, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"model and background scores differ in shape: {a.shape} vs {b.shape}")
    return a - b


# ------------------------------------------------------------------------------------------------ input complexity


def _png_bytes(image: np.ndarray) -> int:
    from PIL import Image

    img = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return buf.tell()


COMPRESSORS: dict[str, Callable[[np.ndarray], int]] = {
    "png": _png_bytes,
    "zlib": lambda img: len(zlib.compress(np.ascontiguousarray(img).tobytes(), 9)),
    "bz2": lambda img: len(bz2.compress(np.ascontiguousarray(img).tobytes(), 9)),
    "lzma": lambda img: len(lzma.compress(np.ascontiguousarray(img).tobytes(), preset=9 | lzma.PRESET_EXTREME)),
}
"""Lossless compressors of one uint8 ``(C, H, W)`` image → size in bytes. ``png``: Pillow with
``optimize=True`` (zlib level 9 + filter search; whole file, header included); the others compress the raw
bytes at maximum level. All are available offline (standard library + Pillow)."""


def compressed_bits_per_dim(images: np.ndarray, compressor: str = "png") -> np.ndarray:
    """``L(x)``: compressed size in bits per dimension, ``8 · bytes / (C·H·W)``, of every image.

    Args:
        images: uint8 ``(N, C, H, W)`` with C in {1, 3} (or ``(N, H, W)``).
        compressor: a key of :data:`COMPRESSORS`.

    Returns:
        float64 ``(N,)``.
    """
    if compressor not in COMPRESSORS:
        raise ValueError(f"unknown compressor {compressor!r}; available: {', '.join(COMPRESSORS)}")
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"compressed_bits_per_dim expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, C, H, W) with C in 1 or 3, got {images.shape}")
    fn = COMPRESSORS[compressor]
    dims = int(np.prod(images.shape[1:]))
    return np.array([8.0 * fn(img) / dims for img in images], dtype=np.float64)


def input_complexity(bpd_model: np.ndarray, complexity_bpd: np.ndarray) -> np.ndarray:
    """The in-distribution score ``-S(x) = L(x) - bpd_model(x)`` (Serrà et al.'s S negated).

    Both arguments are bits/dim of the same samples; higher result = more in-distribution."""
    bpd = np.asarray(bpd_model, dtype=np.float64)
    comp = np.asarray(complexity_bpd, dtype=np.float64)
    if bpd.shape != comp.shape:
        raise ValueError(f"model and compressor bits/dim differ in shape: {bpd.shape} vs {comp.shape}")
    return comp - bpd


# ------------------------------------------------------------------------------------------------ typicality


def typicality_batches(n: int, batch_size: int, num_batches: int, seed: int) -> np.ndarray:
    """Index batches for the typicality test: ``num_batches`` rows of ``batch_size`` distinct indices in
    ``range(n)`` (each row drawn without replacement, rows independent; seeded, so fixed across runs).

    Returns:
        int64 ``(num_batches, batch_size)``.
    """
    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"typicality needs batch_size >= 1 and num_batches >= 1, got {batch_size}, {num_batches}")
    if n < batch_size:
        raise ValueError(f"typicality batches of M={batch_size} need at least M samples, got {n}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n, size=batch_size, replace=False) for _ in range(num_batches)]).astype(np.int64)


def typicality_scores(nll: np.ndarray, train_mean_nll: float, batches: np.ndarray) -> np.ndarray:
    """Per-batch score ``-|mean(nll[batch]) - train_mean_nll|`` (higher = more typical = in-distribution).

    ``nll`` is any per-sample negative log-likelihood unit (nats or bits/dim) matching ``train_mean_nll``.
    Non-finite NLLs make their batch's score ``-inf`` (maximally atypical)."""
    v = np.asarray(nll, dtype=np.float64)
    means = v[np.asarray(batches)].mean(axis=1)
    out = -np.abs(means - float(train_mean_nll))
    out[~np.isfinite(out)] = -np.inf
    return out


# ------------------------------------------------------------------------------------------------ WAIC


def waic(log_probs: np.ndarray) -> np.ndarray:
    """WAIC per sample from ``(K, N)`` member log-likelihoods: ``mean_k - var_k`` (population variance, ddof 0).

    Needs K >= 2 for a variance term; with K = 1 it is the member's log-likelihood. Higher = in-distribution."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] < 1:
        raise ValueError(f"waic expects (K, N) member log-likelihoods, got shape {lp.shape}")
    return lp.mean(axis=0) - lp.var(axis=0)
