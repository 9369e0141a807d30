"""The st-network and coupling-transform options every flow builder shares: :class:`CouplingOptions`.

Every architecture in :mod:`flowood.flows.architectures` conditions its layers on the same kind of
network (an st-net, or MADE for ``maf``) and chooses the same kind of transform (affine or spline). Those
choices live in one frozen, validated dataclass. Model configs, YAML files, presets and ``flowood convert``
keep passing them as flat keywords (``mid_channels=64``, ``coupling="spline"``, or a builder's own names
for the same field such as tabular's ``hidden_dim``); :func:`split_coupling_options` turns such flat
keywords into a :class:`CouplingOptions` plus the architecture's own keywords, and
:func:`coupling_keywords` turns options back into flat keywords (what a flow's ``config`` records).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowood.errors import FieldError
from flowood.flows.stnets import ST_NETS
from flowood.settings import check, setting

COUPLINGS = ("affine", "spline")


@dataclass(frozen=True)
class CouplingOptions:
    """How each coupling (or autoregressive) layer of a flow computes its transform.

    Every field declares its type and range where it is declared (:func:`flowood.settings.setting`);
    :func:`flowood.settings.check` enforces them on construction, so a bad value is one
    :class:`~flowood.errors.FieldError` line naming the field (re-said with the flat keyword a config used, e.g.
    tabular's ``hidden_dim``, by :func:`split_coupling_options`).

    Attributes:
        st_net: the conditioning network, one of :data:`flowood.flows.stnets.ST_NETS` (``resnet``,
            ``convnet``, ``highway``, ``bottleneck`` for images; ``mlp`` for vectors, which MAF's MADE also
            is).
        mid_channels: its hidden width: channels of the convolutions (image st-nets; RealNVP doubles it
            at every scale's channel-wise couplings) or units per hidden layer (``mlp``, MADE). ``>= 1``.
        num_blocks: its depth: residual / convolution / highway blocks (image st-nets) or hidden layers
            (``mlp``, MADE). ``>= 0`` (a ResNet with 0 blocks is its input and output convolutions).
        bottleneck_dim: units of the dense layer halfway through a ``bottleneck`` st-net (the paper uses
            50 or 100); required ``>= 1`` for it, ``None`` for every other st-net.
        use_batch_norm: batch normalisation inside ``resnet`` / ``bottleneck`` st-nets.
        init_zeros: start the st-net's output layer at zero, so every layer starts as the identity.
        dropout: dropout probability in ``[0, 1)`` inside ``mlp`` st-nets and MADE.
        coupling: the transform: ``affine`` (``(x + t)·exp(s)``) or ``spline`` (monotone rational-quadratic
            spline, :mod:`flowood.flows.splines`).
        num_bins: spline bins (``>= 2``; affine transforms ignore it).
        tail_bound: the spline acts on ``[-tail_bound, tail_bound]`` (in the units of the layer's input,
            e.g. logits for image flows) and is the identity outside. ``> 0``.

    Raises:
        FieldError: on construction, for a value of the wrong type or out of range (one line naming the field).
    """

    st_net: str = setting("resnet", choices=ST_NETS, doc="the conditioning network")
    mid_channels: int = setting(64, ge=1, doc="st-net width: channels or hidden units")
    num_blocks: int = setting(8, ge=0, doc="st-net depth: blocks or hidden layers")
    bottleneck_dim: int | None = setting(None, ge=1, doc="units of a bottleneck st-net's dense layer")
    use_batch_norm: bool = setting(True, doc="batch norm inside resnet / bottleneck st-nets")
    init_zeros: bool = setting(True, doc="zero output layer: every coupling starts as the identity")
    dropout: float = setting(0.0, ge=0.0, lt=1.0, doc="dropout probability in mlp st-nets and MADE")
    coupling: str = setting("affine", choices=COUPLINGS, doc="the elementwise transform")
    num_bins: int = setting(8, ge=2, doc="spline bins")
    tail_bound: float = setting(3.0, gt=0.0, doc="the spline's interval [-B, B], in the layer input's units")

    def __post_init__(self) -> None:
        check(self)
        if self.st_net == "bottleneck" and self.bottleneck_dim is None:
            raise FieldError("bottleneck_dim", "st_net='bottleneck' needs {name} >= 1 (e.g. {name}=50)")

    def replace(self, **changes: Any) -> CouplingOptions:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CouplingOptions))


def split_coupling_options(
    flat: Mapping[str, Any], defaults: CouplingOptions, keywords: Mapping[str, str]
) -> tuple[CouplingOptions, dict[str, Any]]:
    """Split flat keywords into coupling options and the rest.

    Args:
        flat: keywords as a model config, preset or ``flowood convert`` passes them.
        defaults: the architecture's coupling options when a keyword is absent.
        keywords: flat keyword → :class:`CouplingOptions` field, for the fields the architecture lets a
            config set (e.g. ``{"hidden_dim": "mid_channels"}`` for tabular); other fields stay at
            ``defaults``.

    Returns:
        ``(options, rest)``: ``defaults`` with the given fields replaced, and the keywords that are not
        coupling options (architecture-specific ones), in their original order.

    Raises:
        FieldError: a value out of range, its ``field`` the flat keyword (e.g. ``hidden_dim must be >= 1``).
    """
    changes = {keywords[k]: v for k, v in flat.items() if k in keywords}
    rest = {k: v for k, v in flat.items() if k not in keywords}
    try:
        options = defaults.replace(**changes)
    except FieldError as err:
        raise FieldError(flat_keyword(err.field, keywords), err.template) from None
    return options, rest


def flat_keyword(field: str, keywords: Mapping[str, str]) -> str:
    """The flat keyword ``keywords`` gives :class:`CouplingOptions` field ``field`` (the field's own name when
    it has none)."""
    return next((k for k, f in keywords.items() if f == field), field)


def coupling_keywords(options: CouplingOptions, keywords: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of :func:`split_coupling_options`: ``options`` as flat keywords (the names of
    ``keywords``, in its order)."""
    return {k: getattr(options, f) for k, f in keywords.items()}
