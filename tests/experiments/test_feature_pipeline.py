"""The evaluation's feature pipeline (``flowood.experiments.fit_context``) on a real tiny run: reference and
calibration images are disjoint parts of the training split, the feature detectors read exactly the embedding
flow's coordinates, a detector another one combines is fitted once, the learned extractor is derived by the reuse
rule of every auxiliary model, and every detector reports its scoring throughput."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from flowood.data import load_dataset
from flowood.experiments.aux_models import AuxSettings, EmbeddingFlowSettings
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.experiments.fit_context import EvaluationContext
from flowood.experiments.runs import load_run
from flowood.features import FeatureSettings
from flowood.features.settings import LearnedSettings
from flowood.ood.detectors import get_detector
from flowood.runs import RunDir
from flowood.train.data import Standardizer

from .conftest import TINY

FLOW = EmbeddingFlowSettings(
    max_steps=3, overrides=("model.num_couplings=2", "model.hidden_dim=8", "train.batch_size=32")
)
RANDOM = FeatureSettings(extractor="random-cnn", size=32, train_limit=96, test_limit=32)
LEARNED = replace(RANDOM, extractor="learned", learned=LearnedSettings(steps=3, batch_size=16, width=4))


def _context(run_dir: Path, features: FeatureSettings = RANDOM, detectors=()) -> EvaluationContext:
    aux = AuxSettings(features=features, embedding_flow=FLOW, test_limit=32)
    return EvaluationContext(
        load_run(run_dir), aux, evaluated=["mnist-mini"], device="cpu", quiet=True, detectors=detectors
    )


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.flatten(1)}


def test_reference_and_calibration_images_are_disjoint_parts_of_the_training_split(tiny_run: Path) -> None:
    ctx = _context(tiny_run)
    reference = ctx._reference()
    calibration = ctx.calibration_samples(200)
    assert reference.split == "fit" and len(reference) == 96 and len(calibration) == 200
    assert not _rows(reference.data) & _rows(calibration.data)
    assert _rows(calibration.data) <= _rows(load_dataset("fashionmnist-mini", "val").data)
    assert _rows(reference.data) <= _rows(load_dataset("fashionmnist-mini", "fit").data)
    labels = ctx.feature_labels()
    assert labels is not None and labels.shape == (96,) and np.array_equal(labels, reference.labels.numpy())
    # The calibration images carry their bits/dim under the run's flow, like every scored set.
    assert calibration.bpd.shape == (200,) and np.isfinite(calibration.bpd).all()


def test_feature_coordinates_are_the_embedding_flows_own(tiny_run: Path) -> None:
    ctx = _context(tiny_run)
    flow = ctx.embedding_flow()  # trains the flow on the reference features
    saved = Standardizer.load(RunDir(flow.directory).standardize)
    raw = torch.from_numpy(ctx.features(None))
    np.testing.assert_allclose(ctx.feature_coordinates(None), saved(raw).numpy(), rtol=1e-5, atol=1e-5)
    assert ctx.feature_coordinates(None).shape[1] == saved.out_dim


@pytest.mark.slow
def test_a_combined_input_is_fitted_once_and_shared(tiny_run: Path) -> None:
    knn = get_detector("knn", k=3)
    fits = []
    original = knn.fit
    knn.fit = lambda context: (fits.append(1), original(context))[1]  # type: ignore[method-assign]
    evaluation = evaluate_run(
        tiny_run,
        ["uniform-noise"],
        detectors=[knn, "mahalanobis", "embedding_gaussian", "embedding_gaussian_raw", "combined"],
        aux=AuxSettings(features=RANDOM, embedding_flow=FLOW, test_limit=32),
        scoring=ScoringOptions(limit=48),
        device="cpu",
        write=False,
    )
    assert fits == [1]
    report = evaluation.report
    assert report.scores is not None
    assert report.scores["knn"].facts["k"] == 3  # combined read the evaluation's configured knn
    for name in ("knn", "mahalanobis", "embedding_gaussian", "combined"):
        run = report.scores[name]
        assert run.images_per_second is not None and run.images_per_second > 0
        assert run.fit_seconds is not None and run.score_seconds is not None
    assert report.scoring.feature_seconds is not None
    # combined's components are its inputs' calibrated values, one per input.
    assert set(evaluation.components["combined"]["uniform-noise"]) == {"log_likelihood", "knn"}


def test_learned_extractor_is_reused_only_for_the_same_config(tiny_run: Path, tmp_path: Path) -> None:
    ctx = _context(tiny_run, LEARNED)
    first = ctx.learned_extractor()
    files = first.directory
    assert first.action == "trained" and files.model.is_file() and files.config.is_file()
    assert first.metrics["objective"] == "classify" and "val_accuracy" in first.metrics
    feats = ctx.features(None)
    assert feats.shape == (96, 16)  # 4 x width
    stamp = files.model.stat().st_mtime_ns
    again = _context(tiny_run, LEARNED).learned_extractor()
    assert again.action == "reused" and files.model.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(_context(tiny_run, LEARNED).features(None), feats)
    # Other settings: another pipeline folder; the same folder with a changed saved key is retrained.
    other = replace(LEARNED, learned=replace(LEARNED.learned, steps=4))
    assert other.pipeline != LEARNED.pipeline
    config = files.config.read_text()
    files.config.write_text(config.replace('"steps": 3', '"steps": 99'))
    assert _context(tiny_run, LEARNED).learned_extractor().action == "trained"
    # --force on the run clears it with the run.
    copy = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(copy), *TINY]) == 0
    _context(copy, LEARNED).learned_extractor()
    assert RunDir(copy).learned_extractor(LEARNED.pipeline).model.is_file()
    assert main(["train", "--preset", "demo", "--epochs", "1", "--out", str(copy), "--force", *TINY]) == 0
    assert not RunDir(copy).feature_pipeline(LEARNED.pipeline).exists()


def test_rotation_objective_without_labels(tiny_run: Path) -> None:
    rotation = replace(LEARNED, learned=replace(LEARNED.learned, objective="rotation"))
    got = _context(tiny_run, rotation).learned_extractor()
    assert got.metrics["objective"] == "rotation" and got.metrics["outputs"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["knn", "mahalanobis", "embedding_gaussian", "combined"])
def test_feature_detectors_run_on_learned_features(tiny_run: Path, name: str) -> None:
    report = evaluate_run(
        tiny_run,
        ["uniform-noise"],
        detectors=[name],
        aux=AuxSettings(features=LEARNED, embedding_flow=FLOW, test_limit=32),
        scoring=ScoringOptions(limit=32),
        device="cpu",
        write=False,
    ).report
    assert report.scores is not None and report.scores[name].facts.get("extractor", "learned") == "learned"
    assert report.ood["uniform-noise"].metrics[name].nonfinite == 0
