"""CouplingOptions: validation, flat keywords ↔ options, and every builder honouring every field."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pytest
import torch

from flowood import build_flow, flow_options
from flowood.errors import ConfigError, FieldError
from flowood.flows.architectures import FLOWS
from flowood.flows.options import CouplingOptions, coupling_keywords, split_coupling_options
from flowood.settings import build as build_settings

# Flows with st-networks (CouplingOptions), at their registered tiny sizes: architecture-specific keywords and
# coupling keywords (flat names) of the registry's tiny configuration.
COUPLED = [name for name, spec in FLOWS.items() if spec.coupling is not None]
SHAPES = {name: FLOWS[name].tiny[0] for name in COUPLED}
TINY_COUPLING = {
    name: {k: v for k, v in FLOWS[name].tiny[1].items() if k in FLOWS[name].coupling_keywords} for name in COUPLED
}
TINY_OWN = {
    name: {k: v for k, v in FLOWS[name].tiny[1].items() if k not in FLOWS[name].coupling_keywords} for name in COUPLED
}


def _defaults(name: str) -> tuple[CouplingOptions, Mapping[str, str]]:
    spec = FLOWS[name]
    assert spec.coupling is not None
    return spec.coupling, spec.coupling_keywords


def fingerprint(flow: torch.nn.Module, shape: tuple[int, ...], run: bool = True) -> str:
    """Structure, settings (plain attributes such as a spline's ``tail_bound``), parameter values and, with
    ``run``, the function on a fixed input, as one hash."""
    h = hashlib.sha256(repr(flow).encode())
    for name, module in flow.named_modules():
        settings = sorted(
            (k, v) for k, v in vars(module).items() if k != "training" and isinstance(v, int | float | str | tuple)
        )
        h.update(f"{name}{settings}".encode())
    for key, value in flow.state_dict().items():
        h.update(key.encode() + str(tuple(value.shape)).encode() + value.detach().double().numpy().tobytes())
    if run:
        gen = torch.Generator().manual_seed(7)
        x = torch.rand((2, *shape), generator=gen) if len(shape) == 3 else torch.randn((2, *shape), generator=gen)
        flow.eval()  # no batch-norm statistics update: fingerprinting leaves the flow as it was
        with torch.no_grad():
            h.update(flow.transform(x)[0].double().numpy().tobytes())
    return h.hexdigest()


def build(name: str, **flat) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_flow(name, SHAPES[name], **TINY_OWN[name], **flat)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"st_net": "transformer"}, "st_net: 'transformer' is not one of resnet"),
        ({"mid_channels": 0}, "mid_channels must be >= 1"),
        ({"num_blocks": -1}, "num_blocks must be >= 0"),
        ({"st_net": "bottleneck"}, "st_net='bottleneck' needs bottleneck_dim >= 1"),
        ({"st_net": "bottleneck", "bottleneck_dim": 0}, "bottleneck_dim must be >= 1, got 0"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"coupling": "spine"}, "coupling: 'spine' is not one of affine, spline"),
        ({"coupling": "spline", "num_bins": 1}, "num_bins must be >= 2, got 1"),
        ({"tail_bound": 0.0}, "tail_bound must be > 0"),
        ({"mid_channels": True}, "mid_channels must be an integer, got True"),
        ({"mid_channels": "64"}, "mid_channels must be an integer"),
        ({"bottleneck_dim": 2.5}, "bottleneck_dim must be an integer"),
        ({"init_zeros": 1}, "init_zeros must be true or false"),
        ({"tail_bound": "3"}, "tail_bound must be a number"),
    ],
)
def test_bad_values_raise_one_line_config_errors(changes, message):
    with pytest.raises(FieldError, match=message) as info:
        CouplingOptions(**changes)
    assert "\n" not in str(info.value) and info.value.field in changes.keys() | {"bottleneck_dim"}


def test_values_are_normalised_to_python_numbers():
    opts = CouplingOptions(mid_channels=np.int64(6), tail_bound=2, dropout=0, num_bins=np.int32(5))
    assert type(opts.mid_channels) is int and type(opts.num_bins) is int
    assert type(opts.tail_bound) is float and opts.tail_bound == 2.0 and type(opts.dropout) is float
    with pytest.raises(ConfigError, match="mid_channels must be >= 1"):
        opts.replace(mid_channels=0)
    with pytest.raises(AttributeError):
        opts.mid_channels = 3  # type: ignore[misc]  # frozen


def test_split_maps_flat_keywords_and_names_them_in_errors():
    defaults, keywords = _defaults("tabular")
    opts, rest = split_coupling_options(
        {"hidden_dim": 12, "num_couplings": 3, "coupling": "spline"}, defaults, keywords
    )
    assert (opts.mid_channels, opts.coupling, opts.num_blocks) == (12, "spline", defaults.num_blocks)
    assert rest == {"num_couplings": 3}
    assert coupling_keywords(opts, keywords)["hidden_dim"] == 12
    assert split_coupling_options(coupling_keywords(opts, keywords), defaults, keywords) == (opts, {})
    with pytest.raises(FieldError, match=r"^hidden_dim must be >= 1, got 0$") as info:
        split_coupling_options({"hidden_dim": 0}, defaults, keywords)
    assert info.value.field == "hidden_dim"
    with pytest.raises(FieldError, match="transform: 'cubic' is not one of affine, spline"):
        split_coupling_options({"transform": "cubic"}, *_defaults("maf"))
    # the YAML / preset path names the flat keyword too
    with pytest.raises(ConfigError, match="num_hidden must be >= 0"):
        build_flow("maf", (4,), num_hidden=-1)


@pytest.mark.parametrize("name", COUPLED)
def test_options_and_flat_keywords_build_the_same_flow(name):
    defaults, keywords = _defaults(name)
    transform = "transform" if name == "maf" else "coupling"
    flat = dict(TINY_COUPLING[name], init_zeros=False, num_bins=5, tail_bound=2.5) | {transform: "spline"}
    options, own = split_coupling_options(flat, defaults, keywords)
    assert own == {} and options.init_zeros is False and options.num_bins == 5
    by_flat = build(name, **flat)
    torch.manual_seed(0)
    by_options = build_flow(name, SHAPES[name], coupling_options=options, **TINY_OWN[name])
    torch.manual_seed(0)
    body, _ = FLOWS[name].builder(SHAPES[name], build_settings(FLOWS[name].options, TINY_OWN[name]), options)
    assert by_flat.config == by_options.config
    assert fingerprint(by_flat, SHAPES[name]) == fingerprint(by_options, SHAPES[name])
    assert repr(body) == repr(by_flat.transform)
    # the recorded config rebuilds the same flow (what loading a run does)
    torch.manual_seed(0)
    again = build_flow(name, SHAPES[name], **by_flat.config)
    assert fingerprint(again, SHAPES[name]) == fingerprint(by_flat, SHAPES[name])


def _changed_values(name: str) -> dict[str, tuple[dict, object]]:
    """Per flat coupling keyword: (base flat keywords, a different value) under which it must matter."""
    spline = {"transform" if name == "maf" else "coupling": "spline"}
    changes: dict[str, tuple[dict, object]] = {}
    defaults, keywords = _defaults(name)
    for key, field in keywords.items():
        value = getattr(defaults, field)
        if field == "mid_channels":
            changes[key] = ({}, 6)
        elif field == "num_blocks":
            changes[key] = ({}, 2)
        elif field == "st_net":
            changes[key] = ({}, "convnet" if value != "convnet" else "resnet")
        elif field == "bottleneck_dim":
            changes[key] = ({"st_net": "bottleneck", "bottleneck_dim": 3}, 5)
        elif field in ("use_batch_norm", "init_zeros"):
            # batch norm exists in resnet st-nets only (glow's default highway has none)
            changes[key] = ({"st_net": "resnet"} if field == "use_batch_norm" else {}, not value)
        elif field == "dropout":
            changes[key] = ({}, 0.5)
        elif field == "coupling":
            changes[key] = ({}, "spline")
        elif field == "num_bins":
            changes[key] = (spline, 3)
        elif field == "tail_bound":
            changes[key] = (spline | {"init_zeros": False}, 0.5)
    return changes


@pytest.mark.parametrize("name", COUPLED)
def test_every_builder_honours_every_coupling_keyword(name):
    """A builder that drops one field (e.g. uses its default width) fails here."""
    changes = _changed_values(name)
    assert set(changes) == set(_defaults(name)[1])  # every settable field is exercised
    for key, (base, value) in changes.items():
        flat = TINY_COUPLING[name] | base
        before = fingerprint(build(name, **flat), SHAPES[name], run=False)
        after = fingerprint(build(name, **(flat | {key: value})), SHAPES[name], run=False)
        assert before != after, f"{name} ignores {key}={value!r}"


def test_width_reaches_every_st_net():
    flow = build("realnvp", mid_channels=6, num_blocks=1)
    widths = {m.out_channels for m in flow.modules() if isinstance(m, torch.nn.Conv2d)}
    assert {6, 12} <= widths  # scale 0 at 6 channels, its channel-wise couplings doubled
    mlp = build("tabular", hidden_dim=7, num_layers=1)
    assert 7 in {m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)}


def test_fields_an_architecture_fixes_are_refused():
    with pytest.raises(ConfigError, match=r"tabular does not use CouplingOptions\.st_net"):
        build_flow("tabular", (4,), coupling_options=CouplingOptions(st_net="resnet", use_batch_norm=False))
    with pytest.raises(ConfigError, match=r"realnvp does not use CouplingOptions\.dropout"):
        build_flow("realnvp", (1, 8, 8), coupling_options=CouplingOptions(dropout=0.5))
    with pytest.raises(ConfigError, match="unknown image st_net 'mlp'"):
        build_flow("glow", (1, 8, 8), st_net="mlp")
    with pytest.raises(ConfigError, match="not both"):
        build_flow("realnvp", (1, 8, 8), coupling_options=CouplingOptions(), mid_channels=4)
    with pytest.raises(ConfigError, match="does not take option"):
        build_flow("tabular", (4,), logit_alpha=0.9)  # preprocessing of image flows only


def test_logit_alpha_is_a_preprocessing_option_of_image_flows():
    flow = build("realnvp", **TINY_COUPLING["realnvp"], logit_alpha=0.95)
    assert flow.config["logit_alpha"] == 0.95
    assert [m.alpha for m in flow.modules() if hasattr(m, "alpha")] == [0.95]
    assert "logit_alpha" not in flow_options("tabular") and "logit_alpha" in flow_options("glow")


def test_flat_option_names_are_those_configs_use():
    """Model configs, presets and `flowood convert` keep their keys (issue 15 item 4)."""
    image = {"num_blocks", "mid_channels", "st_net", "bottleneck_dim", "use_batch_norm", "init_zeros"}
    image |= {"coupling", "num_bins", "tail_bound", "logit_alpha"}
    assert set(flow_options("realnvp")) == image | {"num_scales"}
    assert set(flow_options("glow")) == image | {"num_scales", "num_steps", "lu_decomposed"}
    assert set(flow_options("realnvp-cycle-mask")) == image
    assert set(flow_options("realnvp-horizontal-mask")) == image | {"num_couplings"}
    vector = {"hidden_dim", "dropout", "init_zeros", "num_bins", "tail_bound", "actnorm"}
    assert set(flow_options("tabular")) == vector | {"num_couplings", "num_layers", "coupling"}
    assert set(flow_options("maf")) == vector | {"num_layers", "num_hidden", "transform"}
    assert flow_options("glow")["mid_channels"] == 200 and flow_options("tabular")["hidden_dim"] == 256
    transformer = {"patch_size", "num_layers", "width", "heads", "mlp_ratio", "logit_alpha"}
    assert set(flow_options("tarflow")) == transformer | {"num_blocks"}
    assert set(flow_options("jet")) == transformer | {"num_couplings", "scale_factor", "spatial_every"}
