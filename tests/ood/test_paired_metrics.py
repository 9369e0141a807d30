"""The benchmark's paired-bootstrap gains: the fast metrics equal sklearn's, and the intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from flowood.ood import detection_metrics, paired_metric_differences
from flowood.ood.metrics import rank_metrics


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
