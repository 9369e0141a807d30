"""``flowood.experiments.fit_context`` on real tiny runs: the samples every detector scores are the likelihood
evaluation's (negative training included), and each auxiliary flow enters its score in the right place (model
minus background, the members' nats), scored exactly as the evaluation scores (same seeds and batches)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.experiments.aux_models import AuxBudget, AuxSettings
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.experiments.runs import load_run
from flowood.experiments.scored_samples import scored_samples
from flowood.ood import score_samples
from flowood.ood.detectors import compressed_bits_per_dim, get_detector

from .conftest import TINY

LN2 = math.log(2.0)


@pytest.fixture(scope="module")
def negative_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run negative-trained against mnist-mini, whose OOD set is also mnist-mini."""
    run = tmp_path_factory.mktemp("neg") / "run"
    args = ["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY]
    args += ["--set", "data.negative_dataset=mnist-mini", "--set", "data.ood=[mnist-mini]"]
    assert main(args) == 0
    return run


@pytest.mark.parametrize("limit", [None, 300])
def test_negative_trained_run_scores_the_held_out_half_everywhere(negative_run: Path, limit: int | None):
    args = ["evaluate", str(negative_run), "--device", "cpu", "--quiet", "--scores", "input_complexity,compressed_size"]
    if limit is not None:
        args += ["--limit", str(limit)]
    assert main(args) == 0
    held_out = load_dataset("mnist-mini", "half-test", limit=limit, seed=0)
    comp = compressed_bits_per_dim(held_out.data.numpy())
    with np.load(negative_run / "scores.npz") as s, np.load(negative_run / "ood_scores.npz") as o:
        bpd = s["mnist-mini"]
        assert len(bpd) == len(held_out)
        np.testing.assert_allclose(o["compressed_size/mnist-mini"], comp)
        np.testing.assert_allclose(o["input_complexity/mnist-mini"], comp - bpd)
    report = json.loads((negative_run / "report.json").read_text())
    assert report["ood"]["mnist-mini"]["bits_per_dim"]["n"] == len(held_out)


def test_likelihood_ratio_and_waic_use_their_auxiliary_flows_as_documented(tiny_run: Path):
    aux = AuxSettings(background=AuxBudget(max_steps=2), ensemble=AuxBudget(max_steps=2), test_limit=32)
    evaluation = evaluate_run(
        tiny_run,
        ["mnist-mini"],
        detectors=[get_detector("likelihood_ratio", mutation_rate=0.25), get_detector("waic", ensemble_size=2)],
        aux=aux,
        scoring=ScoringOptions(limit=40),
        device="cpu",
    )
    run = load_run(tiny_run)
    d = run.flow.num_dims
    bg = load_run(tiny_run / "background")
    members = [load_run(tiny_run / "ensemble" / f"member-{k}") for k in range(2)]
    for key, seed, name in (("fashionmnist-mini", 0, None), ("mnist-mini", 1, "mnist-mini")):
        ds = scored_samples(run, name, limit=40, classes=None if name else run.config.data.classes)
        model = -evaluation.bits_per_dim[key] * d * LN2
        background = -score_samples(bg.flow, ds.data, seed=seed) * d * LN2
        ratio = evaluation.scores["likelihood_ratio"][key]
        np.testing.assert_allclose(ratio, model - background, rtol=1e-6, atol=1e-3)
        lp = np.stack([-score_samples(m.flow, ds.data, seed=seed) * d * LN2 for m in members])
        np.testing.assert_allclose(evaluation.scores["waic"][key], lp.mean(0) - lp.var(0), rtol=1e-6, atol=1e-3)
    # The background trains with the main model's budget (its step count, capped here), not a wall-clock share,
    # on the run's images mutated with the detector's rate; its seed and data are in its config.
    assert bg.config.train.max_steps == min(run.steps or 0, 2) and bg.config.train.max_minutes is None
    assert bg.config.data.dataset == "mutate-0.25:fashionmnist-mini" and bg.config.seed == run.config.seed + 100
    assert [m.config.seed for m in members] == [run.config.seed + 101, run.config.seed + 102]


def test_dose_fitted_on_training_statistics_rejects_uniform_noise(tiny_run: Path, tmp_path: Path):
    # Uniform noise is a far OOD set that DoSE must reject even with a 2-step model, *because* its density is
    # fitted on the training set's statistics. (latent_typicality needs a trained flow: under a near-identity
    # flow FashionMNIST's black background is the atypical latent, so only its wiring is checked here.)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(64, 1, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", x_test=noise, x_train=noise)
    report = evaluate_run(
        tiny_run,
        [f"npz:{tmp_path / 'noise.npz'}"],
        scoring=ScoringOptions(limit=64),
        device="cpu",
        detectors=[get_detector("dose", train_limit=64), "latent_typicality", "per_scale"],
    ).report
    metrics = next(iter(report.ood.values())).metrics
    assert metrics["dose"].auroc > 0.95
    assert report.scores is not None
    assert set(report.scores["latent_typicality"].components_auroc or {}) == {"scale_0", "scale_1"}
    assert report.scores["dose"].facts["train_samples"] == 64
    assert set(report.scores["per_scale"].components_auroc or {}) == {"scale_0", "scale_1"}
