"""Named flow architectures and the registry behind :func:`flowood.build_flow`.

Each architecture is one :class:`FlowSpec` in :data:`FLOWS`: its builder, the frozen dataclass of its own
options (every field with a declared range, :mod:`flowood.settings`), whether it models 8-bit images, its
:class:`CouplingOptions` defaults when it has st-networks, and a tiny configuration that the contract test
(``tests/contracts/test_flows.py``) runs it at. :func:`flow_options`, config validation and
:func:`build_flow`'s flat keywords all follow from that one entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

from flowood.errors import ConfigError, FieldError
from flowood.flows.autoregressive import MaskedAutoregressiveTransform
from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.coupling import AffineCoupling
from flowood.flows.flow import NormalizingFlow, image_preprocess
from flowood.flows.invconv import InvConv1x1, InvConv1x1LU
from flowood.flows.jet import JetOptions, build_jet
from flowood.flows.multiscale import FactorOut
from flowood.flows.normalization import ActNorm
from flowood.flows.options import FIELDS, CouplingOptions, coupling_keywords, flat_keyword, split_coupling_options
from flowood.flows.reshape import Squeeze, Unsqueeze, image_shape
from flowood.flows.splines import SplineCoupling
from flowood.flows.stnets import ST_NETS, build_st_net
from flowood.flows.tarflow import TarFlowOptions, build_tarflow
from flowood.settings import build, check, setting

IMAGE_ST_NETS = tuple(k for k in ST_NETS if k != "mlp")

# The flat keywords (config / YAML / preset names) of the CouplingOptions fields an image coupling flow lets a
# config set; fields without a keyword stay at the architecture's default (image st-nets take no dropout).
_IMAGE_FIELDS = ("num_blocks", "mid_channels", "st_net", "bottleneck_dim", "use_batch_norm", "init_zeros")
_TRANSFORM_FIELDS = ("coupling", "num_bins", "tail_bound")
IMAGE_KEYWORDS: Mapping[str, str] = MappingProxyType({k: k for k in (*_IMAGE_FIELDS, *_TRANSFORM_FIELDS)})
# Vector flows condition on MLPs (MADE for maf) without batch norm, under their own names for width and depth.
_VEC = CouplingOptions(st_net="mlp", mid_channels=256, num_blocks=2, use_batch_norm=False)
_TABULAR_KEYWORDS: Mapping[str, str] = MappingProxyType(
    {"hidden_dim": "mid_channels", "num_layers": "num_blocks", "dropout": "dropout", "init_zeros": "init_zeros"}
    | {k: k for k in _TRANSFORM_FIELDS}
)
_MAF_KEYWORDS: Mapping[str, str] = MappingProxyType(
    {"hidden_dim": "mid_channels", "num_hidden": "num_blocks", "transform": "coupling"}
    | {k: k for k in ("num_bins", "tail_bound", "dropout", "init_zeros")}
)


@dataclass(frozen=True)
class ImagePreprocessOptions:
    """What every image flow adds to its options: the preprocessing (not a layer option)."""

    logit_alpha: float = setting(0.9, gt=0.0, le=1.0, doc="logit squeeze: x -> logit((1 - a)/2 + a x)")

    def __post_init__(self) -> None:
        check(self)


IMAGE_PREPROCESS_DEFAULTS: dict[str, Any] = dataclasses.asdict(ImagePreprocessOptions())


def _vector_shape(input_shape: Sequence[int], name: str) -> tuple[int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"{name} needs input_shape=(D,) with D >= 2, got {tuple(input_shape)}")
    return (shape[0],)


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


@dataclass(frozen=True)
class RealNVPOptions:
    """RealNVP's own options (its st-nets are :class:`CouplingOptions`)."""

    num_scales: int = setting(2, ge=1, doc="scales; all but the last factor out half the channels")

    def __post_init__(self) -> None:
        check(self)


