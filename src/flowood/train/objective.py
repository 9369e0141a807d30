"""The training objective and the monitoring evaluation: per-sample likelihoods, the loss, bits/dim.

Loss: mean negative log-likelihood in bits per dimension (discrete 8-bit likelihood for images, continuous
density for vectors), or in nats per sample with ``train.loss_scale: nats``; with an OOD batch, the
negative-training objective of the paper's appendix B.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from flowood.flows import NormalizingFlow, bits_per_dim
from flowood.flows.preprocess import LN2
from flowood.train.config import RunConfig
from flowood.train.data import TensorBatches


def nll_bpd(flow: NormalizingFlow, batch: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample ``(log-likelihood nats, bits/dim)`` of a batch (images in [0,1] or vectors)."""
    ll = flow.log_likelihood(batch)
    return ll, bits_per_dim(ll, flow.num_dims)


class LikelihoodObjective(nn.Module):
    """Per-sample log-likelihoods of the training batch and the optional OOD batch in *one* forward
    call, the unit that DistributedDataParallel wraps (it needs exactly one forward per backward)."""

    def __init__(self, flow: NormalizingFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, batch: Tensor, ood_batch: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        ll = self.flow.log_likelihood(batch)
        return ll, (self.flow.log_likelihood(ood_batch) if ood_batch is not None else None)


def unwrap_flow(model: nn.Module) -> NormalizingFlow:
    """The :class:`NormalizingFlow` inside a DDP / :class:`LikelihoodObjective` wrapper."""
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if isinstance(model, LikelihoodObjective):
        model = model.flow
    assert isinstance(model, NormalizingFlow)
    return model


def compute_loss(flow: nn.Module, batch: Tensor, ood_batch: Tensor | None, cfg: RunConfig) -> tuple[Tensor, dict]:
    """Training objective and the quantities to log (``train_bpd``: bits/dim whatever the loss scale).

    The loss is the batch mean of bits/dim or, with ``train.loss_scale: nats``, of the NLL in nats per
    sample (the original's; D·ln 2 times larger, which is what ``grad_clip`` and ``weight_decay`` then act on).
    ``flow`` is a :class:`NormalizingFlow` or a (DDP-wrapped) :class:`LikelihoodObjective`.
    With an OOD batch (negative training, paper appendix B):
    ``loss = 0.5 · (mean NLL_in − w · mean NLL_ood)``, the OOD mean taken over samples whose
    log-likelihood is still above ``data.negative_threshold`` (nats). Log-likelihoods are fp32 (also
    under autocast), so the loss is accumulated in fp32.
    """
    if isinstance(flow, NormalizingFlow):
        ll_in = flow.log_likelihood(batch)
        ll_ood = flow.log_likelihood(ood_batch) if ood_batch is not None else None
    else:
        ll_in, ll_ood = flow(batch, ood_batch)
    num_dims = unwrap_flow(flow).num_dims

    def per_sample_loss(ll: Tensor) -> Tensor:
        return bits_per_dim(ll, num_dims) if cfg.train.loss_scale == "bits_per_dim" else -ll

    loss_in = per_sample_loss(ll_in).mean()
    # In nats the logged bits/dim is the loss times 1/(D ln 2), as it always was (a mean of per-sample bits/dim
    # would differ in the last float32 bits, and checkpoints keep these sums).
    train_bpd = loss_in.detach() * (1.0 if cfg.train.loss_scale == "bits_per_dim" else 1.0 / (num_dims * LN2))
    if ood_batch is None or ll_ood is None:
        return loss_in, {"train_bpd": train_bpd}
    nll_ood = per_sample_loss(ll_ood)
    active = (ll_ood.detach() > cfg.data.negative_threshold).to(nll_ood.dtype)
    ood_term = (nll_ood * active).sum() / active.sum().clamp_min(1.0)
    loss = 0.5 * (loss_in - cfg.data.negative_weight * ood_term)
    return loss, {"train_bpd": train_bpd, "ood_train_bpd": bits_per_dim(ll_ood.detach(), num_dims).mean()}


@torch.no_grad()
def evaluate_bpd(
    flow: NormalizingFlow,
    batches: TensorBatches,
    batch_size: int,
    generator: torch.Generator,
    stop: Callable[[], bool] | None = None,
) -> float | None:
    """Mean bits/dim over a dataset in eval mode (finite values only; NaN if none).

    ``stop`` is asked before each batch; when it says True the evaluation is abandoned and None returned
    (an interrupt, or ``train.max_minutes`` reached).
    """
    was_training = flow.training
    flow.eval()
    flow.set_dequantization_rng(generator)
    total, count = 0.0, 0
    for batch in batches.sequential(batch_size):
        if stop is not None and stop():
            flow.set_dequantization_rng(None)
            flow.train(was_training)
            return None
        _, bpd = nll_bpd(flow, batch)
        finite = torch.isfinite(bpd)
        total += float(bpd[finite].sum())
        count += int(finite.sum())
    flow.set_dequantization_rng(None)
    flow.train(was_training)
    return total / count if count else float("nan")
