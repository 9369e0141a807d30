"""Per-sample, per-scale statistics of a flow: the one extra pass that ``dose``, ``per_scale`` and
``latent_typicality`` share.

The log-likelihood of a multi-scale flow splits exactly into one term per scale (Schirrmeister et al. 2020):
the scale's layers' log-determinant plus the base log-density of the latent piece factored out at that
scale (the coarsest scale keeps what is left), plus the image preprocessing's log-det (dequantisation and
logit, with ``-D log 256``):

    log p(x) = preprocess_logdet + sum_i [ logdet_i + log N(z_i) ].

The per-scale log-dets are read by walking the flow's public module structure (a ``FlowSequential`` of
layers in which a ``FactorOut`` sends part of the channels one scale deeper); the latent pieces come from
:meth:`flowood.flows.NormalizingFlow.split_latent` (finest first). Single-scale flows have one scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from flowood.flows import FactorOut, FlowSequential, NormalizingFlow, bits_per_dim

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class FlowStatistics:
    """Statistics of N samples under one flow (all float64 numpy; nats unless said otherwise).

    Attributes:
        log_likelihood: ``(N,)`` total log-likelihood (8-bit discrete for images).
        base_log_density: ``(N,)`` ``log N(z; 0, I)`` of the whole latent.
        flow_logdet: ``(N,)`` log-det of the flow's transform (all scales).
        preprocess_logdet: ``(N,)`` dequantisation + logit log-det (0 for vectors).
        scale_log_likelihood: ``(N, S)`` scale ``i``'s term ``logdet_i + log N(z_i)``, finest scale first.
        scale_sq_norm: ``(N, S)`` ``||z_i||^2`` of each scale's latent piece.
        scale_dims: ``(S,)`` dimensions ``D_i`` of each piece (they sum to D).
    """

    log_likelihood: np.ndarray
    base_log_density: np.ndarray
    flow_logdet: np.ndarray
    preprocess_logdet: np.ndarray
    scale_log_likelihood: np.ndarray
    scale_sq_norm: np.ndarray
    scale_dims: np.ndarray

    @property
    def num_scales(self) -> int:
        return int(self.scale_dims.size)

    def scale_bits_per_dim(self) -> np.ndarray:
        """``(N, S)`` each scale's term in bits per dimension of its own piece: ``-term_i / (D_i ln 2)``."""
        return bits_per_dim(self.scale_log_likelihood, self.scale_dims[None, :])


def _walk(module: nn.Module, x: Tensor, depth: int, logdets: dict[int, Tensor]) -> Tensor:
    """Apply ``module`` to ``x``, adding each layer's log-det to ``logdets[depth of its scale]``."""
    if isinstance(module, FlowSequential):
        for layer in module:
            x = _walk(layer, x, depth, logdets)
        return x
    if isinstance(module, FactorOut):
        a, b = x[:, : module.keep], x[:, module.keep :]
        return torch.cat((_walk(module.inner, a, depth + 1, logdets), b), dim=1)
    y, ld = module(x)
    logdets[depth] = logdets[depth] + ld if depth in logdets else ld
    return y


def _gauss(z: Tensor) -> Tensor:
    flat = z.reshape(z.shape[0], -1).double()
    return -0.5 * (flat.pow(2).sum(1) + flat.shape[1] * LOG_2PI)


@torch.inference_mode()
def flow_statistics(
    flow: NormalizingFlow,
    data: Tensor,
    *,
    kind: str,
    seed: int = 0,
    batch_size: int = 512,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> FlowStatistics:
    """One pass of ``data`` (``uint8`` images or float vectors) through ``flow``; see :class:`FlowStatistics`.

    Dequantisation noise is drawn from a generator seeded with ``seed`` (as in
    :func:`flowood.ood.likelihood.score_bits_per_dim`, so the totals match the evaluation's bits/dim for the
    same seed and batch size); ``transform`` (a run's standardiser) is applied to vectors first.
    """
    was_training = flow.training
    flow.eval()
    device = next(flow.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    flow.set_dequantization_rng(gen)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("ll", "base", "ld", "pre", "scale", "sq")}
    dims: list[int] = []
    try:
        for start in range(0, int(data.shape[0]), batch_size):
            batch = data[start : start + batch_size].to(device)
            if kind == "image":
                x, ld_pre = flow.preprocess_images(batch.float() / 255.0)
            else:
                batch = batch.float()
                x = transform(batch) if transform is not None else batch
                ld_pre = torch.zeros(x.shape[0], device=device)
            if tuple(x.shape[1:]) != flow.input_shape:
                raise ValueError(f"{flow.name} expects samples of shape {flow.input_shape}, got {tuple(x.shape[1:])}")
            logdets: dict[int, Tensor] = {}
            z = _walk(flow.transform, x, 0, logdets)
            pieces = flow.split_latent(z)
            if len(pieces) != max(len(logdets), 1):
                raise ValueError(
                    f"{flow.name}: {len(pieces)} latent pieces but {len(logdets)} scales of layers; "
                    "per-scale statistics need the RealNVP/Glow multi-scale layout"
                )
            zero = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
            lds = [logdets.get(i, zero).double() for i in range(len(pieces))]
            gauss = [_gauss(p) for p in pieces]
            parts["scale"].append(torch.stack([ld + g for ld, g in zip(lds, gauss, strict=True)], 1))
            parts["sq"].append(torch.stack([p.reshape(p.shape[0], -1).double().pow(2).sum(1) for p in pieces], 1))
            base = torch.stack(gauss, 1).sum(1)
            ld_flow = torch.stack(lds, 1).sum(1)
            parts["base"].append(base)
            parts["ld"].append(ld_flow)
            parts["pre"].append(ld_pre.double())
            parts["ll"].append(base + ld_flow + ld_pre.double())
            dims = [int(p[0].numel()) for p in pieces]
    finally:
        flow.set_dequantization_rng(None)
        flow.train(was_training)

    def cat(key: str) -> np.ndarray:
        return torch.cat(parts[key]).cpu().numpy() if parts[key] else np.zeros(0)

    return FlowStatistics(
        log_likelihood=cat("ll"),
        base_log_density=cat("base"),
        flow_logdet=cat("ld"),
        preprocess_logdet=cat("pre"),
        scale_log_likelihood=cat("scale").reshape(-1, len(dims) or 1),
        scale_sq_norm=cat("sq").reshape(-1, len(dims) or 1),
        scale_dims=np.asarray(dims or [flow.num_dims], dtype=np.float64),
    )