def build_realnvp(
    input_shape: Sequence[int], options: RealNVPOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """Multi-scale RealNVP (Dinh et al. 2017) in the layout of the original OOD code.

    Per scale: 3 checkerboard couplings, squeeze, 3 channel-wise couplings (st-net width doubled),
    factor out half of the channels; the last scale has 4 checkerboard couplings. Checkerboard parities
    0, 1, 0 (+ 1) are the original's ``reverse_mask`` False, True, False (+ True), so the original's
    weights give the original's function (``flowood.convert``; ``tests/convert``). The original's
    default ``init_zeros=False`` (random st-net output layers) is what its README commands ran.
    Registered coupling default: ``CouplingOptions()`` (ResNet st-nets, 64 channels, 8 blocks, affine).
    """
    shape = image_shape(input_shape, "realnvp")
    num_scales = options.num_scales
    f = 2 ** (num_scales - 1)
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"realnvp with num_scales={num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    keeps: list[int] = []
    return _realnvp_scale(0, num_scales, shape, coupling, keeps), keeps


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


@dataclass(frozen=True)
class GlowOptions:
    """Glow's own options (its st-nets are :class:`CouplingOptions`)."""

    num_scales: int = setting(2, ge=1, doc="scales; all but the last factor out half the channels")
    num_steps: int = setting(8, ge=1, doc="steps (ActNorm, 1x1 conv, coupling) per scale")
    lu_decomposed: bool = setting(True, doc="LU-parametrised 1x1 convolutions (False: a plain matrix)")

    def __post_init__(self) -> None:
        check(self)


def build_glow(
    input_shape: Sequence[int], options: GlowOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """Glow (Kingma & Dhariwal 2018): per scale, squeeze then ``num_steps`` × (ActNorm, invertible
    1×1 convolution, channel-wise affine coupling); factor out half the channels between scales.

    The original code's Glow uses the plain 1×1 convolution (``lu_decomposed=False``, what the paper
    presets use, giving the original's parameter counts); the LU parametrisation stores ``C² + C`` more
    numbers per convolution (masked full ``lower`` and ``upper`` matrices and ``log_s``).
    Registered coupling default: highway st-nets, 200 channels, 3 blocks, affine."""
    shape = image_shape(input_shape, "glow")
    f = 2**options.num_scales
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"glow with num_scales={options.num_scales} needs H and W divisible by {f}, got {shape[1:]}")
    keeps: list[int] = []
    body = _glow_scale(0, options.num_scales, shape, keeps, options.num_steps, options.lu_decomposed, coupling)
    return body, keeps


@dataclass(frozen=True)
class NoOptions:
    """An architecture without options of its own."""


def build_cycle_mask(
    input_shape: Sequence[int], options: NoOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """The paper's cycle-mask RealNVP: 8 couplings on one scale, coupling k transforms quadrant
    (k+1) mod 4 from quadrant k mod 4, which prevents consecutive layers from co-adapting."""
    shape = image_shape(input_shape, "realnvp-cycle-mask")
    return FlowSequential(*(_coupling("quadrant", shape, coupling, quadrant=k % 4) for k in range(8))), []


@dataclass(frozen=True)
class HalfMaskOptions:
    """Options of the half-image mask flows."""

    num_couplings: int = setting(8, ge=1, doc="couplings, parity alternating")

    def __post_init__(self) -> None:
        check(self)


def _half_mask_flow(
    mask: str, input_shape: Sequence[int], name: str, options: HalfMaskOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    shape = image_shape(input_shape, name)
    layers = (_coupling(mask, shape, coupling, parity=k % 2) for k in range(options.num_couplings))
    return FlowSequential(*layers), []


def build_horizontal_mask(
    input_shape: Sequence[int], options: HalfMaskOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with horizontal half-image masks: each coupling transforms the top (or bottom) half
    from the other half; parity alternates."""
    return _half_mask_flow("horizontal", input_shape, "realnvp-horizontal-mask", options, coupling)


def build_vertical_mask(
    input_shape: Sequence[int], options: HalfMaskOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP with vertical half-image masks (left/right halves), parity alternating."""
    return _half_mask_flow("vertical", input_shape, "realnvp-vertical-mask", options, coupling)


@dataclass(frozen=True)
class TabularOptions:
    """The tabular RealNVP's own options (its MLP st-nets are :class:`CouplingOptions`)."""

    num_couplings: int = setting(6, ge=1, doc="couplings with alternating half masks")
    actnorm: bool = setting(False, doc="ActNorm before each coupling")

    def __post_init__(self) -> None:
        check(self)


def build_tabular(
    input_shape: Sequence[int], options: TabularOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """RealNVP for vectors: couplings with alternating half masks and MLP st-networks
    (``coupling.num_blocks`` hidden layers of ``coupling.mid_channels`` units; flat keywords ``num_layers``
    and ``hidden_dim``), optionally ActNorm before each. ``coupling="spline"`` uses rational-quadratic
    spline couplings (``num_bins`` bins on ``[-tail_bound, tail_bound]``) instead of affine ones.
    Registered coupling default: MLP st-nets, 256 units, 2 hidden layers, affine."""
    shape = _vector_shape(input_shape, "tabular")
    layers: list[InvertibleModule] = []
    for k in range(options.num_couplings):
        if options.actnorm:
            layers.append(ActNorm(shape[0]))
        layers.append(_coupling("tabular", shape, coupling, parity=k % 2))
    return FlowSequential(*layers), []


@dataclass(frozen=True)
class MAFOptions:
    """The masked autoregressive flow's own options (its MADE sizes are :class:`CouplingOptions`)."""

    num_layers: int = setting(5, ge=1, doc="MADE layers, orderings alternating natural / reversed")
    actnorm: bool = setting(False, doc="ActNorm before each layer")

    def __post_init__(self) -> None:
        check(self)


def build_maf(
    input_shape: Sequence[int], options: MAFOptions, coupling: CouplingOptions
) -> tuple[InvertibleModule, list[int]]:
    """Masked autoregressive flow for vectors (Papamakarios et al. 2017): ``num_layers`` MADE layers
    (``coupling.num_blocks`` masked hidden layers of ``coupling.mid_channels`` units; flat keywords
    ``num_hidden`` and ``hidden_dim``), orderings alternating natural / reversed, each an ``affine`` or
    ``spline`` autoregressive transform (``coupling.coupling``; flat keyword ``transform``); optionally
    ActNorm before each layer. Density evaluation is one pass per layer; sampling (the inverse) ``D``
    passes per layer."""
    shape = _vector_shape(input_shape, "maf")
    if coupling.num_blocks < 1:
        raise FieldError("num_hidden", f"maf needs {{name}} >= 1, got {coupling.num_blocks}")
    layers: list[InvertibleModule] = []
    for k in range(options.num_layers):
        if options.actnorm:
            layers.append(ActNorm(shape[0]))
        layers.append(
            MaskedAutoregressiveTransform(
                shape[0],
                hidden_dim=coupling.mid_channels,
                num_hidden=coupling.num_blocks,
                reverse=k % 2 == 1,
                transform=coupling.coupling,
                num_bins=coupling.num_bins,
                tail_bound=coupling.tail_bound,
                dropout=coupling.dropout,
                init_zeros=coupling.init_zeros,
            )
        )
    return FlowSequential(*layers), []


# ------------------------------------------------------------------------------------------------ the registry

Builder = Callable[[Sequence[int], Any, Any], tuple[InvertibleModule, list[int]]]
"""``builder(input_shape, options, coupling) -> (body, latent_keeps)``: ``options`` is an instance of the
spec's ``options`` type, ``coupling`` a :class:`CouplingOptions` (``None`` for flows without st-nets);
``latent_keeps`` the channels kept at each factor-out, finest first (``[]`` for one scale)."""


@dataclass(frozen=True)
class FlowSpec:
    """One registered architecture.

    Attributes:
        name: the name :func:`build_flow` and ``model.name`` take.
        builder: see :data:`Builder`.
        options: the frozen dataclass of its own options; each field is a flat keyword of the same name, with
            its default and declared range (:func:`flowood.settings.setting`).
        images: it models 8-bit images (``(C, H, W)`` inputs, dequantisation + logit preprocessing, whose
            ``logit_alpha`` joins its options); otherwise it models vectors ``(D,)``.
        tiny: ``(input_shape, flat options)`` of a small instance, built in milliseconds: the contract test
            runs every registered flow at this size, so a new flow cannot skip it.
        coupling: default :class:`CouplingOptions` of its st-networks, or ``None`` when it has none.
        keywords: flat keyword → :class:`CouplingOptions` field, for the fields a config may set (default: the
            image coupling keywords when ``coupling`` is given); other fields stay at ``coupling``'s values.
    """

    name: str
    builder: Builder
    options: type
    images: bool
    tiny: tuple[tuple[int, ...], Mapping[str, Any]]
    coupling: CouplingOptions | None = None
    keywords: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.keywords is None:
            object.__setattr__(self, "keywords", IMAGE_KEYWORDS if self.coupling is not None else {})
        object.__setattr__(self, "tiny", (tuple(self.tiny[0]), MappingProxyType(dict(self.tiny[1]))))

    @property
    def coupling_keywords(self) -> Mapping[str, str]:
        """``keywords`` (never ``None`` once constructed)."""
        assert self.keywords is not None
        return self.keywords

    @property
    def summary(self) -> str:
        """The first line of the builder's docstring."""
        return (self.builder.__doc__ or self.name).strip().splitlines()[0]


_GLOW = CouplingOptions(st_net="highway", mid_channels=200, num_blocks=3)
_NVP = CouplingOptions()
_TINY = {"num_blocks": 1, "mid_channels": 4}
_HALF = {"num_couplings": 4, **_TINY}
_TAB = {"num_couplings": 4, "num_layers": 1, "hidden_dim": 8}
_MAF = {"num_layers": 2, "num_hidden": 1, "hidden_dim": 8}
_TOKENS = {"patch_size": 2, "num_layers": 1, "width": 8, "heads": 2}

# One line per architecture: FlowSpec(name, builder, options, images, tiny, coupling defaults[, flat keywords]).
FLOWS: dict[str, FlowSpec] = {
    spec.name: spec
    for spec in (
        FlowSpec("realnvp", build_realnvp, RealNVPOptions, True, ((1, 4, 4), _TINY), _NVP),
        FlowSpec("glow", build_glow, GlowOptions, True, ((1, 4, 4), {"num_steps": 2, **_TINY}), _GLOW),
        FlowSpec("realnvp-cycle-mask", build_cycle_mask, NoOptions, True, ((1, 4, 4), _TINY), _NVP),
        FlowSpec("realnvp-horizontal-mask", build_horizontal_mask, HalfMaskOptions, True, ((2, 4, 4), _HALF), _NVP),
        FlowSpec("realnvp-vertical-mask", build_vertical_mask, HalfMaskOptions, True, ((1, 4, 4), _HALF), _NVP),
        FlowSpec("tabular", build_tabular, TabularOptions, False, ((6,), _TAB), _VEC, _TABULAR_KEYWORDS),
        FlowSpec("maf", build_maf, MAFOptions, False, ((5,), _MAF), _VEC, _MAF_KEYWORDS),
        FlowSpec("tarflow", build_tarflow, TarFlowOptions, True, ((1, 4, 4), {"num_blocks": 2, **_TOKENS})),
        FlowSpec("jet", build_jet, JetOptions, True, ((1, 4, 4), {"num_couplings": 3, **_TOKENS})),
    )
}


def available_flows() -> list[str]:
    """Names accepted by :func:`build_flow`."""
    return list(FLOWS)


def flow_spec(name: str) -> FlowSpec:
    """The registered :class:`FlowSpec` ``name``.

    Raises:
        ConfigError: no flow has that name (the message lists them).
    """
    if name not in FLOWS:
        raise ConfigError(f"unknown flow {name!r}; available: {', '.join(FLOWS)}")
    return FLOWS[name]


def flow_options(name: str) -> dict[str, Any]:
    """Flat keyword options of architecture ``name`` with their defaults: its own options, the
    :class:`CouplingOptions` fields it lets a config set (under its names for them) and, for image flows,
    ``logit_alpha`` (the preprocessing's logit alpha)."""
    spec = flow_spec(name)
    coupling = coupling_keywords(spec.coupling, spec.coupling_keywords) if spec.coupling is not None else {}
    return {**dataclasses.asdict(spec.options()), **coupling, **(IMAGE_PREPROCESS_DEFAULTS if spec.images else {})}


def _admissible(spec: FlowSpec, coupling: CouplingOptions) -> CouplingOptions:
    """``coupling`` refused where ``spec`` cannot honour it: a vector st-net in an image flow, or a field it fixes
    (one without a flat keyword) changed from its default."""
    assert spec.coupling is not None
    if spec.images and coupling.st_net not in IMAGE_ST_NETS:
        raise FieldError(
            flat_keyword("st_net", spec.coupling_keywords),
            f"{spec.name}: unknown image {{name}} {coupling.st_net!r}; choose from {', '.join(IMAGE_ST_NETS)}",
        )
    settable = set(spec.coupling_keywords.values())
    for field in FIELDS:
        if field not in settable and getattr(coupling, field) != getattr(spec.coupling, field):
            raise ConfigError(
                f"{spec.name} does not use CouplingOptions.{field} (fixed at {getattr(spec.coupling, field)!r}), "
                f"got {getattr(coupling, field)!r}"
            )
    return coupling


def build_flow(
    name: str, input_shape: Sequence[int], coupling_options: CouplingOptions | None = None, **options: Any
) -> NormalizingFlow:
    """Build a named flow.

    Args:
        name: one of :func:`available_flows`.
        input_shape: per-sample shape, ``(C, H, W)`` for image flows or ``(D,)`` for vector flows.
        coupling_options: the st-net / transform options as a :class:`CouplingOptions` (flows with st-nets
            only); when given, no flat coupling keyword may be (one source of truth).
        **options: flat architecture options (see :func:`flow_options`), e.g. ``num_scales``,
            ``num_blocks``, ``mid_channels``, ``st_net``, ``bottleneck_dim``, ``num_steps`` (glow),
            ``num_couplings`` / ``num_layers`` / ``hidden_dim`` (tabular), ``patch_size`` / ``width`` /
            ``heads`` (tarflow, jet), ``logit_alpha`` (image flows).

    Returns:
        A :class:`~flowood.flows.flow.NormalizingFlow`; image flows carry dequantisation + logit
        preprocessing for :meth:`~flowood.flows.flow.NormalizingFlow.bits_per_dim`. Its ``config`` holds
        every flat option (defaults filled in), so ``build_flow(name, shape, **flow.config)`` rebuilds it.

    Raises:
        FieldError: an option of the wrong type or out of its declared range; ``field`` is the flat keyword.
        ConfigError: an unknown flow or option, or coupling options the architecture cannot honour.
        ValueError: an ``input_shape`` the architecture cannot take (e.g. H not divisible by the patch size).
    """
    spec = flow_spec(name)
    allowed = flow_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{name} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(allowed)}")
    keywords = spec.coupling_keywords
    coupling: CouplingOptions | None = None
    if spec.coupling is None:
        if coupling_options is not None:
            raise ConfigError(f"{name} has no st-networks; it takes no coupling_options")
        own = dict(options)
    else:
        defaults = spec.coupling
        if coupling_options is not None:
            both = sorted(set(options) & set(keywords))
            if both:
                raise ConfigError(f"{name}: give {', '.join(both)} in coupling_options or as keywords, not both")
            defaults = coupling_options
        coupling, own = split_coupling_options(options, defaults, keywords)
        _admissible(spec, coupling)
    preprocess_options = {k: own.pop(k) for k in IMAGE_PREPROCESS_DEFAULTS if k in own}
    preprocess = build(ImagePreprocessOptions, preprocess_options) if spec.images else None
    arch: Any = build(spec.options, own)
    body, keeps = spec.builder(input_shape, arch, coupling)
    config = {
        **dataclasses.asdict(arch),
        **(coupling_keywords(coupling, keywords) if coupling is not None else {}),
        **(dataclasses.asdict(preprocess) if preprocess is not None else {}),
    }
    return NormalizingFlow(
        body,
        input_shape,
        name=name,
        config=config,
        preprocess=image_preprocess(preprocess.logit_alpha) if preprocess is not None else None,
        latent_keeps=keeps,
    )
