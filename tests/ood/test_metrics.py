"""OOD metric conventions checked against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import flowood
from flowood.ood import detection_metrics, paired_auroc_difference, score_bits_per_dim, summarize_scores


def test_perfect_and_inverted_separation():
    ind = np.array([5.0, 6.0, 7.0])
    ood = np.array([1.0, 2.0])
    m = detection_metrics(ind, ood)
    assert m["auroc"] == 1.0 and m["aupr_in"] == 1.0 and m["aupr_out"] == 1.0 and m["fpr95"] == 0.0
    inv = detection_metrics(ood, ind)
    assert inv["auroc"] == 0.0 and inv["fpr95"] == 1.0


def test_matches_sklearn_on_random_scores():
    rng = np.random.default_rng(0)
    ind = rng.normal(1.0, 1.0, 500)
    ood = rng.normal(0.0, 1.0, 300)
    m = detection_metrics(ind, ood)
    y = np.r_[np.ones(500), np.zeros(300)]
    s = np.r_[ind, ood]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert m["aupr_in"] == pytest.approx(average_precision_score(y, s))
    assert m["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s))
    # FPR at the threshold that keeps 95% of in-distribution samples.
    threshold = np.sort(ind)[::-1][int(np.ceil(0.95 * 500)) - 1]
    assert m["fpr95"] == pytest.approx((ood >= threshold).mean())


def test_fpr95_hand_computed():
    ind = np.arange(20, dtype=float)  # threshold keeping 19/20 = 95% is 1.0
    ood = np.array([0.5, 1.0, 3.0, -1.0])
    assert detection_metrics(ind, ood)["fpr95"] == pytest.approx(0.5)


def test_nonfinite_scores_are_counted_and_ranked_as_ood():
    ind = np.array([1.0, 2.0, np.nan])
    ood = np.array([0.0, -np.inf])
    m = detection_metrics(ind, ood)
    assert m["nonfinite"] == 2
    # NaN in-distribution score ranks lowest: it ties with -inf and is below 0.0.
    assert 0.5 < m["auroc"] < 1.0
    s = summarize_scores(np.array([1.0, np.inf, 3.0]))
    assert s == {"mean": 2.0, "median": 2.0, "std": 1.0, "n": 3, "nonfinite": 1}


def test_empty_inputs_raise():
    with pytest.raises(ValueError):
        detection_metrics(np.array([]), np.array([1.0]))


def test_score_bits_per_dim_reproducible_and_matches_flow():
    flow = flowood.build_flow("realnvp", (1, 4, 4), num_scales=2, num_blocks=1, mid_channels=4)
    images = torch.randint(0, 256, (10, 1, 4, 4)).float() / 255
    a = score_bits_per_dim(flow, [images[:6], images[6:]], seed=3)
    b = score_bits_per_dim(flow, [images], seed=3)
    assert a.shape == (10,)
    assert np.allclose(a, b)
    flow.eval()
    flow.set_dequantization_rng(torch.Generator().manual_seed(3))
    assert np.allclose(a, flow.bits_per_dim(images).detach().double().numpy(), atol=1e-5)


def test_paired_auroc_difference_known_answers():
    rng = np.random.default_rng(0)
    in_a, ood_a = rng.normal(size=300), rng.normal(size=200)  # chance
    in_b, ood_b = in_a + 10.0, ood_a  # model b separates perfectly
    res = paired_auroc_difference(in_a, ood_a, in_b, ood_b, n_boot=500)
    full = detection_metrics(in_a, ood_a)["auroc"]
    assert res["auroc_a"] == pytest.approx(full) and res["auroc_b"] == 1.0
    assert res["delta"] == pytest.approx(1.0 - full)
    assert 0.0 < res["low"] <= res["delta"] <= res["high"] <= 1.0
    # A model compared with itself: the difference is exactly zero in every replicate.
    same = paired_auroc_difference(in_a, ood_a, in_a, ood_a, n_boot=200)
    assert same["delta"] == same["low"] == same["high"] == 0.0


def test_paired_auroc_difference_interval_covers_zero_for_equal_models():
    rng = np.random.default_rng(1)
    signal_in, signal_ood = rng.normal(0.5, 1, size=400), rng.normal(size=400)
    # Two models with the same skill and independent noise: no real difference.
    a = (signal_in + rng.normal(size=400), signal_ood + rng.normal(size=400))
    b = (signal_in + rng.normal(size=400), signal_ood + rng.normal(size=400))
    res = paired_auroc_difference(*a, *b, n_boot=1000, seed=3)
    assert res["low"] < 0.0 < res["high"]
    assert res["high"] - res["low"] < 0.2
    assert paired_auroc_difference(*a, *b, n_boot=1000, seed=3) == res  # reproducible under a seed


def test_paired_auroc_difference_handles_ties_and_nonfinite_and_rejects_unpaired():
    in_a = np.array([1.0, 1.0, np.nan, 2.0])
    ood_a = np.array([1.0, -np.inf, 0.0])
    res = paired_auroc_difference(in_a, ood_a, in_a, ood_a, n_boot=50)
    assert res["auroc_a"] == pytest.approx(detection_metrics(in_a, ood_a)["auroc"])
    with pytest.raises(ValueError, match="same samples"):
        paired_auroc_difference(in_a, ood_a, in_a[:3], ood_a, n_boot=10)
    with pytest.raises(ValueError, match="level"):
        paired_auroc_difference(in_a, ood_a, in_a, ood_a, level=1.5)
