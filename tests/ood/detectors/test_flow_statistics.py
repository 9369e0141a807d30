"""``flowood.ood.detectors.flowstats`` and the detectors built on it (``per_scale``, ``dose``): the per-scale terms
add up to the likelihood, single-scale flows are refused up front, DoSE fits on training statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.errors import ConfigError
from flowood.flows import build_flow
from flowood.ood.detectors import flow_statistics, get_detector
from tests.ood.detectors.fakes import SHAPE, D, FakeContext, auroc, identity_flow, latent_set


def test_flow_statistics_add_up_to_the_likelihood():
    torch.manual_seed(1)
    flow = build_flow("realnvp", SHAPE, num_scales=2, num_blocks=1, mid_channels=4, init_zeros=False).eval()
    data = torch.randint(0, 256, (10, *SHAPE), dtype=torch.uint8)
    st = flow_statistics(flow, data, kind="image", seed=5, batch_size=4)
    flow.set_dequantization_rng(torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ll = torch.cat([flow.log_likelihood(data[i : i + 4].float() / 255) for i in range(0, 10, 4)])
    flow.set_dequantization_rng(None)
    np.testing.assert_allclose(st.log_likelihood, ll.double().numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        st.scale_log_likelihood.sum(1) + st.preprocess_logdet, st.log_likelihood, rtol=1e-9, atol=1e-6
    )
    assert st.num_scales == 2 and st.scale_dims.sum() == D
    assert np.abs(st.flow_logdet).min() > 0  # a real log-det, split between the scales


def test_per_scale_refuses_a_single_scale_flow_before_fitting():
    flow = build_flow("realnvp-cycle-mask", SHAPE, num_blocks=1, mid_channels=4)
    with pytest.raises(ConfigError, match="multi-scale"):
        get_detector("per_scale").check(FakeContext(flow=flow), [])


@pytest.mark.parametrize("estimator", ["kde", "ocsvm"])
def test_dose_fits_on_training_statistics(estimator: str):
    flow = identity_flow()
    torch.manual_seed(4)
    train = latent_set("train", torch.randn(300, *SHAPE), flow)
    in_s = latent_set("in", torch.randn(200, *SHAPE), flow)
    det = get_detector("dose", estimator=estimator)
    det.fit(FakeContext(flow=flow, train=train))
    for scale in (0.3, 1.8):
        assert auroc(det, in_s, latent_set("ood", torch.randn(200, *SHAPE) * scale, flow)) > 0.99
    facts = det.facts()
    assert facts["train_samples"] == 300 and facts["estimator"] == estimator
    if estimator == "kde":
        assert facts["bandwidth"] > 0
