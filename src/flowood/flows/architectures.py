"""Named flow architectures and the registry behind :func:`flowood.build_flow`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from flowood.flows.autoregressive import TRANSFORMS, MaskedAutoregressiveTransform
from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.coupling import AffineCoupling
from flowood.flows.flow import NormalizingFlow, image_preprocess
from flowood.flows.invconv import InvConv1x1, InvConv1x1LU
from flowood.flows.multiscale import FactorOut
from flowood.flows.normalization import ActNorm
from flowood.flows.reshape import Squeeze, Unsqueeze
from flowood.flows.splines import SplineCoupling
from flowood.flows.stnets import ST_NETS, build_st_net

IMAGE_ST_NETS = tuple(k for k in ST_NETS if k != "mlp")


def _image_shape(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} needs input_shape=(C, H, W), got {tuple(input_shape)}")
    return shape


def _check_st_net(st_net: str, bottleneck_dim: int | None) -> None:
    if st_net not in IMAGE_ST_NETS:
        raise ValueError(f"unknown image st_net {st_net!r}; choose from {', '.join(IMAGE_ST_NETS)}")
    if st_net == "bottleneck" and (bottleneck_dim is None or bottleneck_dim < 1):
        raise ValueError("st_net='bottleneck' needs bottleneck_dim >= 1 (e.g. bottleneck_dim=50)")


def _coupling(
    mask: str,
    shape: tuple[int, ...],
    *,
    parity: int = 0,
    quadrant: int = 0,
    st_net: str,
    mid_channels: int,
    num_blocks: int,
    use_batch_norm: bool,
    bottleneck_dim: int | None,
    init_zeros: bool,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> AffineCoupling | SplineCoupling:
    spatial = shape[1:] if len(shape) == 3 else None
    factory = partial(
        _st_factory,
        st_net=st_net,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        spatial_shape=spatial,
        double_after_norm=mask == "checkerboard",
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
    )
    if coupling == "spline":
        return SplineCoupling(mask, shape, factory, parity, quadrant, num_bins=num_bins, tail_bound=tail_bound)
    return AffineCoupling(mask, shape, factory, parity=parity, quadrant=quadrant)


COUPLINGS = ("affine", "spline")


def _coupling_options(coupling: str, num_bins: int, tail_bound: float) -> dict[str, Any]:
    """Validated coupling-transform options: ``affine`` (``(x + t)·exp(s)``) or ``spline`` (RQ spline,
    ``num_bins`` bins on ``[-tail_bound, tail_bound]``, identity outside; see :mod:`flowood.flows.splines`)."""
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; choose from {', '.join(COUPLINGS)}")
    if coupling == "spline" and num_bins < 2:
        raise ValueError(f"coupling='spline' needs num_bins >= 2, got {num_bins}")
    if not tail_bound > 0:
        raise ValueError(f"tail_bound must be > 0, got {tail_bound}")
    return {"coupling": coupling, "num_bins": int(num_bins), "tail_bound": float(tail_bound)}


def _st_factory(in_ch: int, out_ch: int, **kwargs: Any):
    return build_st_net(kwargs.pop("st_net"), in_ch, out_ch, **kwargs)


def _realnvp_scale(
    scale: int, num_scales: int, shape: tuple[int, int, int], mid: int, keeps: list[int], **st: Any
) -> InvertibleModule:
    c, h, w = shape
    layers: list[InvertibleModule] = [
        _coupling("checkerboard", shape, parity=p, mid_channels=mid, **st) for p in (0, 1, 0)
    ]
    if scale == num_scales - 1:
        layers.append(_coupling("checkerboard", shape, parity=1, mid_channels=mid, **st))
        return FlowSequential(*layers)
    squeezed = (4 * c, h // 2, w // 2)
    layers.append(Squeeze())
    layers += [_coupling("channel", squeezed, parity=p, mid_channels=2 * mid, **st) for p in (0, 1, 0)]
    keeps.append(2 * c)
    inner = _realnvp_scale(scale + 1, num_scales, (2 * c, h // 2, w // 2), 2 * mid, keeps, **st)
    layers.append(FactorOut(2 * c, inner))
    layers.append(Unsqueeze())
    return FlowSequential(*layers)


def build_realnvp(
    input_shape: Sequence[int],
    *,
    num_scales: int = 2,
    num_blocks: int = 8,
    mid_channels: int = 64,
    st_net: str = "resnet",
    bottleneck_dim: int | None = None,
    use_batch_norm: bool = True,
    init_zeros: bool = True,
    logit_alpha: float = 0.9,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """Multi-scale RealNVP (Dinh et al. 2017) in the layout of the original OOD code.

    Per scale: 3 checkerboard couplings, squeeze, 3 channel-wise couplings (st-net width doubled),
    factor out half of the channels; the last scale has 4 checkerboard couplings. Checkerboard parities
    0, 1, 0 (+ 1) are the original's ``reverse_mask`` False, True, False (+ True), so the original's
    weights give the original's function (``flowood.convert``; ``tests/golden``). The original's
    default ``init_zeros=False`` (random st-net output layers) is what its README commands ran.
    """
    shape = _image_shape(input_shape, "realnvp")
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}")
    f = 2 ** (num_scales - 1)
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"realnvp with num_scales={num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    _check_st_net(st_net, bottleneck_dim)
    keeps: list[int] = []
    body = _realnvp_scale(
        0,
        num_scales,
        shape,
        mid_channels,
        keeps,
        st_net=st_net,
        num_blocks=num_blocks,
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
        **_coupling_options(coupling, num_bins, tail_bound),
    )
    return body, keeps


def _glow_scale(
    scale: int, num_scales: int, shape: tuple[int, int, int], keeps: list[int], num_steps: int, lu: bool, **st: Any
) -> InvertibleModule:
    c, h, w = shape
    squeezed = (4 * c, h // 2, w // 2)
    layers: list[InvertibleModule] = [Squeeze()]
    for _ in range(num_steps):
        layers.append(ActNorm(4 * c))
        layers.append(InvConv1x1LU(4 * c) if lu else InvConv1x1(4 * c))
        layers.append(_coupling("channel", squeezed, parity=0, **st))
    if scale < num_scales - 1:
        keeps.append(2 * c)
        inner = _glow_scale(scale + 1, num_scales, (2 * c, h // 2, w // 2), keeps, num_steps, lu, **st)
        layers.append(FactorOut(2 * c, inner))
    layers.append(Unsqueeze())
    return FlowSequential(*layers)


def build_glow(
    input_shape: Sequence[int],
    *,
    num_scales: int = 2,
    num_steps: int = 8,
    num_blocks: int = 3,
    mid_channels: int = 200,
    st_net: str = "highway",
    bottleneck_dim: int | None = None,
    use_batch_norm: bool = True,
    lu_decomposed: bool = True,
    init_zeros: bool = True,
    logit_alpha: float = 0.9,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """Glow (Kingma & Dhariwal 2018): per scale, squeeze then ``num_steps`` × (ActNorm, invertible
    1×1 convolution, channel-wise affine coupling); factor out half the channels between scales.

    The original code's Glow uses the plain 1×1 convolution (``lu_decomposed=False``, what the paper
    presets use, giving the original's parameter counts); the LU parametrisation stores ``C² + C`` more
    numbers per convolution (masked full ``lower`` and ``upper`` matrices and ``log_s``)."""
    shape = _image_shape(input_shape, "glow")
    f = 2**num_scales
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"glow with num_scales={num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    _check_st_net(st_net, bottleneck_dim)
    keeps: list[int] = []
    body = _glow_scale(
        0,
        num_scales,
        shape,
        keeps,
        num_steps,
        lu_decomposed,
        st_net=st_net,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
        **_coupling_options(coupling, num_bins, tail_bound),
    )
    return body, keeps


def build_cycle_mask(
    input_shape: Sequence[int],
    *,
    num_blocks: int = 8,
    mid_channels: int = 64,
    st_net: str = "resnet",
    bottleneck_dim: int | None = None,
    use_batch_norm: bool = True,
    init_zeros: bool = True,
    logit_alpha: float = 0.9,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """The paper's cycle-mask RealNVP: 8 couplings on one scale, coupling k transforms quadrant
    (k+1) mod 4 from quadrant k mod 4, which prevents consecutive layers from co-adapting."""
    shape = _image_shape(input_shape, "realnvp-cycle-mask")
    _check_st_net(st_net, bottleneck_dim)
    st: dict[str, Any] = dict(
        st_net=st_net,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
        **_coupling_options(coupling, num_bins, tail_bound),
    )
    return FlowSequential(*(_coupling("quadrant", shape, quadrant=k % 4, **st) for k in range(8))), []


def _half_mask_flow(mask: str, input_shape: Sequence[int], name: str, num_couplings: int, **st: Any):
    shape = _image_shape(input_shape, name)
    _check_st_net(st["st_net"], st["bottleneck_dim"])
    return FlowSequential(*(_coupling(mask, shape, parity=k % 2, **st) for k in range(num_couplings))), []


def build_horizontal_mask(
    input_shape: Sequence[int],
    *,
    num_couplings: int = 8,
    num_blocks: int = 8,
    mid_channels: int = 64,
    st_net: str = "resnet",
    bottleneck_dim: int | None = None,
    use_batch_norm: bool = True,
    init_zeros: bool = True,
    logit_alpha: float = 0.9,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with horizontal half-image masks: each coupling transforms the top (or bottom) half
    from the other half; parity alternates."""
    return _half_mask_flow(
        "horizontal",
        input_shape,
        "realnvp-horizontal-mask",
        num_couplings,
        st_net=st_net,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
        **_coupling_options(coupling, num_bins, tail_bound),
    )


