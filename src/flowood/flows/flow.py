"""The user-facing flow: a transform, a standard-normal base, optional 8-bit image preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from flowood.flows.base import (
    FlowSequential,
    InvertibleModule,
    float32_region,
    full_precision,
    standard_normal_log_prob,
    zero_logdet,
)
from flowood.flows.invert import DEFAULT_TOLERANCE, MEMORY_MODES, BackpropByInversion
from flowood.flows.multiscale import innermost_scale_squeezes, original_order_latent, split_latent_scales
from flowood.flows.preprocess import Dequantize, LogitTransform, bits_per_dim


class NormalizingFlow(nn.Module):
    """A normalizing flow ``z = f(x)`` with a standard-normal base distribution.

    ``x`` is the *continuous* input: for image flows the logit-space image produced by
    :attr:`preprocess`. Use :meth:`log_likelihood_8bit` / :meth:`bits_per_dim` for images in ``[0, 1]``.

    Attributes:
        name: registry name of the architecture.
        input_shape: per-sample shape, ``(C, H, W)`` or ``(D,)``.
        config: the keyword arguments the flow was built with (enough to rebuild it).
        preprocess: dequantisation + logit for image flows, ``None`` for vector flows.
    """

    def __init__(
        self,
        transform: InvertibleModule,
        input_shape: Sequence[int],
        *,
        name: str,
        config: dict[str, Any],
        preprocess: InvertibleModule | None = None,
        latent_keeps: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.input_shape = tuple(int(s) for s in input_shape)
        self.name = name
        self.config = dict(config)
        self.preprocess = preprocess
        self.latent_keeps = list(latent_keeps or [])
        self.inversion: BackpropByInversion | None = None

    @property
    def memory(self) -> str:
        """``store`` (autograd keeps every activation) or ``invert`` (see :meth:`set_memory`)."""
        return "invert" if self.inversion is not None else "store"

    def set_memory(self, mode: str, tolerance: float = DEFAULT_TOLERANCE) -> None:
        """Choose how a forward pass under autograd keeps activations for its backward pass.

        ``invert``: the body's invertible blocks keep none; the backward pass rebuilds each block's input from its
        output and recomputes it (:class:`~flowood.flows.invert.BackpropByInversion`, with ``tolerance`` its bound
        on the relative reconstruction error), so activation memory does not grow with depth. Forward passes without
        gradients (evaluation, scoring, sampling) are unaffected. ``store``: autograd's default.
        """
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, got {mode!r}")
        self.inversion = BackpropByInversion(self.transform, tolerance) if mode == "invert" else None

    @property
    def num_dims(self) -> int:
        """Number of dimensions D of one sample."""
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name} flow expects inputs of shape (B, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, *input_shape) -> (z (B, *input_shape), logdet (B,))``."""
        self._check(x)
        if self.inversion is not None and torch.is_grad_enabled():
            return self.inversion(x)
        return self.transform(x)

    def inverse(self, z: Tensor) -> Tensor:
        """``z (B, *input_shape) -> x (B, *input_shape)``."""
        self._check(z)
        return self.transform.inverse(z)

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B,)`` log-density of the continuous input ``x`` in nats."""
        z, logdet = self(x)
        with float32_region(z):
            return standard_normal_log_prob(z) + full_precision(logdet)

    def _param_like(self) -> Tensor:
        for p in self.parameters():
            return p
        return torch.zeros(())

    @torch.no_grad()
    def sample(self, num_samples: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``(num_samples, *input_shape)`` continuous samples; ``temperature`` scales the base std."""
        ref = self._param_like()
        z = torch.randn((num_samples, *self.input_shape), generator=generator, device=ref.device, dtype=ref.dtype)
        return self.inverse(z * temperature)

    @torch.no_grad()
    def sample_images(
        self, num_samples: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Samples mapped back to images in ``[0, 1]`` (image flows only)."""
        x = self.sample(num_samples, temperature, generator)
        if self.preprocess is None:
            return x
        logit = self._logit()
        return logit.inverse(x).clamp(0.0, 1.0)

    def _logit(self) -> LogitTransform:
        assert self.preprocess is not None
        for m in self.preprocess.modules():
            if isinstance(m, LogitTransform):
                return m
        raise RuntimeError("preprocess has no LogitTransform")

    def preprocess_images(self, images: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images in ``[0, 1]`` → continuous flow input and the preprocessing log-det ``(B,)``.

        ``noise``: dequantisation noise ``u ∈ [0, 1)`` shaped like ``images`` (default: drawn), e.g. to
        repeat another implementation's computation exactly.
        """
        if self.preprocess is None:
            raise ValueError(f"{self.name} flow has no image preprocessing; pass continuous vectors to log_prob")
        if noise is None:
            return self.preprocess(images)
        x, logdet = images, zero_logdet(images)
        for layer in self.preprocess.modules():
            if isinstance(layer, Dequantize):
                x, ld = layer.with_noise(x, noise)
            elif isinstance(layer, LogitTransform):
                x, ld = layer(x)
            else:
                continue
            logdet = logdet + ld
        return x, logdet

    def log_likelihood_8bit(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        """Discrete log-likelihood ``(B,)`` in nats of 8-bit images given as floats in ``[0, 1]``.

        Dequantisation (with ``−D·log 256``) + logit (with its log-det) + flow + base density;
        ``noise`` as in :meth:`preprocess_images`.
        """
        x, ld_pre = self.preprocess_images(images, noise)
        return self.log_prob(x) + ld_pre

    def log_likelihood(self, data: Tensor) -> Tensor:
        """``(B,)`` log-likelihood in nats of a data batch: the discrete 8-bit likelihood
        (:meth:`log_likelihood_8bit`) of images in ``[0, 1]`` for image flows, the continuous density
        (:meth:`log_prob`) of vectors for flows without preprocessing."""
        return self.log_likelihood_8bit(data) if self.preprocess is not None else self.log_prob(data)

    def set_dequantization_rng(self, generator: torch.Generator | None, shard: tuple[int, int] | None = None) -> None:
        """Draw dequantisation noise from ``generator`` (``None``: torch's global RNG) for reproducible
        scores and exact resume; ``shard=(rank, world)`` keeps this rank's slice of a global batch's noise.
        A no-op for flows without image preprocessing."""
        if self.preprocess is None:
            return
        for module in self.preprocess.modules():
            if isinstance(module, Dequantize):
                module.generator = generator
                module.shard = shard

    def bits_per_dim(self, images: Tensor) -> Tensor:
        """``(B,)`` bits per dimension of 8-bit images in ``[0, 1]``."""
        return bits_per_dim(self.log_likelihood_8bit(images), self.num_dims)

    def split_latent(self, z: Tensor) -> list[Tensor]:
        """Per-scale pieces of a latent, finest first (one piece for single-scale flows)."""
        if not self.latent_keeps:
            return [z]
        return split_latent_scales(z, self.latent_keeps)

    def latent_original_order(self, z: Tensor) -> Tensor:
        """``z (B, *input_shape)`` flattened to ``(B, D)`` in the original code's order.

        The original (``flow_ssl``) concatenates the factored-out pieces finest first and then the
        coarsest scale's remainder, each flattened in ``(C, H, W)`` order; for Glow that last piece is
        still squeezed (see :func:`~flowood.flows.multiscale.split_latent_scales`). For image flows only.
        """
        self._check(z)
        if z.dim() != 4:
            return z.reshape(z.shape[0], -1)
        return original_order_latent(z, self.latent_keeps, innermost_scale_squeezes(self.transform))


def image_preprocess(alpha: float = 0.9, noise: str = "uniform") -> FlowSequential:
    """Dequantisation followed by the logit transform."""
    return FlowSequential(Dequantize(noise=noise), LogitTransform(alpha))
