"""``flowood.ood.metrics``: the OOD metric conventions checked against scikit-learn and hand-computed cases, the
ranking of non-finite scores, and the paired bootstraps of metric differences."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from flowood.ood import detection_metrics, paired_auroc_difference, paired_metric_differences, summarize_scores
from flowood.ood.metrics import rank_metrics


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


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("bad", [NAN, -INF])
def test_a_nan_or_minus_inf_score_ranks_below_the_lowest_finite_one(bad):
    # One pair: the in-distribution sample's score is unusable, so it loses to the OOD sample.
    assert detection_metrics(np.array([bad]), np.array([0.0]))["auroc"] == 0.0
    assert detection_metrics(np.array([0.0]), np.array([bad]))["auroc"] == 1.0
    # Pairs (2 vs 0) won, (bad vs 0) lost: 1/2. A tie with the lowest finite score would count 3/4.
    assert detection_metrics(np.array([2.0, bad]), np.array([0.0]))["auroc"] == 0.5
    # An OOD set of unusable scores is rejected at the 95% threshold whatever the finite scores are.
    m = detection_metrics(np.array([0.0, 1.0, 2.0]), np.array([bad, bad]))
    assert m["auroc"] == 1.0 and m["fpr95"] == 0.0 and m["nonfinite"] == 2


def test_plus_inf_ranks_above_the_highest_finite_score():
    assert detection_metrics(np.array([INF]), np.array([5.0]))["auroc"] == 1.0
    assert detection_metrics(np.array([1.0, 2.0]), np.array([INF]))["auroc"] == 0.0


def test_nan_and_minus_inf_tie_with_each_other():
    assert detection_metrics(np.array([NAN]), np.array([-INF]))["auroc"] == 0.5


def test_paired_difference_ranks_nonfinite_scores_the_same_way():
    in_a, ood_a = np.array([2.0, NAN]), np.array([0.0])
    in_b, ood_b = np.array([2.0, 1.0]), np.array([0.0])
    res = paired_auroc_difference(in_a, ood_a, in_b, ood_b, n_boot=50)
    assert res["auroc_a"] == 0.5 and res["auroc_b"] == 1.0 and res["delta"] == 0.5


@pytest.mark.parametrize("ties", [False, True])
def test_rank_metrics_equal_sklearn(ties: bool):
    rng = np.random.default_rng(0)
    s_in, s_ood = rng.normal(0.5, 1, 300), rng.normal(0, 1, 200)
    if ties:
        s_in, s_ood = np.round(s_in * 2), np.round(s_ood * 2)
    fast, ref = rank_metrics(s_in, s_ood), detection_metrics(s_in, s_ood)
    assert fast["aupr_in"] == pytest.approx(ref["aupr_in"], abs=1e-12)
    assert fast["aupr_out"] == pytest.approx(ref["aupr_out"], abs=1e-12)
    y = np.r_[np.ones(300), np.zeros(200)]
    fpr, tpr, _ = roc_curve(y, np.r_[s_in, s_ood], drop_intermediate=False)
    assert fast["fpr95"] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)])


def test_paired_differences_detect_a_real_gain_and_nothing_else():
    rng = np.random.default_rng(1)
    a_in, a_ood = rng.normal(0, 1, 400), rng.normal(0.3, 1, 400)  # a fails (OOD scores higher)
    same = paired_metric_differences(a_in, a_ood, a_in.copy(), a_ood.copy(), n_boot=50)
    for m in ("auroc", "aupr_in", "aupr_out", "fpr95"):
        assert same[m]["delta"] == 0 and same[m]["low"] == 0 and same[m]["high"] == 0
    b_in, b_ood = a_in + 0.1 * rng.normal(size=400), a_ood - 2.0
    better = paired_metric_differences(a_in, a_ood, b_in, b_ood, n_boot=50)
    assert better["auroc"]["low"] > 0.3 and better["aupr_in"]["low"] > 0 and better["aupr_out"]["low"] > 0
    assert better["fpr95"]["high"] < 0  # lower FPR95 is a gain
    assert better["auroc"]["delta"] == pytest.approx(
        detection_metrics(b_in, b_ood)["auroc"] - detection_metrics(a_in, a_ood)["auroc"], abs=1e-12
    )
    with pytest.raises(ValueError, match="same samples"):
        paired_metric_differences(a_in, a_ood, a_in[:10], a_ood)


def test_paired_class_summary_mean_and_worst() -> None:
    from flowood.ood import paired_class_summary

    rng = np.random.default_rng(0)
    pairs = []
    for shift_a, shift_b in ((0.5, 1.5), (0.2, 0.6), (1.0, 2.0)):  # b separates every set better than a
        noise_in, noise_ood = rng.standard_normal(300), rng.standard_normal(200)
        pairs.append((noise_in + shift_a, noise_ood, noise_in + shift_b, noise_ood))
    aurocs_a = [detection_metrics(p[0], p[1])["auroc"] for p in pairs]
    aurocs_b = [detection_metrics(p[2], p[3])["auroc"] for p in pairs]
    out = paired_class_summary(pairs, n_boot=300, seed=1)
    assert out["mean"]["auroc"] == pytest.approx(np.mean(aurocs_b))
    assert out["mean"]["delta"] == pytest.approx(np.mean(aurocs_b) - np.mean(aurocs_a))
    assert 0 < out["mean"]["low"] <= out["mean"]["delta"] <= out["mean"]["high"]
    assert out["worst"]["index"] == int(np.argmin(aurocs_b)) == 1 and out["worst"]["reference_index"] == 1
    assert out["worst"]["delta"] == pytest.approx(min(aurocs_b) - min(aurocs_a)) and out["worst"]["low"] > 0
    same = paired_class_summary([(p[0], p[1], p[0], p[1]) for p in pairs], n_boot=50)
    assert same["mean"]["delta"] == same["mean"]["low"] == same["mean"]["high"] == 0.0
