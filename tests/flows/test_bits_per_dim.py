"""The one nats ↔ bits/dim conversion (``flowood.flows.preprocess``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from flowood.flows.preprocess import LN2, bits_per_dim, log_likelihood_from_bpd


def test_bits_per_dim_is_minus_log2_per_dimension() -> None:
    # p = 2^-(3·D) over D = 4 dimensions is 3 bits per dimension, whatever the container.
    ll = -3 * 4 * math.log(2.0)
    assert math.isclose(bits_per_dim(ll, 4), 3.0)
    torch.testing.assert_close(bits_per_dim(torch.tensor([ll, 0.0]), 4), torch.tensor([3.0, 0.0]))
    np.testing.assert_allclose(bits_per_dim(np.array([ll]), 4), [3.0])
    assert math.log(2.0) == LN2


def test_per_scale_dimensions_broadcast() -> None:
    terms = np.array([[-2.0 * LN2 * 8, -1.0 * LN2 * 2]])  # (N=1, S=2) terms of pieces with D_i = 8 and 2
    np.testing.assert_allclose(bits_per_dim(terms, np.array([[8.0, 2.0]])), [[2.0, 1.0]])


def test_nats_and_bits_per_dim_round_trip() -> None:
    bpd = np.array([0.5, 3.25, 8.0])
    np.testing.assert_allclose(bits_per_dim(log_likelihood_from_bpd(bpd, 784), 784), bpd, rtol=1e-12)
    assert log_likelihood_from_bpd(1.0, 10) < 0  # more bits = less likely
