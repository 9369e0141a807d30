"""Every detector end to end (``get_detector`` → ``fit`` → ``score`` → metrics) on small problems whose answer
is known: an OOD set the detector must rank below the in-distribution test set.

Auxiliary models are stand-ins with known log-likelihoods (the real training and caching is tested in
tests/scores/); flow-statistic detectors use a real multi-scale RealNVP whose couplings start as the
identity, so that ``z`` is the logit-space image and images can be made from chosen latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flowood.errors import ConfigError
from flowood.flows import build_flow
from flowood.ood import detection_metrics
from flowood.ood.detectors import (
    Samples,
    available_detectors,
    compressed_bits_per_dim,
    flow_statistics,
    get_detector,
)

SHAPE = (1, 8, 8)
D = 64
LN2 = math.log(2.0)


def auroc(det, in_s: Samples, ood_s: Samples) -> float:
    return detection_metrics(det.score(in_s), det.score(ood_s))["auroc"]


@dataclass
class KnownFlow:
    """An auxiliary model with a known log-likelihood: ``nats_by_key[samples.key]``."""

    nats_by_key: dict[str, np.ndarray]
    directory: Path = Path("known")

    def log_likelihood(self, samples: Samples) -> np.ndarray:
        return np.asarray(self.nats_by_key[samples.key], dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.directory)}


@dataclass
class FakeContext:
    """A :class:`~flowood.ood.detectors.FitContext` with chosen training samples and auxiliary models."""

    flow: Any = None
    train: Samples | None = None
    background: KnownFlow | None = None
    members: list[KnownFlow] = field(default_factory=list)
    general: KnownFlow | None = None
    embedding: KnownFlow | None = None
    feats: dict[str, np.ndarray] = field(default_factory=dict)
    num_dims: int = D
    is_image: bool = True
    in_dataset: str = "in"
    evaluated: list[str] = field(default_factory=lambda: ["ood"])
    batch_size: int = 64
    input_transform: Any = None
    asked: list[Any] = field(default_factory=list)

    def train_samples(self, limit):
        assert self.train is not None
        return self.train

    def background_flow(self, mutation_rate, copies):
        self.asked.append(("background", mutation_rate, copies))
        return self.background

    def ensemble_member(self, index):
        return self.members[index]

    def general_flow(self, dataset):
        self.asked.append(("general", dataset))
        return self.general

    def embedding_flow(self, extractor, size, train_limit, test_limit):
        return self.embedding

    def features(self, samples, extractor, size, limit=None):
        return self.feats["train" if samples is None else samples.key]

    def log(self, message):
        pass


def samples(key: str, bpd, data=None, n=None) -> Samples:
    bpd = np.asarray(bpd, dtype=np.float64)
    if data is None:
        data = torch.zeros((len(bpd), *SHAPE), dtype=torch.uint8)
    return Samples(key, data, "image", bpd, noise_seed=3)


RNG = np.random.default_rng(0)


def near(mean: float, n: int = 200, sd: float = 0.05) -> np.ndarray:
    return mean + sd * RNG.standard_normal(n)


# ------------------------------------------------------------------------------------------- model-based ratios


def test_likelihood_ratio_is_model_minus_background():
    # The paper's failure: OOD is *more* likely under the model (2 vs 3 bits/dim), but the background explains it
    # far better still; the ratio model - background must rank it below the in-distribution set.
    in_s, ood = samples("in", near(3.0)), samples("ood", near(2.0))
    bg = KnownFlow({"in": -near(3.5) * D * LN2, "ood": -near(1.0) * D * LN2})
    det = get_detector("likelihood_ratio", mutation_rate=0.3)
    ctx = FakeContext(background=bg)
    det.fit(ctx)
    assert ctx.asked == [("background", 0.3, 1)]
    assert detection_metrics(-in_s.bpd, -ood.bpd)["auroc"] < 0.01  # raw likelihood fails here
    assert auroc(det, in_s, ood) > 0.99
    np.testing.assert_allclose(det.score(in_s), -in_s.bpd * D * LN2 - bg.nats_by_key["in"])


def test_general_likelihood_ratio_direction_and_refusals():
    in_s, ood = samples("in", near(3.0)), samples("ood", near(2.0))
    general = KnownFlow({"in": -near(3.5) * D * LN2, "ood": -near(1.0) * D * LN2})
    det = get_detector("general_likelihood_ratio", general_dataset="broad")
    ctx = FakeContext(general=general)
    det.fit(ctx)
    assert ctx.asked == [("general", "broad")]
    assert auroc(det, in_s, ood) > 0.99
    with pytest.raises(ConfigError, match="is an OOD set under evaluation"):
        get_detector("general_likelihood_ratio", general_dataset="ood").fit(FakeContext(general=general))
    with pytest.raises(ConfigError, match="--general-dataset"):
        get_detector("general_likelihood_ratio").fit(FakeContext(general=general))
    with pytest.raises(ConfigError, match="in-distribution dataset itself"):
        get_detector("general_likelihood_ratio", general_dataset="in").fit(FakeContext(general=general))


def test_waic_works_on_nats():
    # Members agree on the in-distribution set (higher log p); on OOD they agree on a lower log p.
    # In bits/dim the mean term's sign flips, so WAIC computed on bits/dim ranks OOD first.
    members = [KnownFlow({"in": near(-1000.0, sd=5), "ood": near(-3000.0, sd=5)}) for _ in range(3)]
    det = get_detector("waic", ensemble_size=3)
    det.fit(FakeContext(members=members))
    in_s, ood = samples("in", near(3.0)), samples("ood", near(3.0))
    assert auroc(det, in_s, ood) > 0.99
    with pytest.raises(ConfigError, match="at least 2"):
        get_detector("waic", ensemble_size=1).fit(FakeContext(members=members))


# ------------------------------------------------------------------------------------------- compression


def _noise_images(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=(n, *SHAPE), dtype=np.uint8))


def _flat_images(n: int) -> torch.Tensor:
    return torch.full((n, *SHAPE), 40, dtype=torch.uint8)


def test_input_complexity_is_compressed_size_minus_model_bpd():
    # In-distribution: incompressible images the model finds hard (5 bits/dim); OOD: flat images the model
    # finds *easy* (2 bits/dim): only the compressor's share flips the ranking.
    in_s = samples("in", near(5.0, 50), _noise_images(50, 1))
    ood = samples("ood", near(2.0, 50), _flat_images(50))
    det = get_detector("input_complexity")
    det.fit(FakeContext())
    assert auroc(det, in_s, ood) > 0.99
    np.testing.assert_allclose(det.score(in_s), compressed_bits_per_dim(in_s.images()) - in_s.bpd)


def test_compressed_size_alone():
    in_s = samples("in", near(5.0, 50), _noise_images(50, 1))
    ood = samples("ood", near(5.0, 50), _flat_images(50))
    det = get_detector("compressed_size")
    det.fit(FakeContext())
    assert auroc(det, in_s, ood) == 1.0
    assert det.facts()["mean_compressed_bits_per_dim"]["in"] > 8.0  # header included: noise does not compress


# ------------------------------------------------------------------------------------------- typicality


def test_typicality_catches_too_likely_and_too_unlikely_batches():
    train = samples("train", near(3.0, 400, sd=0.3))
    det = get_detector("typicality", typicality_m=5, typicality_batches=50)
    det.fit(FakeContext(train=train))
    in_s = samples("in", near(3.0, 200, sd=0.3))
    for mean in (2.0, 4.0):  # an OOD set that is too likely and one that is too unlikely
        ood = samples("ood", near(mean, 200, sd=0.3))
        assert auroc(det, in_s, ood) > 0.99
    assert det.score(in_s).shape == (50,)
    assert det.facts()["train_mean_bits_per_dim"] == pytest.approx(train.bpd.mean())


def test_typicality_m1_per_sample():
    train = samples("train", near(3.0, 400, sd=0.1))
    det = get_detector("typicality_m1")
    det.fit(FakeContext(train=train))
    in_s = samples("in", near(3.0, 200, sd=0.1))
    for mean in (2.0, 4.0):
        assert auroc(det, in_s, samples("ood", near(mean, 200, sd=0.1))) > 0.99
    assert det.score(in_s).shape == (200,)


# ------------------------------------------------------------------------------------------- embeddings


def test_embedding_likelihood_returns_nats():
    emb = KnownFlow({"in": near(-100.0, sd=2), "ood": near(-400.0, sd=2)})
    det = get_detector("embedding_likelihood")
    det.fit(FakeContext(embedding=emb))
    assert auroc(det, samples("in", near(3)), samples("ood", near(3))) > 0.99


def test_embedding_gaussian_uses_the_full_covariance():
    # Correlated features: OOD points lie off the correlation axis with the same per-feature variance, so a
    # diagonal Gaussian could not separate them; a full-covariance one does.
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])

    def corr(n):
        return rng.multivariate_normal([0, 0], cov, size=n)

    off = rng.standard_normal((200, 2)) * np.sqrt(np.diag(cov))
    off[:, 1] = -np.sign(off[:, 0]) * np.abs(off[:, 1])  # anti-correlated
    feats = {"train": corr(1000), "in": corr(200), "ood": off}
    det = get_detector("embedding_gaussian")
    det.fit(FakeContext(feats=feats))
    assert auroc(det, samples("in", near(3)), samples("ood", near(3))) > 0.9


# ------------------------------------------------------------------------------------------- flow statistics


@pytest.fixture(scope="module")
def identity_flow():
    """A 2-scale RealNVP whose couplings are the identity at initialisation (zero-initialised st-nets)."""
    torch.manual_seed(0)
    flow = build_flow("realnvp", SHAPE, num_scales=2, num_blocks=1, mid_channels=4).eval()
    x = torch.randn(4, *SHAPE)
    z, logdet = flow(x)
    assert torch.allclose(z, x, atol=1e-6) and torch.allclose(logdet, torch.zeros(4), atol=1e-6)
    return flow


def images_from_latent(z: torch.Tensor, alpha: float = 0.9) -> torch.Tensor:
    """8-bit images whose preprocessed (logit-space) value is ``z`` (up to quantisation)."""
    x = (torch.sigmoid(z) - (1 - alpha) / 2) / alpha
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def latent_set(key: str, z: torch.Tensor, flow) -> Samples:
    data = images_from_latent(z)
    st = flow_statistics(flow, data, kind="image", seed=3)
    bpd = -st.log_likelihood / (D * LN2)
    return Samples(key, data, "image", bpd, noise_seed=3)


def finest_mask(flow) -> torch.Tensor:
    """``(1, *SHAPE)`` boolean mask of the latent entries that form the finest scale's piece."""
    idx = torch.arange(D, dtype=torch.float32).reshape(1, *SHAPE)
    finest = flow.split_latent(idx)[0].reshape(-1).long()
    mask = torch.zeros(D, dtype=torch.bool)
    mask[finest] = True
    return mask.reshape(1, *SHAPE)


