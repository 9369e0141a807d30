"""Non-finite scores rank strictly below every finite score (NaN, −∞) or above it (+∞): exact AUROCs
on cases small enough to count by hand (issue 15, item 7)."""

from __future__ import annotations

import numpy as np
import pytest

from flowood.ood import detection_metrics, paired_auroc_difference

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