def build_vertical_mask(
    input_shape: Sequence[int],
    *,
    num_couplings: int = 8,
    num_blocks: int = 8,
    mid_channels: int = 64,
    st_net: str = "resnet",
    bottleneck_dim: int | None = None,
    use_batch_norm: bool = True,
    init_zeros: bool = True,
    logit_alpha: float = 0.9,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with vertical half-image masks (left/right halves), parity alternating."""
    return _half_mask_flow(
        "vertical",
        input_shape,
        "realnvp-vertical-mask",
        num_couplings,
        st_net=st_net,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        use_batch_norm=use_batch_norm,
        bottleneck_dim=bottleneck_dim,
        init_zeros=init_zeros,
        **_coupling_options(coupling, num_bins, tail_bound),
    )


def build_tabular(
    input_shape: Sequence[int],
    *,
    num_couplings: int = 6,
    hidden_dim: int = 256,
    num_layers: int = 2,
    actnorm: bool = False,
    dropout: float = 0.0,
    init_zeros: bool = True,
    coupling: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP for vectors: couplings with alternating half masks and MLP st-networks
    (``num_layers`` hidden layers of ``hidden_dim`` units), optionally ActNorm before each.
    ``coupling="spline"`` uses rational-quadratic spline couplings (``num_bins`` bins on
    ``[-tail_bound, tail_bound]``) instead of affine ones."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"tabular needs input_shape=(D,) with D >= 2, got {tuple(input_shape)}")
    transform = _coupling_options(coupling, num_bins, tail_bound)
    layers: list[InvertibleModule] = []
    for k in range(num_couplings):
        if actnorm:
            layers.append(ActNorm(shape[0]))
        factory = partial(
            _st_factory,
            st_net="mlp",
            mid_channels=hidden_dim,
            num_blocks=num_layers,
            init_zeros=init_zeros,
            dropout=dropout,
        )
        if transform["coupling"] == "spline":
            layers.append(
                SplineCoupling(
                    "tabular", shape, factory, k % 2, num_bins=transform["num_bins"], tail_bound=transform["tail_bound"]
                )
            )
        else:
            layers.append(AffineCoupling("tabular", shape, factory, parity=k % 2))
    return FlowSequential(*layers), []


def build_maf(
    input_shape: Sequence[int],
    *,
    num_layers: int = 5,
    hidden_dim: int = 256,
    num_hidden: int = 2,
    transform: str = "affine",
    num_bins: int = 8,
    tail_bound: float = 3.0,
    actnorm: bool = False,
    dropout: float = 0.0,
    init_zeros: bool = True,
) -> tuple[InvertibleModule, list[int]]:
    """Masked autoregressive flow for vectors (Papamakarios et al. 2017): ``num_layers`` MADE layers
    (``num_hidden`` masked hidden layers of ``hidden_dim`` units), orderings alternating natural / reversed,
    each an ``affine`` or ``spline`` autoregressive transform; optionally ActNorm before each layer.
    Density evaluation is one pass per layer; sampling (the inverse) ``D`` passes per layer."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"maf needs input_shape=(D,) with D >= 2, got {tuple(input_shape)}")
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown maf transform {transform!r}; choose from {', '.join(TRANSFORMS)}")
    if num_layers < 1 or num_hidden < 1 or hidden_dim < 1:
        raise ValueError(
            f"maf needs num_layers, num_hidden, hidden_dim >= 1, got {num_layers}, {num_hidden}, {hidden_dim}"
        )
    layers: list[InvertibleModule] = []
    for k in range(num_layers):
        if actnorm:
            layers.append(ActNorm(shape[0]))
        layers.append(
            MaskedAutoregressiveTransform(
                shape[0],
                hidden_dim=hidden_dim,
                num_hidden=num_hidden,
                reverse=k % 2 == 1,
                transform=transform,
                num_bins=num_bins,
                tail_bound=tail_bound,
                dropout=dropout,
                init_zeros=init_zeros,
            )
        )
    return FlowSequential(*layers), []


@dataclass(frozen=True)
class FlowSpec:
    """A registered architecture: builder and whether it models 8-bit images."""

    builder: Callable[..., tuple[InvertibleModule, list[int]]]
    image: bool
    summary: str


FLOWS: dict[str, FlowSpec] = {
    "realnvp": FlowSpec(build_realnvp, True, "multi-scale RealNVP, checkerboard + channel-wise couplings"),
    "glow": FlowSpec(build_glow, True, "multi-scale Glow: ActNorm, invertible 1x1 conv, affine coupling"),
    "realnvp-cycle-mask": FlowSpec(build_cycle_mask, True, "8 quadrant couplings 0->1->2->3->0 (paper sec. 6)"),
    "realnvp-horizontal-mask": FlowSpec(build_horizontal_mask, True, "couplings with top/bottom half masks"),
    "realnvp-vertical-mask": FlowSpec(build_vertical_mask, True, "couplings with left/right half masks"),
    "tabular": FlowSpec(build_tabular, False, "coupling flow with MLP st-nets for vectors"),
    "maf": FlowSpec(build_maf, False, "masked autoregressive flow (MADE layers) for vectors"),
}


def available_flows() -> list[str]:
    """Names accepted by :func:`build_flow`."""
    return list(FLOWS)


def flow_options(name: str) -> dict[str, Any]:
    """Keyword options of architecture ``name`` with their defaults."""
    spec = _spec(name)
    params = inspect.signature(spec.builder).parameters
    return {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _spec(name: str) -> FlowSpec:
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; available: {', '.join(FLOWS)}")
    return FLOWS[name]


def build_flow(name: str, input_shape: Sequence[int], **options: Any) -> NormalizingFlow:
    """Build a named flow.

    Args:
        name: one of :func:`available_flows`.
        input_shape: per-sample shape, ``(C, H, W)`` for image flows or ``(D,)`` for ``tabular``.
        **options: architecture options (see :func:`flow_options`), e.g. ``num_scales``,
            ``num_blocks``, ``mid_channels``, ``st_net``, ``bottleneck_dim``, ``num_steps`` (glow),
            ``num_couplings`` / ``num_layers`` / ``hidden_dim`` (tabular).

    Returns:
        A :class:`~flowood.flows.flow.NormalizingFlow`; image flows carry dequantisation + logit
        preprocessing for :meth:`~flowood.flows.flow.NormalizingFlow.bits_per_dim`.
    """
    spec = _spec(name)
    allowed = flow_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(allowed)}")
    config = {**allowed, **options}
    body, keeps = spec.builder(input_shape, **options)
    preprocess = image_preprocess(config["logit_alpha"]) if spec.image else None
    return NormalizingFlow(body, input_shape, name=name, config=config, preprocess=preprocess, latent_keeps=keeps)
