"""``flowood.ood.detectors.ensemble``: WAIC's arithmetic, on nats, over the members it asks for."""

from __future__ import annotations

import numpy as np
import pytest

from flowood.errors import FieldError
from flowood.ood.detectors import get_detector, waic
from tests.ood.detectors.fakes import FakeContext, KnownFlow, auroc, near, samples


def test_waic_is_mean_minus_variance_over_members():
    members = np.array([[-10.0, -5.0, -5.0], [-10.0, -5.0, -1.0], [-10.0, -5.0, -9.0]])
    np.testing.assert_allclose(waic(members), [-10.0, -5.0, -5.0 - 32.0 / 3.0])
    agree, disagree = waic(np.array([[-6.0, 0.0], [-6.0, -10.0]]))  # means -6 and -5, variances 0 and 25
    assert agree == -6.0 and disagree == -30.0 and agree > disagree
    np.testing.assert_allclose(waic(np.array([[1.0, 2.0]])), [1.0, 2.0])
    with pytest.raises(ValueError, match="K, N"):
        waic(np.zeros(3))


def test_the_detector_asks_for_k_members_and_works_on_nats():
    # Members agree on the in-distribution set (higher log p); on OOD they agree on a lower log p. In bits/dim
    # the mean term's sign would flip and WAIC would rank OOD first.
    members = [KnownFlow({"in": near(-1000.0, sd=5, seed=k), "ood": near(-3000.0, sd=5, seed=9 + k)}) for k in range(3)]
    ctx = FakeContext(members=members)
    det = get_detector("waic", ensemble_size=3)
    det.fit(ctx)
    assert ctx.asked == [("member", 0), ("member", 1), ("member", 2)]
    assert auroc(det, samples("in", near(3.0)), samples("ood", near(3.0, seed=1))) > 0.99
    assert det.facts()["members"] == ["known"] * 3


def test_a_one_member_ensemble_is_refused_when_configured():
    with pytest.raises(FieldError, match=r"waic\.ensemble_size must be >= 2"):
        get_detector("waic", ensemble_size=1)
