"""Promises of the training loop, each tested against an independent computation (``flowood.train.trainer``,
``step``, ``objective``, ``resume``).

Every test here was checked by planting the bug it names and seeing it fail: negative training's sign
and threshold, metrics.csv's bits/dim unit, the non-finite guard on gradients, rollback, exact resume
(scheduler and global RNG included), OOD standardisation, weight-decay groups and per-rank OOD slices.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from flowood.data import load_dataset
from flowood.flows import NormalizingFlow, build_flow
from flowood.train.checkpoint import load_checkpoint
from flowood.train.config import config_from_dict
from flowood.train.data import TensorBatches
from flowood.train.objective import compute_loss
from flowood.train.optim import WEIGHT_NORM_GAIN_SUFFIX, build_optimizer
from flowood.train.trainer import Trainer, resume, train
from tests.train.conftest import tiny_raw

LN2 = math.log(2.0)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _vector_flow(dim: int = 4, seed: int = 0) -> NormalizingFlow:
    torch.manual_seed(seed)
    flow = build_flow("tabular", (dim,), num_couplings=2, hidden_dim=8, num_layers=1, init_zeros=False)
    return flow.eval()


def _bpd(flow: NormalizingFlow, x: torch.Tensor) -> torch.Tensor:
    """Bits/dim computed here from the density in nats: −log p / (D · ln 2)."""
    return -flow.log_prob(x) / (x[0].numel() * LN2)


# --- negative training (paper appendix B) -------------------------------------------------------------


def _negative_cfg(threshold: float, weight: float = 1.0):
    return config_from_dict(tiny_raw(data={"negative_threshold": threshold, "negative_weight": weight}))


def test_negative_training_loss_is_half_in_minus_ood():
    flow = _vector_flow()
    x_in, x_ood = torch.randn(8, 4), 3.0 * torch.randn(6, 4)
    loss, logs = compute_loss(flow, x_in, x_ood, _negative_cfg(-1e9, weight=0.7))
    expected = 0.5 * (_bpd(flow, x_in).mean() - 0.7 * _bpd(flow, x_ood).mean())
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert float(logs["train_bpd"]) == pytest.approx(float(_bpd(flow, x_in).mean().detach()), rel=1e-6)
    # The gradient pushes the OOD likelihood down: one step along −∇loss lowers log p(x_ood).
    loss.backward()
    before = float(flow.log_prob(x_ood).mean().detach())
    with torch.no_grad():
        for p in flow.parameters():
            if p.grad is not None:
                p -= 1e-3 * p.grad
    assert float(flow.log_prob(x_ood).mean().detach()) < before


@torch.no_grad()
def test_negative_training_pushes_only_ood_samples_above_the_threshold():
    flow = _vector_flow()
    x_in = torch.randn(8, 4)
    x_ood = torch.randn(10, 4) * torch.linspace(0.5, 4.0, 10)[:, None]  # spread-out likelihoods
    ll_ood = flow.log_prob(x_ood).detach()
    threshold = float(ll_ood.median())
    above = ll_ood > threshold
    assert 0 < int(above.sum()) < 10
    loss, _ = compute_loss(flow, x_in, x_ood, _negative_cfg(threshold))
    expected = 0.5 * (_bpd(flow, x_in).mean() - _bpd(flow, x_ood[above]).mean())
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    # Every OOD sample already below the threshold: nothing left to push, the loss is the in-term alone.
    loss_none, _ = compute_loss(flow, x_in, x_ood, _negative_cfg(float(ll_ood.max()) + 1.0))
    assert float(loss_none) == pytest.approx(float(0.5 * _bpd(flow, x_in).mean()), rel=1e-6)


def _breast_cancer_raw(**data: Any) -> dict[str, Any]:
    raw = tiny_raw(
        model={"name": "tabular", "num_couplings": 2, "hidden_dim": 8, "num_layers": 1},
        data={
            "dataset": "breast-cancer",
            "classes": [1],
            "ood": ["breast-cancer"],
            "ood_classes": [0],
            "limit": None,
            "test_limit": None,
            "drop_constant": False,
            **data,
        },
        epochs=1,
        lr=1e-2,
        sample_every=0,
    )
    return raw


def test_negative_training_lowers_the_ood_likelihood_end_to_end(tmp_path):
    """Same seed, same steps: with the OOD term the flow gives its OOD training set a lower likelihood."""
    results = {}
    for name, data in (("plain", {}), ("negative", {"negative_dataset": "breast-cancer", "negative_threshold": -1e9})):
        raw = _breast_cancer_raw(**data)
        raw["train"]["epochs"] = 3
        trainer = Trainer(config_from_dict(raw), tmp_path / name, quiet=True)
        trainer.run()
        ood = load_dataset("breast-cancer", "train", classes=[0]).data.float()
        assert trainer.standardizer is not None
        with torch.no_grad():
            results[name] = float(_bpd(trainer.flow.eval(), trainer.standardizer(ood)).mean())
    assert results["negative"] > results["plain"] + 0.5, results


def test_ood_vectors_use_the_in_distribution_statistics(tmp_path):
    raw = _breast_cancer_raw(negative_dataset="breast-cancer", negative_threshold=-1e9)
    trainer = Trainer(config_from_dict(raw), tmp_path / "run", quiet=True)
    benign = load_dataset("breast-cancer", "train", classes=[1]).data.double().numpy()
    malignant = load_dataset("breast-cancer", "train", classes=[0]).data.double().numpy()
    expected = (malignant - benign.mean(0)) / benign.std(0, ddof=1)
    assert trainer.ood_data is not None
    got = trainer.ood_data.data.double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert abs(got.mean()) > 0.3  # malignant tumours are not centred in benign coordinates


def test_each_rank_draws_its_own_slice_of_the_ood_batch():
    """Under torchrun every rank draws the same global OOD batch and keeps its own slice (disjoint)."""
    data = torch.arange(1000, dtype=torch.float32)[:, None]
    batches = TensorBatches(data, "vector", torch.device("cpu"))
    whole = batches.random_batch(8, torch.Generator().manual_seed(5))
    parts = [batches.random_batch(8, torch.Generator().manual_seed(5), shard=(r, 2)) for r in range(2)]
    assert [p.shape[0] for p in parts] == [4, 4]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[0], parts[1])


# --- what metrics.csv records ------------------------------------------------------------------------


def test_metrics_test_bpd_is_nats_over_dims_times_ln2(tmp_path, tiny_config):
    cfg = tiny_config(epochs=1, sample_every=0)
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.run()
    logged = float(_rows(tmp_path / "run")[-1]["test_bpd"])
    images = load_dataset("fashionmnist-mini", "test", limit=cfg.data.test_limit, seed=cfg.seed).data.float() / 255
    assert images.shape[0] <= cfg.train.eval_batch_size  # one evaluation batch: the same noise draw as below
    flow = trainer.flow.eval()
    flow.set_dequantization_rng(torch.Generator().manual_seed(cfg.seed + 2))
    with torch.no_grad():
        nats = flow.log_likelihood(images)
    expected = float((-nats / (images[0].numel() * LN2)).mean())
    assert logged == pytest.approx(expected, abs=2e-5)


# --- the non-finite guard and rollback ---------------------------------------------------------------


def _nan_gradients_at(flow: nn.Module, bad_backwards: set[int]) -> None:
    """Make one parameter's gradient NaN on the given backward passes (1-based); the loss stays finite."""
    param = next(p for p in flow.parameters() if p.requires_grad)
    calls = {"n": 0}

    def hook(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("nan") if calls["n"] in bad_backwards else grad

    param.register_hook(hook)


def test_nonfinite_gradients_with_a_finite_loss_are_caught(tmp_path, tiny_config):
    trainer = Trainer(tiny_config(nonfinite="skip", epochs=1, sample_every=0), tmp_path / "run", quiet=True)
    _nan_gradients_at(trainer.flow, {2, 3})
    result = trainer.run()
    assert result.nonfinite_steps == 2
    assert all(torch.isfinite(v).all() for v in trainer.flow.state_dict().values() if v.is_floating_point())
    assert math.isfinite(result.train_bpd)


def test_rollback_restores_the_model_and_optimizer(tmp_path, tiny_config):
    # The first good state is taken before step 1, so a failure at step 3 returns to the initial weights.
    trainer = Trainer(tiny_config(nonfinite="rollback", max_steps=3, sample_every=0), tmp_path / "run", quiet=True)
    initial = {k: v.detach().clone() for k, v in trainer.flow.state_dict().items()}
    _nan_gradients_at(trainer.flow, {3})
    trainer.run()
    assert trainer.nonfinite_steps == 1 and trainer.lr_scale == 0.5
    state = trainer.flow.state_dict()
    assert all(torch.equal(state[k], v) for k, v in initial.items())
    assert trainer.optimizer.state_dict()["state"] == {}  # Adam's moments are those of step 0: none


# --- exact resume: every piece of state -------------------------------------------------------------


@pytest.fixture
def global_rng_consumer() -> Iterator[None]:
    """Each flow forward draws from torch's global RNG, like dropout or a user's augmentation would;
    without this nothing in the loop reads the global RNG and its restore could not be observed."""

    def draw(module: nn.Module, args: Any) -> None:
        if isinstance(module, NormalizingFlow):
            torch.rand(())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(draw)
    yield
    handle.remove()


def _assert_same(a: Any, b: Any, where: str = "checkpoint") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_restores_every_piece_of_state(tmp_path, tiny_config, global_rng_consumer):
    def cfg(epochs: int):
        c = tiny_config(epochs=epochs, sample_every=0)
        c.data.limit, c.data.test_limit = 64, 32  # two steps per epoch
        return c

    train(cfg(2), tmp_path / "full", quiet=True)
    after_full = torch.get_rng_state()
    train(cfg(1), tmp_path / "split", quiet=True)
    torch.manual_seed(1234)  # whatever the process did in between must not matter
    resume(tmp_path / "split", quiet=True, epochs=2)
    assert torch.equal(torch.get_rng_state(), after_full)  # global RNG restored, then advanced identically
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    full.pop("elapsed"), split.pop("elapsed")
    assert split["scheduler"]["last_epoch"] == full["global_step"] == 4
    _assert_same(full, split)


# --- optimiser parameter groups ------------------------------------------------------------------------


def test_weight_decay_reaches_only_weight_norm_gains_in_the_optimizer(tmp_path):
    raw = tiny_raw(weight_decay=0.1)
    trainer = Trainer(config_from_dict(raw), tmp_path / "run", quiet=True)
    names = {id(p): n for n, p in trainer.flow.named_parameters()}
    decay = {names[id(p)]: g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert set(decay) == set(names.values())
    gains = [n for n in decay if n.endswith(WEIGHT_NORM_GAIN_SUFFIX)]
    assert gains and all(decay[n] == 0.1 for n in gains)
    assert all(decay[n] == 0.0 for n in decay if n not in gains)


def test_adam_step_with_zero_gradients_moves_only_decayed_parameters():
    # Random st-net outputs (init_zeros=False): a zero gain would not move under weight decay either.
    flow = build_flow("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, mid_channels=4, init_zeros=False)
    cfg = config_from_dict(tiny_raw(weight_decay=0.1, lr=1e-2)).train
    optimizer = build_optimizer(flow, cfg)
    before = {n: p.detach().clone() for n, p in flow.named_parameters()}
    for p in flow.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    moved = {n for n, p in flow.named_parameters() if not torch.equal(p, before[n])}
    gains = {n for n in before if n.endswith(WEIGHT_NORM_GAIN_SUFFIX)}
    assert gains and moved == gains
