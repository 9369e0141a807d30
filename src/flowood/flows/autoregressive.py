"""Masked autoregressive flow for vectors (Papamakarios, Pavlakou, Murray 2017, "MAF").

Each layer is a MADE (Germain et al. 2015): an MLP whose weight matrices are masked so that output ``i``
depends only on the inputs that come before ``i`` in the layer's ordering. The MADE's outputs parametrise a
per-dimension transform of ``x_i``, affine ``y_i = (x_i + t_i) · exp(s_i)`` (``s = w · tanh(raw)`` as in the
coupling layers) or a rational-quadratic spline (:mod:`flowood.flows.splines`).

* ``forward`` (data → latent, the density direction) is one MADE pass: all conditioners see ``x``.
* ``inverse`` is sequential: ``D`` MADE passes, pass ``k`` fixing the entry of order ``k``.

The Jacobian of a layer is triangular in its ordering, so ``logdet = Σ_i log |dy_i/dx_i|``. Orderings
alternate natural / reversed from layer to layer so every dimension gets conditioned on every other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision
from flowood.flows.splines import rational_quadratic_spline, spline_param_count, split_spline_params

TRANSFORMS = ("affine", "spline")


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed binary ``mask (out, in)``."""

    mask: Tensor

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"mask shape {tuple(mask.shape)} != (out, in) = {(out_features, in_features)}")
        self.register_buffer("mask", mask.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask.to(self.weight.dtype), self.bias)


def made_degrees(num_inputs: int, hidden_dims: Sequence[int], reverse: bool) -> list[Tensor]:
    """Degrees of the input units and of every hidden layer (deterministic, no random draws).

    Input ``i`` has degree ``i + 1`` (``D - i`` when ``reverse``). A hidden layer at least ``D - 1`` wide
    cycles through ``1 .. D - 1``, so every degree is represented; a narrower one spreads its units evenly
    over ``1 .. D - 1`` (rather than using only the first degrees, which would condition every later
    dimension on the first few inputs only).
    """
    d = num_inputs
    inputs = torch.arange(d, 0, -1) if reverse else torch.arange(1, d + 1)
    degrees = [inputs]
    top = max(d - 1, 1)
    for width in hidden_dims:
        units = torch.arange(width)
        degrees.append(units % top + 1 if width >= top else units * top // width + 1)
    return degrees


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation: ``x (B, D) → params (B, D, P)``.

    ``params[:, i]`` depends only on inputs of strictly smaller degree than input ``i``.

    Args:
        num_inputs: ``D``.
        hidden_dim: units per hidden layer.
        num_hidden: number of hidden layers (>= 1).
        params_per_dim: ``P``, outputs per input dimension.
        reverse: use the reversed ordering.
        dropout: dropout probability after every hidden layer (regularisation for small data).
        init_zeros: zero the output layer, so the transform starts as the identity.
    """

    def __init__(
        self,
        num_inputs: int,
        hidden_dim: int,
        num_hidden: int,
        params_per_dim: int,
        *,
        reverse: bool = False,
        dropout: float = 0.0,
        init_zeros: bool = True,
    ) -> None:
        super().__init__()
        if num_hidden < 1:
            raise ValueError(f"a MADE needs at least one hidden layer, got num_hidden={num_hidden}")
        self.num_inputs = num_inputs
        self.params_per_dim = params_per_dim
        degrees = made_degrees(num_inputs, [hidden_dim] * num_hidden, reverse)
        self.register_buffer("input_degrees", degrees[0], persistent=False)
        layers: list[nn.Module] = []
        for prev, cur in itertools.pairwise(degrees):
            mask = (cur.unsqueeze(1) >= prev.unsqueeze(0)).float()
            layers += [MaskedLinear(prev.numel(), cur.numel(), mask), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        # Output unit (i, p) carries input i's degree and sees hidden units of strictly smaller degree.
        out_deg = degrees[0].repeat_interleave(params_per_dim)
        out_mask = (out_deg.unsqueeze(1) > degrees[-1].unsqueeze(0)).float()
        out = MaskedLinear(hidden_dim, num_inputs * params_per_dim, out_mask)
        if init_zeros:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(x.shape[0], self.num_inputs, self.params_per_dim)


class MaskedAutoregressiveTransform(InvertibleModule):
    """One MAF layer on ``(B, D)`` vectors: a MADE conditioner and an affine or spline transform.

    Args:
        num_inputs: ``D``.
        hidden_dim, num_hidden, dropout, init_zeros: the MADE (see :class:`MADE`).
        reverse: reversed autoregressive ordering.
        transform: ``affine`` or ``spline``.
        num_bins, tail_bound: spline settings (``K`` bins on ``[-B, B]``).
    """

    def __init__(
        self,
        num_inputs: int,
        *,
        hidden_dim: int = 256,
        num_hidden: int = 2,
        reverse: bool = False,
        transform: str = "affine",
        num_bins: int = 8,
        tail_bound: float = 3.0,
        dropout: float = 0.0,
        init_zeros: bool = True,
    ) -> None:
        super().__init__()
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown MAF transform {transform!r}; choose from {', '.join(TRANSFORMS)}")
        if num_inputs < 2:
            raise ValueError(f"a masked autoregressive layer needs D >= 2, got {num_inputs}")
        if transform == "spline" and num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.transform = transform
        self.num_bins = num_bins
        self.tail_bound = float(tail_bound)
        per_dim = 2 if transform == "affine" else spline_param_count(num_bins)
        self.made = MADE(
            num_inputs, hidden_dim, num_hidden, per_dim, reverse=reverse, dropout=dropout, init_zeros=init_zeros
        )
        # Per-dimension gain of the bounded log-scale, s = w · tanh(raw), as in AffineCoupling.
        self.scale = nn.Parameter(torch.ones(num_inputs)) if transform == "affine" else None

    def _elementwise(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """``(y, log|dy/dx|)`` per entry, both ``(B, D)``."""
        params = full_precision(params)
        if self.transform == "affine":
            assert self.scale is not None
            s = self.scale * torch.tanh(params[..., 0])
            t = params[..., 1]
            if inverse:
                return x * (-s).exp() - t, -s
            return (x + t) * s.exp(), s
        w, h, d = split_spline_params(params, self.num_bins)
        return rational_quadratic_spline(x, w, h, d, inverse=inverse, bound=self.tail_bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        params = self.made(x)
        with float32_region(x):
            y, ld = self._elementwise(full_precision(x), params, inverse=False)
            return y.to(x.dtype), ld.sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        # Pass k recomputes every entry; those of order <= k only depend on entries already exact.
        yf = full_precision(y)
        x = torch.zeros_like(yf)
        for _ in range(y.shape[1]):
            params = self.made(x.to(y.dtype))
            with float32_region(y):
                x, _ = self._elementwise(yf, params, inverse=True)
        return x.to(y.dtype)
