"""The flow contract, run over every entry of ``flowood.flows.architectures.FLOWS`` at its registered tiny size.

Protects the transform contract of docs/ARCHITECTURE.md for each registered architecture (builder, layers,
``NormalizingFlow``): exact round trip, log-det equal to the autograd Jacobian's in float64, the log-density as
base density plus log-det, determinism under a seed, sampling, a finite data log-likelihood, the state-dict round
trip, the recorded config rebuilding the flow, and every model option's declared range refused as one line naming
``model.KEY``. A flow registered in ``FLOWS`` is picked up here with nothing else to add; its specific behaviour is
tested beside its module in ``tests/flows/``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import flowood
from flowood.errors import ConfigError
from flowood.flows.architectures import FLOWS, ImagePreprocessOptions, flow_spec
from flowood.flows.options import CouplingOptions
from flowood.settings import declared_fields, is_numeric, out_of_range_values
from flowood.train.build import build_run_flow
from flowood.train.config import config_from_dict
from tests.flows.helpers import full_logdet, per_sample_logdet, randomize_

NAMES = sorted(FLOWS)


def _tiny(name: str, seed: int = 0, dtype: torch.dtype = torch.float64) -> flowood.NormalizingFlow:
    """The registered tiny flow, every parameter moved off its (often identity) initialisation."""
    shape, options = flow_spec(name).tiny
    torch.manual_seed(seed)
    flow = flowood.build_flow(name, shape, **options).to(dtype)
    flow.train()
    flow(torch.randn(8, *shape, dtype=dtype))  # data-dependent initialisation (ActNorm), if any
    return randomize_(flow, scale=0.1, seed=seed)


def _inputs(name: str, n: int, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *flow_spec(name).tiny[0]), generator=gen, dtype=dtype)


def test_every_tiny_configuration_uses_registered_options() -> None:
    for name, spec in FLOWS.items():
        assert set(spec.tiny[1]) <= set(flowood.flow_options(name)), name
        assert len(spec.tiny[0]) == (3 if spec.images else 1), name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_round_trip_is_exact(name: str, mode: str) -> None:
    flow = _tiny(name).train(mode == "train")
    x = _inputs(name, 4)
    with torch.no_grad():
        z, logdet = flow(x)
        back = flow.inverse(z)
    assert z.shape == x.shape and logdet.shape == (4,) and logdet.dtype == torch.float64
    assert (z - x).abs().max() > 1e-3, "the tiny flow is the identity: the contract would test nothing"
    assert torch.allclose(back, x, atol=1e-8, rtol=0), (back - x).abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_logdet_matches_the_autograd_jacobian(name: str) -> None:
    flow = _tiny(name).eval()
    x = _inputs(name, 2)
    _, logdet = flow(x)
    assert torch.allclose(logdet, per_sample_logdet(lambda inp: flow(inp)[0], x), atol=1e-7, rtol=0)
    flow.train()  # batch statistics couple the samples: compare with the whole batch's Jacobian
    _, logdet = flow(x)
    assert torch.allclose(logdet.sum(), full_logdet(lambda inp: flow(inp)[0], x), atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_is_base_density_plus_logdet(name: str) -> None:
    """Both terms computed here without the library: the base density by torch.distributions, the log-det from
    the autograd Jacobian (float64)."""
    flow = _tiny(name).eval()
    x = _inputs(name, 3)
    with torch.no_grad():
        z, _ = flow(x)
    base = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    expected = base + per_sample_logdet(lambda inp: flow(inp)[0], x)
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_flow_and_samples(name: str) -> None:
    a, b = _tiny(name, seed=3).eval(), _tiny(name, seed=3).eval()
    for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(pa, pb), ka
    x = _inputs(name, 3)
    with torch.no_grad():
        assert torch.equal(a(x)[0], b(x)[0]) and torch.equal(a(x)[1], b(x)[1])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(a.sample(4, generator=g1), b.sample(4, generator=g2))
    c = _tiny(name, seed=4).eval()
    with torch.no_grad():
        assert not torch.equal(a(x)[0], c(x)[0]), "another seed must give another flow"


@pytest.mark.parametrize("name", NAMES)
def test_sampling_shape_and_finite(name: str) -> None:
    flow = _tiny(name, dtype=torch.float32).eval()
    samples = flow.sample(5, temperature=0.7)
    assert samples.shape == (5, *flow.input_shape) and samples.dtype == torch.float32
    assert torch.isfinite(samples).all()
    if FLOWS[name].images:
        images = flow.sample_images(3)
        assert images.shape == (3, *flow.input_shape) and images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_log_likelihood_of_data_is_finite_per_sample(name: str) -> None:
    flow = _tiny(name, dtype=torch.float32).eval()
    shape = flow.input_shape
    gen = torch.Generator().manual_seed(2)
    data = torch.randint(0, 256, (6, *shape), generator=gen).float() / 255 if FLOWS[name].images else None
    data = data if data is not None else torch.randn((6, *shape), generator=gen)
    with torch.no_grad():
        ll = flow.log_likelihood(data)
    assert ll.shape == (6,) and ll.dtype == torch.float32 and torch.isfinite(ll).all()
    if FLOWS[name].images:  # the discrete likelihood of 8-bit images: a probability, so at most 0 nats
        assert (ll < 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_and_config_rebuild(name: str) -> None:
    trained = _tiny(name, seed=5, dtype=torch.float32).eval()
    shape = trained.input_shape
    torch.manual_seed(6)
    fresh = flowood.build_flow(name, shape, **trained.config).eval()  # what loading a run does
    assert fresh.config == trained.config
    fresh.load_state_dict(trained.state_dict())
    x = _inputs(name, 3, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(fresh(x)[0], trained(x)[0]) and torch.equal(fresh(x)[1], trained(x)[1])
        assert torch.equal(fresh.inverse(x), trained.inverse(x))


def _model_fields(name: str) -> list[tuple[str, object, object]]:
    """``(flat keyword, annotation, declared range)`` of every option a model config may set for ``name``."""
    spec = flow_spec(name)
    fields = list(declared_fields(spec.options))
    if spec.coupling is not None:
        by_field = {f: k for k, f in spec.coupling_keywords.items()}
        fields += [(by_field[f], ann, rng) for f, ann, rng in declared_fields(CouplingOptions) if f in by_field]
    if spec.images:
        fields += list(declared_fields(ImagePreprocessOptions))
    return fields


def _bad_values() -> list[tuple[str, str, object]]:
    cases = []
    for name in NAMES:
        for key, annotation, rng in _model_fields(name):
            values: list[object] = [[1]]  # a list where no model option takes one: a type error
            if rng is not None:
                values += out_of_range_values(rng, annotation)
            cases += [(name, key, v) for v in values]
    return cases


def test_every_model_option_is_enumerated_and_declared() -> None:
    for name in NAMES:
        fields = _model_fields(name)
        keys = [k for k, _, _ in fields]
        assert sorted(keys) == sorted(flowood.flow_options(name)), name  # nothing settable escapes the test
        for key, annotation, rng in fields:
            if is_numeric(annotation):
                assert rng is not None and rng.declared, f"{name}.{key} declares no range (or unbounded=True)"


@pytest.mark.parametrize(("name", "key", "value"), _bad_values(), ids=lambda v: str(v))
def test_out_of_range_model_option_is_one_line_naming_it(name: str, key: str, value: object) -> None:
    shape, tiny = flow_spec(name).tiny
    cfg = config_from_dict({"model": {"name": name, **tiny, key: value}})
    with pytest.raises(ConfigError) as info:
        build_run_flow(cfg, shape)
    message = str(info.value)
    assert f"model.{key}" in message and "\n" not in message, message


def test_registry_entries_are_complete() -> None:
    for name, spec in FLOWS.items():
        assert spec.name == name and spec.summary
        assert dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen  # type: ignore[attr-defined]
        if spec.coupling is not None:
            assert set(spec.coupling_keywords.values()) <= {f.name for f in dataclasses.fields(CouplingOptions)}