def test_flow_statistics_add_up_to_the_likelihood(identity_flow):
    torch.manual_seed(1)
    # Perturb the couplings so the per-scale log-dets are not zero.
    flow = build_flow("realnvp", SHAPE, num_scales=2, num_blocks=1, mid_channels=4, init_zeros=False).eval()
    data = torch.randint(0, 256, (10, *SHAPE), dtype=torch.uint8)
    st = flow_statistics(flow, data, kind="image", seed=5, batch_size=4)
    gen = torch.Generator().manual_seed(5)
    flow.set_dequantization_rng(gen)
    with torch.inference_mode():
        ll = torch.cat([flow.log_likelihood(data[i : i + 4].float() / 255) for i in range(0, 10, 4)])
    flow.set_dequantization_rng(None)
    np.testing.assert_allclose(st.log_likelihood, ll.double().numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        st.scale_log_likelihood.sum(1) + st.preprocess_logdet, st.log_likelihood, rtol=1e-9, atol=1e-6
    )
    assert st.num_scales == 2 and st.scale_dims.sum() == D
    assert np.abs(st.flow_logdet).min() > 0  # a real log-det, split between the scales


def test_per_scale_ranks_images_likely_only_at_the_finest_scale_as_ood(identity_flow):
    torch.manual_seed(2)
    mask = finest_mask(identity_flow)
    in_s = latent_set("in", torch.randn(200, *SHAPE), identity_flow)
    z = torch.randn(200, *SHAPE) * 0.6
    z[:, ~mask[0]] = torch.randn(200, int((~mask).sum())) * 1.4  # coarse scale unlikely, finest too likely
    ood = latent_set("ood", z, identity_flow)
    det = get_detector("per_scale")
    det.fit(FakeContext(flow=identity_flow))
    assert auroc(det, in_s, ood) > 0.95
    comps = det.components(in_s)
    assert set(comps) == {"scale_0", "scale_1"} and comps["scale_0"].shape == (200,)
    vector = build_flow("realnvp-cycle-mask", SHAPE, num_blocks=1, mid_channels=4)
    with pytest.raises(ConfigError, match="multi-scale"):
        get_detector("per_scale").fit(FakeContext(flow=vector))


