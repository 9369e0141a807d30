"""The experiments-layer wiring of the detectors on real tiny runs: the samples every detector scores are the
likelihood evaluation's (negative training included), and the auxiliary flows enter each score in the right
place (model minus background, the members' nats)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.experiments.auxiliary import ScoreSettings
from flowood.experiments.evaluate import evaluate_run, score_loaded
from flowood.experiments.runs import load_run
from flowood.experiments.samples import scored_samples
from flowood.ood.detectors import compressed_bits_per_dim

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
    # The held-out half, loaded independently, in scoring order.
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
    settings = ScoreSettings(ensemble_size=2, aux_max_steps=2, aux_test_limit=32, mutation_rate=0.25)
    evaluate_run(
        tiny_run, ["mnist-mini"], limit=40, device="cpu", scores=["likelihood_ratio", "waic"], score_settings=settings
    )
    run = load_run(tiny_run)
    d = run.flow.num_dims
    bg = load_run(tiny_run / "background")
    members = [load_run(tiny_run / "ensemble" / f"member-{k}") for k in range(2)]
    with np.load(tiny_run / "ood_scores.npz") as o, np.load(tiny_run / "scores.npz") as s:
        for key, seed, name in (("fashionmnist-mini", 0, None), ("mnist-mini", 1, "mnist-mini")):
            ds = scored_samples(run, name, limit=40, classes=None if name else run.run_config.data.classes)
            model = -s[key] * d * LN2
            background = -score_loaded(bg, ds, seed=seed) * d * LN2
            np.testing.assert_allclose(o[f"likelihood_ratio/{key}"], model - background, rtol=1e-6, atol=1e-3)
            lp = np.stack([-score_loaded(m, ds, seed=seed) * d * LN2 for m in members])
            np.testing.assert_allclose(o[f"waic/{key}"], lp.mean(0) - lp.var(0), rtol=1e-6, atol=1e-3)
    # The background trains with the main model's budget (its step count), not a fraction of a shared cap.
    meta = json.loads((tiny_run / "background" / "mutation.json").read_text())
    main_steps = max(int(r["step"]) for r in run.metrics)
    assert meta["mutation"]["train"]["max_steps"] == min(main_steps, 2)
    assert meta["mutation"]["train"]["max_minutes"] is None


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
        limit=64,
        device="cpu",
        scores=["dose", "latent_typicality", "per_scale"],
        score_settings=ScoreSettings(dose_train_limit=64),
    )
    metrics = next(iter(report.ood.values())).metrics
    assert metrics["dose"].auroc > 0.95
    assert report.scores is not None
    assert set(report.scores["latent_typicality"].components_auroc or {}) == {"scale_0", "scale_1"}
    assert report.scores["dose"].facts["train_samples"] == 64
    assert set(report.scores["per_scale"].components_auroc or {}) == {"scale_0", "scale_1"}
