"""Per-sample exact likelihood scores of a dataset under a flow."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from flowood.flows import NormalizingFlow, bits_per_dim
from flowood.perf import FastPath


@torch.inference_mode()
def iter_bits_per_dim(
    flow: NormalizingFlow,
    batches: Iterable[Tensor],
    *,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
    fast: FastPath | None = None,
) -> Iterator[Tensor]:
    """Bits per dimension batch by batch, as float64 tensors left on the flow's device (no host sync).

    Images (flows with preprocessing) get the discrete 8-bit likelihood with dequantisation noise drawn
    from a generator seeded with ``seed`` (so scores are reproducible); vectors get the continuous
    density. Runs in eval mode under ``torch.inference_mode``; ``fast`` (a :class:`~flowood.perf.FastPath`)
    adds autocast of the st-networks and the channels-last input format, with the likelihood in fp32.
    """
    was_training = flow.training
    flow.eval()
    device = next(flow.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    flow.set_dequantization_rng(gen)
    autocast = fast.autocast if fast is not None else contextlib.nullcontext
    try:
        for batch in batches:
            batch = batch.to(device, non_blocking=True)
            if transform is not None:
                batch = transform(batch)
            if fast is not None:
                batch = fast.prepare_input(batch)
            with autocast():
                ll = flow.log_likelihood(batch)
            yield bits_per_dim(ll.double(), flow.num_dims)
    finally:
        flow.set_dequantization_rng(None)
        flow.train(was_training)


def score_bits_per_dim(
    flow: NormalizingFlow,
    batches: Iterable[Tensor],
    *,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
    fast: FastPath | None = None,
) -> np.ndarray:
    """Bits per dimension of every sample, streamed batch by batch (see :func:`iter_bits_per_dim`).

    Batches are consumed one at a time (inputs are never all in memory); per-sample results stay on the
    device and are copied to the host once at the end, so scoring has no per-batch host sync.

    Args:
        flow: the model.
        batches: tensors ``(B, *flow.input_shape)``: images in ``[0, 1]`` or vectors.
        transform: optional per-batch function applied first (e.g. standardisation).
        fast: optional precision / memory-format settings (default: fp32, contiguous).

    Returns:
        ``(N,)`` float64 bits/dim (lower = more likely); non-finite values are kept as they are.
    """
    out = list(iter_bits_per_dim(flow, batches, seed=seed, transform=transform, fast=fast))
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)


def sample_batches(data: Tensor, batch_size: int, device: torch.device | str) -> Iterator[Tensor]:
    """``data`` in order, ``batch_size`` at a time on ``device``: ``uint8`` images as floats in ``[0, 1]``
    (converted on the device, so only the bytes are copied), vectors as float32."""
    for start in range(0, int(data.shape[0]), batch_size):
        batch = data[start : start + batch_size].to(device, non_blocking=True)
        yield batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()


def score_samples(
    flow: NormalizingFlow,
    data: Tensor,
    *,
    batch_size: int = 512,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
    fast: FastPath | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """``(N,)`` float64 bits/dim of every sample of ``data`` under ``flow``: the one scoring loop of flowood.

    The evaluation, every auxiliary flow of the detectors (background, ensemble members, general model,
    embedding flow), the detectors' training samples and the pytorch-ood adapter all score through here, so
    they agree sample for sample for the same seed and batch size.

    Args:
        flow: the model (its device is used).
        data: ``uint8 (N, C, H, W)`` images (the discrete 8-bit likelihood, dequantised with a generator seeded
            by ``seed``) or float ``(N, D)`` vectors (the continuous density).
        batch_size: samples per forward pass (the dequantisation noise depends on it through the generator).
        seed: seed of the dequantisation noise.
        transform: applied to each batch first (a vector run's :class:`~flowood.train.data.Standardizer`).
        fast: precision / memory format (default: fp32, contiguous).
        progress: a label to show a progress bar counting samples (on a terminal only), or ``None``.
    """
    device = next(flow.parameters()).device
    batches: Iterable[Tensor] = sample_batches(data, batch_size, device)
    if progress is not None:
        batches = _counted(batches, int(data.shape[0]), progress)
    return score_bits_per_dim(flow, batches, seed=seed, transform=transform, fast=fast)


def _counted(batches: Iterable[Tensor], total: int, desc: str) -> Iterator[Tensor]:
    """``batches`` with a tqdm bar that counts samples (on a terminal only: logs stay free of redraws).

    The count advances when the next batch is requested, i.e. once the previous one has been scored on the
    CPU; on a GPU that means queued, since scoring itself never waits for the device.
    """
    from tqdm import tqdm

    with tqdm(total=total, unit="img", desc=desc, disable=None, leave=False, dynamic_ncols=True) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))
