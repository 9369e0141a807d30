"""Per-sample exact likelihood scores of a dataset under a flow."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from flowood.flows import NormalizingFlow


@torch.inference_mode()
def score_bits_per_dim(
    flow: NormalizingFlow,
    batches: Iterable[Tensor],
    *,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> np.ndarray:
    """Bits per dimension of every sample, streamed batch by batch.

    Images (flows with preprocessing) get the discrete 8-bit likelihood with dequantisation noise drawn
    from a generator seeded with ``seed`` (so scores are reproducible); vectors get the continuous
    density. Runs in eval mode under ``torch.inference_mode``.

    Args:
        flow: the model.
        batches: tensors ``(B, *flow.input_shape)``: images in ``[0, 1]`` or vectors.
        transform: optional per-batch function applied first (e.g. standardisation).

    Returns:
        ``(N,)`` float64 bits/dim (lower = more likely); non-finite values are kept as they are.
    """
    was_training = flow.training
    flow.eval()
    device = next(flow.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    if flow.preprocess is not None:
        flow.preprocess[0].generator = gen
    out: list[np.ndarray] = []
    try:
        for batch in batches:
            batch = batch.to(device)
            if transform is not None:
                batch = transform(batch)
            ll = flow.log_likelihood_8bit(batch) if flow.preprocess is not None else flow.log_prob(batch)
            bpd = -ll.double() / (flow.num_dims * math.log(2.0))
            out.append(bpd.cpu().numpy())
    finally:
        if flow.preprocess is not None:
            flow.preprocess[0].generator = None
        flow.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)