def test_latent_typicality_per_scale_and_combined(identity_flow):
    torch.manual_seed(3)
    in_s = latent_set("in", torch.randn(200, *SHAPE), identity_flow)
    det = get_detector("latent_typicality")
    det.fit(FakeContext(flow=identity_flow))
    for scale in (0.3, 1.8):  # latents too concentrated and too spread out
        ood = latent_set("ood", torch.randn(200, *SHAPE) * scale, identity_flow)
        assert auroc(det, in_s, ood) > 0.99
        comps = det.components(ood)
        assert set(comps) == {"scale_0", "scale_1"}
        assert detection_metrics(det.components(in_s)["scale_1"], comps["scale_1"])["auroc"] > 0.9


@pytest.mark.parametrize("estimator", ["kde", "ocsvm"])
def test_dose_fits_on_training_statistics(identity_flow, estimator):
    torch.manual_seed(4)
    train = latent_set("train", torch.randn(300, *SHAPE), identity_flow)
    in_s = latent_set("in", torch.randn(200, *SHAPE), identity_flow)
    det = get_detector("dose", dose_estimator=estimator)
    det.fit(FakeContext(flow=identity_flow, train=train))
    for scale in (0.3, 1.8):
        ood = latent_set("ood", torch.randn(200, *SHAPE) * scale, identity_flow)
        assert auroc(det, in_s, ood) > 0.99
    if estimator == "kde":
        assert det.facts()["bandwidth"] > 0 and det.facts()["train_samples"] == 300


def test_every_detector_has_a_test_here():
    tested = {
        "log_likelihood",
        "bits_per_dim",
        "likelihood_ratio",
        "general_likelihood_ratio",
        "waic",
        "input_complexity",
        "compressed_size",
        "typicality",
        "typicality_m1",
        "embedding_likelihood",
        "embedding_gaussian",
        "per_scale",
        "latent_typicality",
        "dose",
    }
    assert set(available_detectors()) == tested


def test_log_likelihood_and_bits_per_dim_rank_by_likelihood():
    for name in ("log_likelihood", "bits_per_dim"):
        det = get_detector(name)
        det.fit(FakeContext())
        assert auroc(det, samples("in", near(2.0)), samples("ood", near(3.0))) > 0.99


def test_unknown_setting_and_unfitted_score_are_errors():
    with pytest.raises(ConfigError, match="does not take"):
        get_detector("waic", mutation_rate=0.1)
    with pytest.raises(ConfigError, match="unknown score"):
        get_detector("wiac")
    with pytest.raises(RuntimeError, match="fit"):
        get_detector("typicality_m1").score(samples("in", near(2.0)))
