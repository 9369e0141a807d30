"""pytorch-ood interop: the adapter's conventions, and pytorch-ood's metrics agree with flowood's on the same
scores (raw NLL-sized scores included, which pytorch-ood < 0.4 squashed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve

from flowood.errors import ConfigError
from flowood.flows import build_flow
from flowood.ood import detection_metrics
from flowood.ood.detectors.interop import PytorchOODDetector

pytorch_ood_metrics = pytest.importorskip(
    "pytorch_ood.metrics", reason="pytorch-ood is not installed (pip install 'flowood[test-ood]')"
)

SHAPE = (1, 8, 8)


def images_from_latent(z: torch.Tensor) -> torch.Tensor:
    x = (torch.sigmoid(z) - 0.05) / 0.9
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def flow():
    torch.manual_seed(0)
    return build_flow("realnvp", SHAPE, num_scales=2, num_blocks=1, mid_channels=4).eval()


def _pood(in_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    m = pytorch_ood_metrics.OODMetrics()
    scores = torch.cat([in_scores, ood_scores])
    labels = torch.cat([torch.zeros(len(in_scores), dtype=torch.long), -torch.ones(len(ood_scores), dtype=torch.long)])
    m.update(scores, labels)
    return m.compute()


@pytest.mark.parametrize("name", ["log_likelihood", "dose", "latent_typicality"])
def test_pytorch_ood_metrics_agree_with_flowood(flow, name):
    torch.manual_seed(1)
    train = images_from_latent(torch.randn(200, *SHAPE))
    det = PytorchOODDetector(flow, name).fit([(train[i : i + 50], torch.zeros(50)) for i in range(0, 200, 50)])
    x_in = images_from_latent(torch.randn(150, *SHAPE))
    x_ood = images_from_latent(torch.randn(120, *SHAPE) * 1.5)
    s_in, s_ood = det.predict(x_in.float() / 255), det.predict(x_ood)  # float and uint8 inputs alike
    assert s_in.shape == (150,) and s_ood.shape == (120,)
    ours = detection_metrics(-s_in.numpy(), -s_ood.numpy())  # flowood: higher = in-distribution
    theirs = _pood(s_in, s_ood)
    assert ours["auroc"] > 0.9  # higher = more OOD really is more OOD
    assert theirs["AUROC"] == pytest.approx(ours["auroc"], abs=1e-9)
    # AUPR: pytorch-ood integrates the PR curve by the trapezoidal rule (sklearn ``auc(recall, precision)``),
    # flowood reports sklearn's average precision (step rule): exactly equal to their definitions, close overall.
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_ood))]
    inlier = -np.r_[s_in.numpy(), s_ood.numpy()]
    for key, labels, score in (("AUPR-IN", y, inlier), ("AUPR-OUT", 1 - y, -inlier)):
        precision, recall, _ = precision_recall_curve(labels, score)
        assert theirs[key] == pytest.approx(auc(recall, precision), abs=1e-9)
    assert theirs["AUPR-IN"] == pytest.approx(ours["aupr_in"], abs=1e-3)
    assert theirs["AUPR-OUT"] == pytest.approx(ours["aupr_out"], abs=1e-3)
    # pytorch-ood's FPR95 takes OOD as the positive class: flowood's with the roles swapped.
    swapped = detection_metrics(s_ood.numpy(), s_in.numpy())
    assert theirs["FPR95TPR"] == pytest.approx(swapped["fpr95"], abs=1e-9)


def test_raw_nll_scores_do_not_collapse(flow):
    # NLLs in nats are in the thousands; a metric that squashed scores outside [0, 1] would see only ties.
    rng = np.random.default_rng(0)
    s_in = torch.from_numpy(3000.0 + 10 * rng.standard_normal(200))
    s_ood = torch.from_numpy(3020.0 + 10 * rng.standard_normal(200))
    auroc = _pood(s_in, s_ood)["AUROC"]
    assert auroc == pytest.approx(detection_metrics(-s_in.numpy(), -s_ood.numpy())["auroc"]) and auroc > 0.8
    # The adapter's optional squashing keeps the ranking (for pytorch-ood versions that squash).
    squashed = 0.5 + torch.atan((torch.cat([s_in, s_ood]) - 3010) / 10) / torch.pi
    assert _pood(squashed[:200], squashed[200:])["AUROC"] == pytest.approx(auroc)


def test_adapter_refuses_detectors_with_auxiliary_models(flow):
    with pytest.raises(ConfigError, match="auxiliary"):
        PytorchOODDetector(flow, "likelihood_ratio")
    det = PytorchOODDetector(flow, "log_likelihood", unit_interval=True, scale=1.0).fit([torch.zeros(4, *SHAPE)])
    out = det.predict(torch.zeros(3, *SHAPE))
    assert ((out > 0) & (out < 1)).all()
