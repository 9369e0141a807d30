"""Host synchronisations, counted: one per training step (the whole loop), none in the forward pass or in scoring.

A device→host read (``.item()``, ``bool(tensor)``, ``float(tensor)``, data-dependent shapes) dispatches
``aten._local_scalar_dense`` or one of the ops below; on a GPU each one drains the launch queue. The
original code synced once per coupling layer (``torch.isnan(...).any()``). Counting the ops on the CPU
proves the property without a GPU.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import flowood
import flowood.train.trainer as trainer_mod
from flowood.ood.likelihood import iter_bits_per_dim
from flowood.perf import FastPath
from flowood.train.config import config_from_dict
from flowood.train.trainer import Trainer
from tests.train.conftest import tiny_raw

SYNC_OPS = {"_local_scalar_dense", "is_nonzero", "item", "equal", "nonzero", "masked_select", "unique"}


class CountSyncs(TorchDispatchMode):
    """Counts the dispatched ops that read device data on the host, and ``Tensor.tolist`` calls.

    ``tolist`` copies a whole tensor to the host in one read (on a GPU one sync), but on the CPU it reads
    memory directly and dispatches nothing, so it is counted where it is called.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self._tolist = torch.Tensor.tolist

    def __enter__(self) -> CountSyncs:
        original = self._tolist

        def counted_tolist(tensor: torch.Tensor) -> Any:
            self.counts["tolist"] += 1
            return original(tensor)

        torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch.Tensor.tolist = self._tolist  # type: ignore[method-assign]
        super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


MODELS = {
    "realnvp": {"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4},
    "glow": {"name": "glow", "num_scales": 2, "num_steps": 2, "mid_channels": 4, "num_blocks": 1},
}


@pytest.mark.parametrize(
    ("model", "train", "negative"),
    [
        ("realnvp", {}, False),
        ("glow", {}, False),
        ("realnvp", {"precision": "bf16", "channels_last": True}, False),
        ("realnvp", {}, True),
    ],
    ids=["realnvp", "glow-actnorm", "realnvp-bf16", "negative-training"],
)
def test_one_host_sync_per_training_step(tmp_path, model, train, negative):
    data = {"negative_dataset": "mnist-mini", "negative_threshold": -1e9} if negative else None
    cfg = config_from_dict(tiny_raw(model=MODELS[model], data=data, epochs=1, sample_every=0, **train))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    batches = trainer.train_data.epoch(32, 0, 0)
    trainer.flow.set_dequantization_rng(trainer.dequant_gen)
    for batch in batches:
        ood = trainer.ood_data.random_batch(32, trainer.ood_gen) if trainer.ood_data is not None else None
        with CountSyncs() as syncs:
            trainer.train_step(batch, ood)
        # One read: the finite check of loss and gradient norm, with the values the loop logs.
        assert syncs.counts == {"tolist": 1}, syncs.counts


@pytest.mark.parametrize("negative", [False, True], ids=["plain", "negative-training"])
def test_training_loop_reads_the_device_once_per_step(tmp_path, monkeypatch, negative):
    # The whole loop, not just train_step: what it logs (bits/dim, the OOD term) must come from that read.
    data = {"negative_dataset": "mnist-mini", "negative_threshold": -1e9} if negative else None
    cfg = config_from_dict(tiny_raw(data=data, epochs=2, sample_every=0, checkpoint_every=0))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    monkeypatch.setattr(trainer_mod, "evaluate_bpd", lambda *args: 5.0)  # per-epoch monitoring, not the step
    with CountSyncs() as syncs:
        result = trainer.run()
    assert result.steps == 6 and syncs.counts == {"tolist": 6}, syncs.counts


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward_and_inverse_have_no_host_sync(name):
    options = dict(MODELS[name])
    flow = flowood.build_flow(options.pop("name"), (1, 16, 16), **options)
    x = torch.rand(8, 1, 16, 16)
    flow.log_likelihood_8bit(x)  # ActNorm's data-dependent initialisation happens once, here
    with CountSyncs() as syncs:
        loss = -flow.log_likelihood_8bit(x).mean()
        loss.backward()
        flow.eval()
        with torch.no_grad():
            flow.sample(4)
    assert syncs.total == 0, syncs.counts


def test_tabular_flow_has_no_host_sync():
    flow = flowood.build_flow("tabular", (6,), num_couplings=4, hidden_dim=16, num_layers=2)
    with CountSyncs() as syncs:
        flow.log_prob(torch.randn(16, 6)).mean().backward()
    assert syncs.total == 0, syncs.counts


def test_scoring_batches_have_no_host_sync():
    flow = flowood.build_flow("realnvp", (1, 16, 16), **{k: v for k, v in MODELS["realnvp"].items() if k != "name"})
    batches = [torch.rand(8, 1, 16, 16) for _ in range(3)]
    with CountSyncs() as syncs:
        scores = list(iter_bits_per_dim(flow, batches, fast=FastPath(torch.device("cpu"), "bf16")))
    assert len(scores) == 3 and syncs.total == 0, syncs.counts
