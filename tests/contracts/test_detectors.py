"""The detector registry's contract: every registered detector (:data:`flowood.ood.detectors.DETECTORS`) passes
the same checks on a fake :class:`~flowood.ood.detectors.FitContext` (protects ``ood/detectors/base.py`` and
every detector module).

Each detector is fitted and run on a *scenario*: an in-distribution test set, a set shifted in what that
detector measures (so its answer is unambiguous), and a fit context whose auxiliary models have known
log-likelihoods. A registered detector without a case in :data:`CASES` fails
:func:`test_every_registered_detector_has_a_case`, so a new detector cannot skip the contract. Checked for
each: the score's shape (one value per sample, or per batch for per-batch detectors), float64, finite on finite
input, the same scores from a second detector with the same settings, JSON-serialisable facts and settings,
and the in-distribution set ranked above the shifted one (AUROC > 0.9). Each detector's direction through the
real auxiliary models is pinned end to end in ``tests/experiments/test_detector_directions.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pytest
import torch

from flowood.ood import detection_metrics
from flowood.ood.detectors import DETECTORS, Detector, Samples, get_detector
from tests.ood.detectors.fakes import (
    LN2,
    SHAPE,
    D,
    FakeContext,
    KnownFlow,
    finest_mask,
    identity_flow,
    latent_set,
    near,
    rng,
    samples,
)


@dataclass
class Scenario:
    """An in-distribution set, a set shifted in what the detector measures, and the fit context."""

    settings: dict[str, Any]
    in_set: Samples
    shifted: Samples
    context: FakeContext


# Each builder returns a fresh scenario (detectors cache per-set values on Samples).


def _likelihood_sets() -> Scenario:
    return Scenario({}, samples("in", near(2.0)), samples("ood", near(3.0, seed=1)), FakeContext())


def _ratio(kind: str) -> Callable[[], Scenario]:
    def build() -> Scenario:
        # The paper's failure: the shifted set is *more* likely under the model, the other model explains it
        # better still; the ratio must rank it below the in-distribution set.
        other = KnownFlow({"in": -near(3.5, seed=2) * D * LN2, "ood": -near(1.0, seed=3) * D * LN2})
        ctx = FakeContext(background=other, general=other)
        settings = {"dataset": "uniform-noise"} if kind == "general" else {"mutation_rate": 0.3}
        return Scenario(settings, samples("in", near(3.0)), samples("ood", near(2.0, seed=1)), ctx)

    return build


def _waic() -> Scenario:
    members = [KnownFlow({"in": near(-1000.0, sd=5, seed=k), "ood": near(-3000.0, sd=5, seed=9 + k)}) for k in range(3)]
    return Scenario(
        {"ensemble_size": 3}, samples("in", near(3.0)), samples("ood", near(3.0, seed=1)), FakeContext(members=members)
    )


def _noise_images(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(rng(seed).integers(0, 256, size=(n, *SHAPE), dtype=np.uint8))


def _flat_images(n: int) -> torch.Tensor:
    return torch.full((n, *SHAPE), 40, dtype=torch.uint8)


def _compression() -> Scenario:
    # In-distribution: incompressible images the model finds hard (5 bits/dim); shifted: flat images the model
    # finds *easy* (2 bits/dim): the compressor's share decides.
    return Scenario(
        {},
        samples("in", near(5.0, 50), _noise_images(50, 1)),
        samples("ood", near(2.0, 50, seed=1), _flat_images(50)),
        FakeContext(),
    )


def _typicality(m: int | None) -> Callable[[], Scenario]:
    def build() -> Scenario:
        train = samples("train", near(3.0, 400, sd=0.3, seed=5))
        settings = {"m": m, "batches": 50} if m else {}
        # Too likely: the shifted set's NLL is below the training mean (the likelihood's failure mode).
        return Scenario(
            settings,
            samples("in", near(3.0, 200, sd=0.3)),
            samples("ood", near(2.0, 200, sd=0.3, seed=1)),
            FakeContext(train=train),
        )

    return build


def _embedding_flow() -> Scenario:
    emb = KnownFlow({"in": near(-100.0, sd=2), "ood": near(-400.0, sd=2, seed=1)})
    return Scenario({}, samples("in", near(3)), samples("ood", near(3, seed=1)), FakeContext(embedding=emb))


def _embedding_gaussian() -> Scenario:
    # Correlated features; the shifted points lie off the correlation axis with the same per-feature spread.
    g = rng(1)
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    off = g.standard_normal((200, 2))
    off[:, 1] = -np.sign(off[:, 0]) * np.abs(off[:, 1])
    feats = {
        "train": g.multivariate_normal([0, 0], cov, size=1000),
        "in": g.multivariate_normal([0, 0], cov, size=200),
        "ood": off,
    }
    return Scenario({}, samples("in", near(3)), samples("ood", near(3, seed=1)), FakeContext(feats=feats))


def _embedding_gaussian_coordinates() -> Scenario:
    # The same geometry in the flow's coordinates; the raw features say nothing (the detector must read coords).
    scenario = _embedding_gaussian()
    coords = scenario.context.feats
    flat = {key: np.zeros_like(v) for key, v in coords.items()}
    return Scenario({}, scenario.in_set, scenario.shifted, FakeContext(feats=flat, coords=coords))


def _clusters(centres: np.ndarray, n: int, seed: int, sd: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around each row of ``centres`` (8-D) and their cluster labels."""
    g = rng(seed)
    points = np.concatenate([c + sd * g.standard_normal((n, centres.shape[1])) for c in centres])
    return points, np.repeat(np.arange(len(centres)), n)


