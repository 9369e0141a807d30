"""Named flow architectures and the registry behind :func:`flowood.build_flow`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from flowood.errors import ConfigError
from flowood.flows.autoregressive import MaskedAutoregressiveTransform
from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.coupling import AffineCoupling
from flowood.flows.flow import NormalizingFlow, image_preprocess
from flowood.flows.invconv import InvConv1x1, InvConv1x1LU
from flowood.flows.multiscale import FactorOut
from flowood.flows.normalization import ActNorm
from flowood.flows.options import FIELDS, CouplingOptions, coupling_keywords, split_coupling_options
from flowood.flows.reshape import Squeeze, Unsqueeze
from flowood.flows.splines import SplineCoupling
from flowood.flows.stnets import ST_NETS, build_st_net

IMAGE_ST_NETS = tuple(k for k in ST_NETS if k != "mlp")

# Per architecture: its coupling defaults, and the flat keywords (config / YAML / preset names) that set
# CouplingOptions fields; fields without a keyword are fixed at the default (e.g. image st-nets take no
# dropout, tabular and MAF condition on MLPs without batch norm).
_IMAGE_FIELDS = ("num_blocks", "mid_channels", "st_net", "bottleneck_dim", "use_batch_norm", "init_zeros")
_TRANSFORM_FIELDS = ("coupling", "num_bins", "tail_bound")
_IMAGE_KEYWORDS: dict[str, str] = {k: k for k in (*_IMAGE_FIELDS, *_TRANSFORM_FIELDS)}
_VECTOR_OPTIONS = CouplingOptions(st_net="mlp", mid_channels=256, num_blocks=2, use_batch_norm=False)
COUPLING_DEFAULTS: dict[str, tuple[CouplingOptions, dict[str, str]]] = {
    "realnvp": (CouplingOptions(), _IMAGE_KEYWORDS),
    "glow": (CouplingOptions(st_net="highway", mid_channels=200, num_blocks=3), _IMAGE_KEYWORDS),
    "realnvp-cycle-mask": (CouplingOptions(), _IMAGE_KEYWORDS),
    "realnvp-horizontal-mask": (CouplingOptions(), _IMAGE_KEYWORDS),
    "realnvp-vertical-mask": (CouplingOptions(), _IMAGE_KEYWORDS),
    "tabular": (
        _VECTOR_OPTIONS,
        {"hidden_dim": "mid_channels", "num_layers": "num_blocks", "dropout": "dropout", "init_zeros": "init_zeros"}
        | {k: k for k in _TRANSFORM_FIELDS},
    ),
    "maf": (
        _VECTOR_OPTIONS,
        {"hidden_dim": "mid_channels", "num_hidden": "num_blocks", "transform": "coupling"}
        | {k: k for k in ("num_bins", "tail_bound", "dropout", "init_zeros")},
    ),
}
_IMAGE_NAMES = frozenset(n for n, (_, kw) in COUPLING_DEFAULTS.items() if kw is _IMAGE_KEYWORDS)
# What image flows add to their options: the logit preprocessing's alpha (not a layer option).
IMAGE_PREPROCESS_DEFAULTS: dict[str, Any] = {"logit_alpha": 0.9}


def _image_shape(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} needs input_shape=(C, H, W), got {tuple(input_shape)}")
    return shape


def _vector_shape(input_shape: Sequence[int], name: str) -> tuple[int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"{name} needs input_shape=(D,) with D >= 2, got {tuple(input_shape)}")
    return (shape[0],)


def _options(name: str, options: CouplingOptions | None) -> CouplingOptions:
    """``options`` (architecture ``name``'s defaults when ``None``), refused where the architecture cannot
    honour them: a vector st-net in an image flow, or a field it fixes (no flat keyword) changed."""
    defaults, keywords = COUPLING_DEFAULTS[name]
    if options is None:
        return defaults
    if name in _IMAGE_NAMES and options.st_net not in IMAGE_ST_NETS:
        raise ConfigError(f"{name}: unknown image st_net {options.st_net!r}; choose from {', '.join(IMAGE_ST_NETS)}")
    settable = set(keywords.values())
    for field in FIELDS:
        if field not in settable and getattr(options, field) != getattr(defaults, field):
            raise ConfigError(
                f"{name} does not use CouplingOptions.{field} (fixed at {getattr(defaults, field)!r}), "
                f"got {getattr(options, field)!r}"
            )
    return options


def _coupling(
    mask: str, shape: tuple[int, ...], options: CouplingOptions, *, parity: int = 0, quadrant: int = 0
) -> AffineCoupling | SplineCoupling:
    """One coupling layer of ``mask`` on per-sample ``shape`` with ``options``' st-net and transform."""
    factory = partial(
        _st_factory,
        st_net=options.st_net,
        mid_channels=options.mid_channels,
        num_blocks=options.num_blocks,
        spatial_shape=shape[1:] if len(shape) == 3 else None,
        double_after_norm=mask == "checkerboard",
        use_batch_norm=options.use_batch_norm,
        bottleneck_dim=options.bottleneck_dim,
        init_zeros=options.init_zeros,
        dropout=options.dropout,
    )
    if options.coupling == "spline":
        return SplineCoupling(
            mask, shape, factory, parity, quadrant, num_bins=options.num_bins, tail_bound=options.tail_bound
        )
    return AffineCoupling(mask, shape, factory, parity=parity, quadrant=quadrant)


def _st_factory(in_ch: int, out_ch: int, **kwargs: Any):
    return build_st_net(kwargs.pop("st_net"), in_ch, out_ch, **kwargs)


def _realnvp_scale(
    scale: int, num_scales: int, shape: tuple[int, int, int], options: CouplingOptions, keeps: list[int]
) -> InvertibleModule:
    c, h, w = shape
    layers: list[InvertibleModule] = [_coupling("checkerboard", shape, options, parity=p) for p in (0, 1, 0)]
    if scale == num_scales - 1:
        layers.append(_coupling("checkerboard", shape, options, parity=1))
        return FlowSequential(*layers)
    squeezed = (4 * c, h // 2, w // 2)
    wider = options.replace(mid_channels=2 * options.mid_channels)
    layers.append(Squeeze())
    layers += [_coupling("channel", squeezed, wider, parity=p) for p in (0, 1, 0)]
    keeps.append(2 * c)
    inner = _realnvp_scale(scale + 1, num_scales, (2 * c, h // 2, w // 2), wider, keeps)
    layers.append(FactorOut(2 * c, inner))
    layers.append(Unsqueeze())
    return FlowSequential(*layers)


def build_realnvp(
    input_shape: Sequence[int], options: CouplingOptions | None = None, *, num_scales: int = 2
) -> tuple[InvertibleModule, list[int]]:
    """Multi-scale RealNVP (Dinh et al. 2017) in the layout of the original OOD code.

    Per scale: 3 checkerboard couplings, squeeze, 3 channel-wise couplings (st-net width doubled),
    factor out half of the channels; the last scale has 4 checkerboard couplings. Checkerboard parities
    0, 1, 0 (+ 1) are the original's ``reverse_mask`` False, True, False (+ True), so the original's
    weights give the original's function (``flowood.convert``; ``tests/convert``). The original's
    default ``init_zeros=False`` (random st-net output layers) is what its README commands ran.
    ``options`` default: ``CouplingOptions()`` (ResNet st-nets, 64 channels, 8 blocks, affine).
    """
    options = _options("realnvp", options)
    shape = _image_shape(input_shape, "realnvp")
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}")
    f = 2 ** (num_scales - 1)
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"realnvp with num_scales={num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    keeps: list[int] = []
    return _realnvp_scale(0, num_scales, shape, options, keeps), keeps


def _glow_scale(
    scale: int,
    num_scales: int,
    shape: tuple[int, int, int],
    keeps: list[int],
    num_steps: int,
    lu: bool,
    options: CouplingOptions,
) -> InvertibleModule:
    c, h, w = shape
    squeezed = (4 * c, h // 2, w // 2)
    layers: list[InvertibleModule] = [Squeeze()]
    for _ in range(num_steps):
        layers.append(ActNorm(4 * c))
        layers.append(InvConv1x1LU(4 * c) if lu else InvConv1x1(4 * c))
        layers.append(_coupling("channel", squeezed, options, parity=0))
    if scale < num_scales - 1:
        keeps.append(2 * c)
        inner = _glow_scale(scale + 1, num_scales, (2 * c, h // 2, w // 2), keeps, num_steps, lu, options)
        layers.append(FactorOut(2 * c, inner))
    layers.append(Unsqueeze())
    return FlowSequential(*layers)


def build_glow(
    input_shape: Sequence[int],
    options: CouplingOptions | None = None,
    *,
    num_scales: int = 2,
    num_steps: int = 8,
    lu_decomposed: bool = True,
) -> tuple[InvertibleModule, list[int]]:
    """Glow (Kingma & Dhariwal 2018): per scale, squeeze then ``num_steps`` × (ActNorm, invertible
    1×1 convolution, channel-wise affine coupling); factor out half the channels between scales.

    The original code's Glow uses the plain 1×1 convolution (``lu_decomposed=False``, what the paper
    presets use, giving the original's parameter counts); the LU parametrisation stores ``C² + C`` more
    numbers per convolution (masked full ``lower`` and ``upper`` matrices and ``log_s``).
    ``options`` default: highway st-nets, 200 channels, 3 blocks, affine."""
    options = _options("glow", options)
    shape = _image_shape(input_shape, "glow")
    f = 2**num_scales
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"glow with num_scales={num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    keeps: list[int] = []
    return _glow_scale(0, num_scales, shape, keeps, num_steps, lu_decomposed, options), keeps


def build_cycle_mask(
    input_shape: Sequence[int], options: CouplingOptions | None = None
) -> tuple[InvertibleModule, list[int]]:
    """The paper's cycle-mask RealNVP: 8 couplings on one scale, coupling k transforms quadrant
    (k+1) mod 4 from quadrant k mod 4, which prevents consecutive layers from co-adapting."""
    options = _options("realnvp-cycle-mask", options)
    shape = _image_shape(input_shape, "realnvp-cycle-mask")
    return FlowSequential(*(_coupling("quadrant", shape, options, quadrant=k % 4) for k in range(8))), []


def _half_mask_flow(
    mask: str, input_shape: Sequence[int], name: str, num_couplings: int, options: CouplingOptions | None
) -> tuple[InvertibleModule, list[int]]:
    options = _options(name, options)
    shape = _image_shape(input_shape, name)
    return FlowSequential(*(_coupling(mask, shape, options, parity=k % 2) for k in range(num_couplings))), []


def build_horizontal_mask(
    input_shape: Sequence[int], options: CouplingOptions | None = None, *, num_couplings: int = 8
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with horizontal half-image masks: each coupling transforms the top (or bottom) half
    from the other half; parity alternates."""
    return _half_mask_flow("horizontal", input_shape, "realnvp-horizontal-mask", num_couplings, options)


def build_vertical_mask(
    input_shape: Sequence[int], options: CouplingOptions | None = None, *, num_couplings: int = 8
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with vertical half-image masks (left/right halves), parity alternating."""
    return _half_mask_flow("vertical", input_shape, "realnvp-vertical-mask", num_couplings, options)


def build_tabular(
    input_shape: Sequence[int],
    options: CouplingOptions | None = None,
    *,
    num_couplings: int = 6,
    actnorm: bool = False,
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP for vectors: couplings with alternating half masks and MLP st-networks
    (``options.num_blocks`` hidden layers of ``options.mid_channels`` units; flat keywords ``num_layers``
    and ``hidden_dim``), optionally ActNorm before each. ``coupling="spline"`` uses rational-quadratic
    spline couplings (``num_bins`` bins on ``[-tail_bound, tail_bound]``) instead of affine ones.
    ``options`` default: MLP st-nets, 256 units, 2 hidden layers, affine."""
    options = _options("tabular", options)
    shape = _vector_shape(input_shape, "tabular")
    layers: list[InvertibleModule] = []
    for k in range(num_couplings):
        if actnorm:
            layers.append(ActNorm(shape[0]))
        layers.append(_coupling("tabular", shape, options, parity=k % 2))
    return FlowSequential(*layers), []


def build_maf(
    input_shape: Sequence[int],
    options: CouplingOptions | None = None,
    *,
    num_layers: int = 5,
    actnorm: bool = False,
) -> tuple[InvertibleModule, list[int]]:
    """Masked autoregressive flow for vectors (Papamakarios et al. 2017): ``num_layers`` MADE layers
    (``options.num_blocks`` masked hidden layers of ``options.mid_channels`` units; flat keywords
    ``num_hidden`` and ``hidden_dim``), orderings alternating natural / reversed, each an ``affine`` or
    ``spline`` autoregressive transform (``options.coupling``; flat keyword ``transform``); optionally
    ActNorm before each layer. Density evaluation is one pass per layer; sampling (the inverse) ``D``
    passes per layer."""
    options = _options("maf", options)
    shape = _vector_shape(input_shape, "maf")
    if num_layers < 1 or options.num_blocks < 1:
        raise ConfigError(f"maf needs num_layers, num_hidden >= 1, got {num_layers}, {options.num_blocks}")
    layers: list[InvertibleModule] = []
    for k in range(num_layers):
        if actnorm:
            layers.append(ActNorm(shape[0]))
        layers.append(
            MaskedAutoregressiveTransform(
                shape[0],
                hidden_dim=options.mid_channels,
                num_hidden=options.num_blocks,
                reverse=k % 2 == 1,
                transform=options.coupling,
                num_bins=options.num_bins,
                tail_bound=options.tail_bound,
                dropout=options.dropout,
                init_zeros=options.init_zeros,
            )
        )
    return FlowSequential(*layers), []


@dataclass(frozen=True)
class FlowSpec:
    """A registered architecture: builder and whether it models 8-bit images (its coupling defaults
    and flat coupling keywords are ``COUPLING_DEFAULTS[name]``)."""

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
    """Flat keyword options of architecture ``name`` with their defaults: the builder's own keywords,
    the :class:`CouplingOptions` fields it lets a config set (under its names for them) and, for image
    flows, ``logit_alpha`` (the preprocessing's logit alpha)."""
    spec = _spec(name)
    params = inspect.signature(spec.builder).parameters
    own = {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    defaults, keywords = COUPLING_DEFAULTS[name]
    return {**own, **coupling_keywords(defaults, keywords), **(IMAGE_PREPROCESS_DEFAULTS if spec.image else {})}


def _spec(name: str) -> FlowSpec:
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; available: {', '.join(FLOWS)}")
    return FLOWS[name]


def build_flow(
    name: str, input_shape: Sequence[int], coupling_options: CouplingOptions | None = None, **options: Any
) -> NormalizingFlow:
    """Build a named flow.

    Args:
        name: one of :func:`available_flows`.
        input_shape: per-sample shape, ``(C, H, W)`` for image flows or ``(D,)`` for vector flows.
        coupling_options: the st-net / transform options as a :class:`CouplingOptions`; when given, no
            flat coupling keyword may be (one source of truth).
        **options: flat architecture options (see :func:`flow_options`), e.g. ``num_scales``,
            ``num_blocks``, ``mid_channels``, ``st_net``, ``bottleneck_dim``, ``num_steps`` (glow),
            ``num_couplings`` / ``num_layers`` / ``hidden_dim`` (tabular), ``logit_alpha`` (image flows).

    Returns:
        A :class:`~flowood.flows.flow.NormalizingFlow`; image flows carry dequantisation + logit
        preprocessing for :meth:`~flowood.flows.flow.NormalizingFlow.bits_per_dim`. Its ``config`` holds
        every flat option (defaults filled in), so ``build_flow(name, shape, **flow.config)`` rebuilds it.
    """
    spec = _spec(name)
    allowed = flow_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{name} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(allowed)}")
    defaults, keywords = COUPLING_DEFAULTS[name]
    if coupling_options is not None:
        both = sorted(set(options) & set(keywords))
        if both:
            raise ConfigError(f"{name}: give {', '.join(both)} in coupling_options or as keywords, not both")
        defaults = coupling_options
    coupling, own = split_coupling_options(options, defaults, keywords)
    preprocess_options = {k: own.pop(k, v) for k, v in IMAGE_PREPROCESS_DEFAULTS.items()} if spec.image else {}
    body, keeps = spec.builder(input_shape, coupling, **own)
    config = {**allowed, **own, **coupling_keywords(coupling, keywords), **preprocess_options}
    preprocess = image_preprocess(config["logit_alpha"]) if spec.image else None
    return NormalizingFlow(body, input_shape, name=name, config=config, preprocess=preprocess, latent_keeps=keeps)
