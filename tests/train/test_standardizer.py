"""Vector preprocessing: statistics from the in-distribution training split only, applied to every set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.errors import ConfigError
from flowood.experiments.evaluate import evaluate_run
from flowood.experiments.runs import load_run
from flowood.train.config import config_from_dict
from flowood.train.data import Standardizer
from flowood.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is as fast, shared CPUs stay free


def test_standardizer_steps_and_roundtrip(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 6, generator=g) * torch.tensor([1.0, 10.0, 100.0, 0.1, 5.0, 1.0])
    x[:, 3] = 0.25  # constant
    st = Standardizer.fit(x, transform="log", log_offset=0.01, drop_constant=True)
    assert st.keep is not None and st.keep.tolist() == [0, 1, 2, 4, 5]
    z = st(x)
    assert z.shape == (500, 5) and st.in_dim == 6 and st.out_dim == 5
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(z.std(0), torch.ones(5), atol=1e-4)
    ref = (torch.log(x[:, [0, 1, 2, 4, 5]] + 0.01) - torch.log(x[:, [0, 1, 2, 4, 5]] + 0.01).mean(0)) / torch.log(
        x[:, [0, 1, 2, 4, 5]] + 0.01
    ).std(0)
    assert torch.allclose(z, ref, atol=1e-4)
    st.save(tmp_path / "standardize.json")
    back = Standardizer.load(tmp_path / "standardize.json")
    assert torch.equal(back(x), z)


def test_pca_whitening(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 10, generator=g) @ torch.randn(10, 10, generator=g)
    st = Standardizer.fit(x, pca_dim=4)
    z = st(x)
    assert z.shape == (800, 4)
    cov = z.T @ z / (z.shape[0] - 1)
    # Decorrelated, unit variance up to the eigenvalue floor: λ / (λ + 1e-3).
    assert torch.allclose(cov - torch.diag(torch.diagonal(cov)), torch.zeros(4, 4), atol=1e-4)
    assert ((torch.diagonal(cov) > 0.99) & (torch.diagonal(cov) <= 1.0 + 1e-4)).all()
    full = Standardizer.fit(x, whiten=True)
    assert full.out_dim == 10 and full(x).shape == (800, 10)
    st.save(tmp_path / "s.json")
    assert (tmp_path / "s_projection.npy").is_file()
    assert torch.allclose(Standardizer.load(tmp_path / "s.json")(x), z)
    with pytest.raises(ConfigError, match="pca_dim"):
        Standardizer.fit(x, pca_dim=11)


def test_l2_keeps_directions_only_and_does_not_rescale_features(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(400, 8, generator=g) * torch.tensor([1.0, 50.0, 0.1, 3.0, 1.0, 9.0, 0.5, 2.0])
    st = Standardizer.fit(x, transform="l2")
    unit = x / x.norm(dim=1, keepdim=True)
    # Centred unit vectors, no per-feature division: the angles between centred vectors are those of unit.
    assert torch.allclose(st(x), unit - unit.mean(0), atol=1e-6)
    # Only the direction counts: a vector and its multiples get the same coordinates.
    assert torch.allclose(st(x[:5] * 7.5), st(x[:5]), atol=1e-6)
    st.save(tmp_path / "s.json")
    assert torch.allclose(Standardizer.load(tmp_path / "s.json")(x), st(x), atol=1e-6)


def test_whitening_floor_is_relative_to_the_features_scale() -> None:
    # Unit vectors in 200-D have per-feature variances near 1/200; an absolute eigenvalue floor of 1e-3 would
    # shrink their whitened variances to about 0.8. Relative to the mean eigenvalue, they stay near 1.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3000, 200, generator=g) + 3.0
    st = Standardizer.fit(x, transform="l2", pca_dim=50)
    var = st(x).var(0)
    assert var.shape == (50,) and float((var - 1).abs().max()) < 0.01
    # Standardised features are unchanged by the rule: their mean eigenvalue is 1.
    plain = Standardizer.fit(x, pca_dim=50)
    assert float((plain(x).var(0) - 1).abs().max()) < 0.01


def test_evaluate_standardises_ood_with_in_distribution_statistics(tmp_path: Path, embedding_files) -> None:
    ind, ood = embedding_files(dim=8, n_train=256, n_test=64)
    cfg = config_from_dict(
        {
            "model": {"name": "tabular", "num_couplings": 2, "hidden_dim": 16, "num_layers": 1},
            "data": {"dataset": f"embeddings:{ind}", "ood": [f"embeddings:{ood}"], "transform": "log"},
            "train": {"epochs": 2, "batch_size": 64, "lr": 1e-3, "sample_every": 0},
            "device": "cpu",
        }
    )
    train(cfg, tmp_path / "run", quiet=True)
    report = evaluate_run(tmp_path / "run", device="cpu").report
    scores = np.load(tmp_path / "run" / "scores.npz")

    # Recompute by hand: log transform, drop the constant feature, standardise with *training* statistics.
    z_train = np.log(np.load(ind)["train_embeddings"].astype(np.float64).clip(0) + 0.01)[:, 1:]
    mean, std = z_train.mean(0), z_train.std(0, ddof=1)
    run = load_run(tmp_path / "run")
    for name, path, split in ((cfg.data.dataset, ind, "test"), (f"embeddings:{ood}", ood, "test")):
        x = np.log(np.load(path)[f"{split}_embeddings"].astype(np.float64).clip(0) + 0.01)[:, 1:]
        z = torch.tensor((x - mean) / std, dtype=torch.float32)
        with torch.no_grad():
            bpd = -run.flow.log_prob(z).double().numpy() / (7 * math.log(2))
        np.testing.assert_allclose(scores[name], bpd, rtol=1e-4, atol=1e-4)
    # OOD statistics were *not* used: standardising OOD with its own stats would centre it at 0.
    assert float(np.mean(scores[f"embeddings:{ood}"])) > float(np.mean(scores[cfg.data.dataset]))
    assert report.ood[f"embeddings:{ood}"].metrics["log_likelihood"].auroc > 0.9


def test_embedding_pca_dim_is_capped_to_the_features_the_standardizer_keeps() -> None:
    from flowood.experiments.aux_models import capped_pca_dim
    from flowood.train.config import DataConfig

    g = torch.Generator().manual_seed(3)
    x = torch.rand(200, 12, generator=g)
    x[:, [2, 7]] = 0.0  # dead features: drop_constant removes them, leaving 10
    data = DataConfig(transform="l2", pca_dim=512, drop_constant=True)
    cap = capped_pca_dim(data, x)
    assert cap == 9  # below the 10 kept features (l2 leaves a null direction)
    Standardizer.fit(x, transform="l2", drop_constant=True, pca_dim=cap)  # fits, where 11 would not
    assert capped_pca_dim(DataConfig(transform="l2", pca_dim=512), x[:6]) == 5  # fewer vectors than features
    assert capped_pca_dim(DataConfig(transform="l2", pca_dim=4), x) == 4  # a small pca_dim is kept
    assert capped_pca_dim(DataConfig(transform="l2"), x) is None