def _knn() -> Scenario:
    # Reference images in two directions of feature space; the shifted set points in a third.
    centres = np.eye(8)[:2] * 5.0
    train, _ = _clusters(centres, 300, seed=1)
    in_pts, _ = _clusters(centres, 100, seed=2)
    ood, _ = _clusters(np.eye(8)[2:3] * 5.0, 200, seed=3)
    feats = {"train": train, "in": in_pts, "ood": ood}
    return Scenario({"k": 5}, samples("in", near(3)), samples("ood", near(3, seed=1)), FakeContext(feats=feats))


def _mahalanobis() -> Scenario:
    # Two classes far apart; the shifted set lies between them, near the global mean: only class-conditional
    # means rank it below the in-distribution set (one Gaussian would find it typical).
    centres = np.zeros((2, 8))
    centres[0, 0], centres[1, 0] = -3.0, 3.0
    train, labels = _clusters(centres, 300, seed=1, sd=0.5)
    in_pts, _ = _clusters(centres, 100, seed=2, sd=0.5)
    ood, _ = _clusters(np.zeros((1, 8)), 200, seed=3, sd=0.5)
    ctx = FakeContext(feats={"train": train, "in": in_pts, "ood": ood}, labels=labels)
    return Scenario({}, samples("in", near(3)), samples("ood", near(3, seed=1)), ctx)


def _combined() -> Scenario:
    # Features say nothing (every set from one cluster); the pixel likelihood is *too high* for the shifted set
    # (the paper's failure): only a two-sided combination fitted on calibration images ranks it below.
    centre = np.eye(8)[:1] * 5.0
    feats = {key: _clusters(centre, 200, seed=i)[0] for i, key in enumerate(("train", "in", "ood", "cal"))}
    calibration = samples("cal", near(3.0, 200, sd=0.3, seed=4))
    ctx = FakeContext(feats=feats, calibration=calibration)
    return Scenario({}, samples("in", near(3.0, sd=0.3)), samples("ood", near(2.0, sd=0.3, seed=1)), ctx)


def _latent(shift: str) -> Callable[[], Scenario]:
    def build() -> Scenario:
        flow = identity_flow()
        torch.manual_seed(2)
        in_set = latent_set("in", torch.randn(200, *SHAPE), flow)
        if shift == "finest-too-likely":
            mask = finest_mask(flow)
            z = torch.randn(200, *SHAPE) * 0.6
            z[:, ~mask[0]] = torch.randn(200, int((~mask).sum())) * 1.4
        else:
            z = torch.randn(200, *SHAPE) * 0.3  # latents too concentrated
        train = latent_set("train", torch.randn(300, *SHAPE), flow)
        return Scenario({}, in_set, latent_set("ood", z, flow), FakeContext(flow=flow, train=train))

    return build


