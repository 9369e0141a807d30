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
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowood.errors import ConfigError, FieldError
from flowood.flows.stnets import ST_NETS

COUPLINGS = ("affine", "spline")


@dataclass(frozen=True)
class CouplingOptions:
    """How each coupling (or autoregressive) layer of a flow computes its transform.

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
        num_bins: spline bins (``>= 2`` with ``coupling="spline"``).
        tail_bound: the spline acts on ``[-tail_bound, tail_bound]`` (in the units of the layer's input,
            e.g. logits for image flows) and is the identity outside. ``> 0``.

    Raises:
        ConfigError: on construction, for a value out of range (one line naming the field).
    """

    st_net: str = "resnet"
    mid_channels: int = 64
    num_blocks: int = 8
    bottleneck_dim: int | None = None
    use_batch_norm: bool = True
    init_zeros: bool = True
    dropout: float = 0.0
    coupling: str = "affine"
    num_bins: int = 8
    tail_bound: float = 3.0

    def __post_init__(self) -> None:
        _check_types(self)
        if self.st_net not in ST_NETS:
            raise FieldError("st_net", f"unknown {{name}} {self.st_net!r}; choose from {', '.join(ST_NETS)}")
        if self.mid_channels < 1:
            raise FieldError("mid_channels", f"{{name}} must be >= 1, got {self.mid_channels}")
        if self.num_blocks < 0:
            raise FieldError("num_blocks", f"{{name}} must be >= 0, got {self.num_blocks}")
        if self.st_net == "bottleneck" and (self.bottleneck_dim is None or self.bottleneck_dim < 1):
            raise FieldError("bottleneck_dim", "st_net='bottleneck' needs {name} >= 1 (e.g. {name}=50)")
        if not 0.0 <= self.dropout < 1.0:
            raise FieldError("dropout", f"{{name}} must be in [0, 1), got {self.dropout}")
        if self.coupling not in COUPLINGS:
            raise FieldError("coupling", f"unknown {{name}} {self.coupling!r}; choose from {', '.join(COUPLINGS)}")
        if self.coupling == "spline" and self.num_bins < 2:
            raise FieldError("num_bins", f"spline transforms need {{name}} >= 2, got {self.num_bins}")
        if not self.tail_bound > 0:
            raise FieldError("tail_bound", f"{{name}} must be > 0, got {self.tail_bound}")

    def replace(self, **changes: Any) -> CouplingOptions:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CouplingOptions))

# Accepted value types per field (numbers.* so that NumPy scalars pass); bool is an Integral in Python, so
# it is refused where a count is wanted. Counts are stored as int and real numbers as float.
_TYPES: dict[str, tuple[type, ...]] = {
    "st_net": (str,),
    "mid_channels": (numbers.Integral,),
    "num_blocks": (numbers.Integral,),
    "bottleneck_dim": (numbers.Integral, type(None)),
    "use_batch_norm": (bool,),
    "init_zeros": (bool,),
    "dropout": (numbers.Real,),
    "coupling": (str,),
    "num_bins": (numbers.Integral,),
    "tail_bound": (numbers.Real,),
}
_NAMES = {numbers.Integral: "an integer", numbers.Real: "a number", str: "a string", bool: "true/false"}


def _check_types(options: CouplingOptions) -> None:
    for name, types in _TYPES.items():
        value = getattr(options, name)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            expected = " or ".join("None" if t is type(None) else _NAMES[t] for t in types)
            raise FieldError(name, f"{{name}} must be {expected}, got {value!r}")
        if value is None or isinstance(value, bool | str):
            continue
        number: Any = value  # an Integral or Real by the check above
        object.__setattr__(options, name, int(number) if types[0] is numbers.Integral else float(number))


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
        ConfigError: a value out of range, naming the flat keyword (e.g. ``hidden_dim must be >= 1``).
    """
    changes = {keywords[k]: v for k, v in flat.items() if k in keywords}
    rest = {k: v for k, v in flat.items() if k not in keywords}
    try:
        options = defaults.replace(**changes)
    except FieldError as err:
        name = next((k for k, f in keywords.items() if f == err.field), err.field)
        raise ConfigError(err.template.format(name=name)) from None
    return options, rest


def coupling_keywords(options: CouplingOptions, keywords: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of :func:`split_coupling_options`: ``options`` as flat keywords (the names of
    ``keywords``, in its order)."""
    return {k: getattr(options, f) for k, f in keywords.items()}
