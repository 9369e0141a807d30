"""Every detector's direction end to end (protects the wiring of ``flowood.experiments.evaluate``,
``fit_context`` and ``aux_models`` with each detector): through :func:`evaluate_run` with its *real* auxiliary
models at tiny size — background, ensemble members, general model, CNN features and embedding flow trained or
computed here — the in-distribution test set must rank above a set whose answer is unambiguous for that
detector. The fake-context contract (``tests/contracts/test_detectors.py``) cannot see a wiring that pairs the
wrong model or flips a sign on the way; this does.

The shifted sets: uniform noise (far from FashionMNIST in pixels, in features, in every flow statistic), and
constant images for ``compressed_size`` and ``input_complexity`` (their statistic is led by the PNG size, which
noise maximises: noise is "in-distribution" by their convention until the flow is trained far beyond these
150 steps; constant images are not). The threshold is 0.7: a direction, with a margin (measured on fixtures
like this one: WAIC, the weakest, 0.77–0.86 with 60–150-step members; most 0.99–1.00). Each detector's set
is its ``real_shift`` in the contract's ``CASES`` (``tests/contracts/test_detectors.py``): one table for both,
which every registered detector must be in.
"""

from __future__ import annotations

import pytest

from flowood.cli.app import main
from flowood.experiments.aux_models import AuxBudget, AuxSettings, EmbeddingFlowSettings
from flowood.experiments.evaluate import ScoringOptions, evaluate_run
from flowood.features import FeatureSettings
from flowood.ood.detectors import DETECTORS, get_detector
from tests.contracts.test_detectors import CASES, CONSTANT, NOISE
from tests.tiny import TINY_OVERRIDES

pytestmark = pytest.mark.slow

SHIFTED = {name: case.real_shift for name, case in CASES.items()}


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory):
    """A small RealNVP trained for 150 steps (about 6.6 bits/dim), evaluated once with every detector."""
    run = tmp_path_factory.mktemp("directions") / "run"
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("data.limit")]
    args = ["train", "--preset", "demo", "--out", str(run), "--device", "cpu", "--quiet", "--epochs", "100"]
    for item in [*overrides, "data.limit=2048", "train.batch_size=64", "model.mid_channels=8", "train.max_steps=150"]:
        args += ["--set", item]
    assert main(args) == 0
    aux = AuxSettings(
        background=AuxBudget(),  # as long as the main model
        ensemble=AuxBudget(minutes=None, max_steps=100),
        general=AuxBudget(max_steps=40),  # on gaussian noise: quickly learnt
        test_limit=64,
        features=FeatureSettings(extractor="random-cnn", size=32, train_limit=256, test_limit=64),
        embedding_flow=EmbeddingFlowSettings(max_steps=30, overrides=("train.batch_size=64",)),
    )
    configured = {
        "general_likelihood_ratio": get_detector("general_likelihood_ratio", dataset="gaussian-noise"),
        "typicality": get_detector("typicality", m=8, batches=50),
        "waic": get_detector("waic", ensemble_size=2),
    }
    detectors = [configured.get(name, name) for name in DETECTORS]
    return evaluate_run(
        run, [NOISE, CONSTANT], detectors=detectors, aux=aux, scoring=ScoringOptions(limit=128), device="cpu"
    ).report


@pytest.mark.parametrize("name", sorted(SHIFTED))
def test_the_in_distribution_set_ranks_above_the_shifted_set(evaluation, name: str) -> None:
    auroc = evaluation.ood[SHIFTED[name]].metrics[name].auroc
    assert auroc > 0.7, f"{name}: AUROC {auroc:.3f} on {SHIFTED[name]}"