NOISE, CONSTANT = "uniform-noise", "constant-images"


@dataclass(frozen=True)
class Case:
    """What the contract runs for one detector: its fake-context ``scenario``, and the real dataset it must rank
    below the in-distribution test set end to end with its real auxiliary models
    (``tests/experiments/test_detector_directions.py``): uniform noise, or constant images where the detector's
    statistic is led by the PNG size (noise maximises it, so noise is "in-distribution" by its convention)."""

    scenario: Callable[[], Scenario]
    real_shift: str = NOISE


CASES: dict[str, Case] = {
    "log_likelihood": Case(_likelihood_sets),
    "bits_per_dim": Case(_likelihood_sets),
    "likelihood_ratio": Case(_ratio("background")),
    "general_likelihood_ratio": Case(_ratio("general")),
    "waic": Case(_waic),
    "input_complexity": Case(_compression, CONSTANT),
    "compressed_size": Case(_compression, CONSTANT),
    "typicality": Case(_typicality(5)),
    "typicality_m1": Case(_typicality(None)),
    "embedding_likelihood": Case(_embedding_flow),
    "embedding_gaussian": Case(_embedding_gaussian_coordinates),
    "embedding_gaussian_raw": Case(_embedding_gaussian),
    "knn": Case(_knn),
    "mahalanobis": Case(_mahalanobis),
    "combined": Case(_combined),
    "per_scale": Case(_latent("finest-too-likely")),
    "latent_typicality": Case(_latent("too-concentrated")),
    "dose": Case(_latent("too-concentrated")),
}
"""One entry per registered detector: adding a detector means adding its case here (the contract fails without)."""


def test_every_registered_detector_has_a_case() -> None:
    missing = sorted(set(DETECTORS) - set(CASES))
    assert not missing, f"add a Case for {missing} to CASES in tests/contracts/test_detectors.py"
    assert not set(CASES) - set(DETECTORS), "a case names a detector that is not registered"


def _fitted(name: str, scenario: Scenario) -> Detector:
    det = get_detector(name, **scenario.settings)
    det.check(scenario.context, [scenario.in_set, scenario.shifted])
    det.fit(scenario.context)
    return det


@pytest.mark.parametrize("name", sorted(CASES))
def test_detector_contract(name: str) -> None:
    scenario = CASES[name].scenario()
    det = _fitted(name, scenario)
    per_batch = DETECTORS[name].info.per_batch
    score_in, score_out = det.score(scenario.in_set), det.score(scenario.shifted)
    for values, s in ((score_in, scenario.in_set), (score_out, scenario.shifted)):
        assert values.dtype == np.float64 and values.ndim == 1
        if per_batch:
            assert values.shape == (det.settings.batches,)  # type: ignore[attr-defined]
        else:
            assert values.shape == (len(s),)
        assert np.isfinite(values).all()
    auroc = detection_metrics(score_in, score_out)["auroc"]
    assert auroc > 0.9, f"{name} ranks the shifted set as in-distribution (AUROC {auroc:.3f})"
    # Same settings, same inputs, same scores (a fresh detector on a fresh scenario).
    again = CASES[name].scenario()
    np.testing.assert_array_equal(_fitted(name, again).score(again.in_set), score_in)
    # What the report stores must be JSON.
    json.dumps(det.facts())
    json.dumps(asdict(det.settings))
    for values in det.components(scenario.in_set).values():
        assert values.shape == (len(scenario.in_set),)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_info_is_complete_and_settings_are_frozen_with_defaults(name: str) -> None:
    cls = DETECTORS[name]
    described = cls.info.describe()
    assert all(described[k] for k in ("summary", "direction", "units", "cost", "reference"))
    settings = cls.Settings()
    with pytest.raises(AttributeError):
        settings.__setattr__("anything", 1)
    assert cls(settings).settings is settings
