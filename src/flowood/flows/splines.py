"""Rational-quadratic spline transforms (Durkan, Bekasov, Murray, Papamakarios 2019, "Neural Spline Flows").

A monotone rational-quadratic (RQ) spline with ``K`` bins maps ``[-B, B]`` onto itself; outside that
interval it is the identity ("linear tails"). It is parametrised per transformed entry by ``K`` bin widths,
``K`` bin heights and ``K - 1`` interior knot derivatives:

* widths / heights: ``softmax`` of the raw values, then mixed with a floor ``min_bin_width`` /
  ``min_bin_height`` so no bin degenerates, scaled to ``2B``;
* derivatives: ``min_derivative + softplus(raw + c)`` with ``c`` chosen so that a raw value of 0 gives
  derivative 1; the two boundary derivatives are fixed to 1 so the spline joins the identity tails with a
  continuous first derivative.

With all raw parameters zero (a zero-initialised st-network) the spline is the identity, which makes a
spline coupling start as the identity exactly like the affine couplings do.

The inverse is exact: inside a bin the spline is a ratio of quadratics, so ``x`` is the root of a quadratic
in the bin's local coordinate (Durkan et al. 2019, eq. 6–8), computed in the numerically stable form
``2c / (-b - sqrt(b² - 4ac))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision
from flowood.flows.masks import build_mask

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def spline_param_count(num_bins: int) -> int:
    """Raw parameters per transformed entry: ``K`` widths, ``K`` heights, ``K - 1`` interior derivatives."""
    return 3 * num_bins - 1


def _knots(raw: Tensor, bound: float, min_size: float) -> tuple[Tensor, Tensor]:
    """Knot positions ``(..., K + 1)`` from ``-bound`` to ``bound`` and bin sizes ``(..., K)``."""
    k = raw.shape[-1]
    sizes = min_size + (1.0 - min_size * k) * torch.softmax(raw, dim=-1)
    cum = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    cum = 2.0 * bound * cum - bound
    # Pin the end knots exactly: cumsum rounding must not move the spline's range off [-B, B].
    cum = torch.cat([torch.full_like(cum[..., :1], -bound), cum[..., 1:-1], torch.full_like(cum[..., :1], bound)], -1)
    return cum, cum[..., 1:] - cum[..., :-1]


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


def rational_quadratic_spline(
    x: Tensor,
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivatives: Tensor,
    *,
    inverse: bool = False,
    bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """Apply a monotone RQ spline on ``[-bound, bound]`` (identity outside) elementwise.

    Args:
        x: inputs of any shape ``S`` (the spline's outputs when ``inverse``).
        raw_widths, raw_heights: ``S + (K,)`` unnormalised bin widths / heights.
        raw_derivatives: ``S + (K - 1,)`` unconstrained interior knot derivatives.
        inverse: compute the inverse map instead.
        bound: ``B``; the spline acts on ``[-B, B]``.
        min_bin_width, min_bin_height, min_derivative: floors that keep the map well conditioned.

    Returns:
        ``(y, logabsdet)``, both of shape ``S``; ``logabsdet`` is ``log |dy/dx|`` of the map computed
        (so for ``inverse=True`` it is minus the forward log-derivative at the returned point), 0 in the tails.
    """
    k = raw_widths.shape[-1]
    if raw_heights.shape[-1] != k or raw_derivatives.shape[-1] != k - 1:
        raise ValueError(
            f"spline parameters need K widths, K heights, K-1 derivatives; got {raw_widths.shape[-1]}, "
            f"{raw_heights.shape[-1]}, {raw_derivatives.shape[-1]}"
        )
    if min_bin_width * k > 1.0 or min_bin_height * k > 1.0:
        raise ValueError(f"min_bin_width/height × num_bins must be <= 1 (num_bins={k})")
    inside = (x >= -bound) & (x <= bound)
    # Evaluate the spline on clamped values so the tails never produce inf/NaN (not even in the masked-out
    # branch of torch.where, whose gradient would still be NaN).
    xc = x.clamp(-bound, bound)

    cumw, widths = _knots(raw_widths, bound, min_bin_width)
    cumh, heights = _knots(raw_heights, bound, min_bin_height)
    shift = math.log(math.expm1(1.0 - min_derivative))  # softplus(0 + shift) + min_derivative == 1
    interior = min_derivative + F.softplus(raw_derivatives + shift)
    ones = torch.ones_like(interior[..., :1])
    derivs = torch.cat([ones, interior, ones], dim=-1)

    knots = cumh if inverse else cumw
    # Bin index: number of interior knots at or below the value, in [0, K - 1].
    idx = (xc.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1)
    x_k, w_k = _gather(cumw, idx), _gather(widths, idx)
    y_k, h_k = _gather(cumh, idx), _gather(heights, idx)
    d_k, d_k1 = _gather(derivs, idx), _gather(derivs, idx + 1)
    s_k = h_k / w_k
    two_s = d_k1 + d_k - 2.0 * s_k

    if inverse:
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * two_s
        b = h_k * d_k - dy * two_s
        c = -s_k * dy
        disc = (b.pow(2) - 4.0 * a * c).clamp_min(0.0)
        xi = (2.0 * c) / (-b - disc.sqrt())
        out = xi * w_k + x_k
    else:
        xi = (xc - x_k) / w_k
        num = h_k * (s_k * xi.pow(2) + d_k * xi * (1.0 - xi))
        out = y_k + num / (s_k + two_s * xi * (1.0 - xi))
    omx = xi * (1.0 - xi)
    denom = s_k + two_s * omx
    dnum = s_k.pow(2) * (d_k1 * xi.pow(2) + 2.0 * s_k * omx + d_k * (1.0 - xi).pow(2))
    logabsdet = torch.log(dnum) - 2.0 * torch.log(denom)
    if inverse:
        logabsdet = -logabsdet
    y = torch.where(inside, out, x)
    return y, torch.where(inside, logabsdet, torch.zeros_like(logabsdet))


def split_spline_params(params: Tensor, num_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(..., 3K - 1)`` raw parameters → ``(widths (..., K), heights (..., K), derivatives (..., K - 1))``."""
    return params[..., :num_bins], params[..., num_bins : 2 * num_bins], params[..., 2 * num_bins :]


class SplineCoupling(InvertibleModule):
    """Coupling layer whose transform is a rational-quadratic spline per transformed entry.

    The conditioning entries pass unchanged; an st-network applied to them outputs ``3K - 1`` raw spline
    parameters for every entry, and the transformed entries go through their own spline
    (:func:`rational_quadratic_spline`), so ``logdet = Σ log |dy/dx|`` over the transformed entries.
    Masks are those of :class:`~flowood.flows.coupling.AffineCoupling`.

    Args:
        mask: ``checkerboard``, ``channel``, ``horizontal``, ``vertical``, ``quadrant`` or ``tabular``.
        shape: per-sample input shape, ``(C, H, W)`` or ``(D,)``.
        st_net_factory: called with ``(in_channels, out_channels)``; ``in_channels`` is ``C`` (``C/2`` for the
            channel mask, ``D`` for tabular), ``out_channels`` is ``in_channels · (3K - 1)``, except for the
            tabular mask, where it is ``(number of transformed entries) · (3K - 1)``: a vector's st-network
            outputs parameters only for the entries it transforms (half the width of a full-size output,
            which matters because each entry needs ``3K - 1`` of them).
        parity: 0 or 1, which half conditions.
        quadrant: conditioning quadrant for the quadrant mask.
        num_bins: ``K``.
        tail_bound: ``B``: the spline acts on ``[-B, B]``, the identity elsewhere.
    """

    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)

    cond: Tensor
    change: Tensor
    change_index: Tensor

    def __init__(
        self,
        mask: str,
        shape: Sequence[int],
        st_net_factory: Callable[[int, int], nn.Module],
        parity: int = 0,
        quadrant: int = 0,
        *,
        num_bins: int = 8,
        tail_bound: float = 3.0,
        min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
        min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
        min_derivative: float = DEFAULT_MIN_DERIVATIVE,
    ) -> None:
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        if not tail_bound > 0:
            raise ValueError(f"tail_bound must be > 0, got {tail_bound}")
        self.mask_type = mask
        self.parity = parity
        self.shape = tuple(int(s) for s in shape)
        self.num_bins = num_bins
        self.tail_bound = float(tail_bound)
        self.spline_kwargs = dict(
            bound=self.tail_bound,
            min_bin_width=min_bin_width,
            min_bin_height=min_bin_height,
            min_derivative=min_derivative,
        )
        if mask == "channel":
            if len(self.shape) != 3 or self.shape[0] % 2:
                raise ValueError(f"channel mask needs (C, H, W) with even C, got {self.shape}")
            net_in = self.shape[0] // 2
        else:
            cond, change = build_mask(mask, self.shape, parity=parity, quadrant=quadrant)
            self.register_buffer("cond", cond, persistent=False)
            self.register_buffer("change", change, persistent=False)
            net_in = self.shape[0]
        net_out = net_in
        if mask == "tabular":
            # The entries build_mask("tabular") transforms: the second half for parity 0, the first for parity 1
            # (written out rather than nonzero(change), which has no shape on the meta device).
            d, half = self.shape[0], self.shape[0] // 2
            index = torch.arange(half, d) if parity == 0 else torch.arange(0, half)
            self.register_buffer("change_index", index, persistent=False)
            net_out = int(self.change_index.numel())
        self.st_net = st_net_factory(net_in, net_out * spline_param_count(num_bins))

    def _params(self, cond_input: Tensor) -> Tensor:
        """Raw spline parameters, shape ``input.shape + (3K - 1,)``, in at least fp32."""
        out = full_precision(self.st_net(cond_input))
        p = spline_param_count(self.num_bins)
        b, ch = out.shape[0], out.shape[1] // p
        out = out.reshape(b, ch, p, *out.shape[2:])
        return out.movedim(2, -1)

    def _spline(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        w, h, d = split_spline_params(params, self.num_bins)
        return rational_quadratic_spline(full_precision(x), w, h, d, inverse=inverse, **self.spline_kwargs)

    def _split_channels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x.chunk(2, dim=1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join_channels(self, x_change: Tensor, x_id: Tensor) -> Tensor:
        return torch.cat((x_change, x_id) if self.parity == 0 else (x_id, x_change), dim=1)

    def _transform(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if self.mask_type == "channel":
            x_change, x_id = self._split_channels(x)
            params = self._params(x_id)
            with float32_region(x):
                y_change, ld = self._spline(x_change, params, inverse)
                return self._join_channels(y_change.to(x.dtype), x_id), ld.flatten(1).sum(1)
        params = self._params(x * self.cond)
        if self.mask_type == "tabular":
            with float32_region(x):
                idx = self.change_index
                y_change, ld = self._spline(x.index_select(1, idx), params, inverse)
                return x.index_copy(1, idx, y_change.to(x.dtype)), ld.sum(1)
        with float32_region(x):
            y, ld = self._spline(x, params, inverse)
            change = self.change.to(torch.bool)
            y = torch.where(change, y.to(x.dtype), x)
            return y, (ld * self.change).flatten(1).sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._transform(x, inverse=False)

    def inverse(self, y: Tensor) -> Tensor:
        return self._transform(y, inverse=True)[0]
