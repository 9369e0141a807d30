"""torch.compile of the flow: trains without per-step recompilation; eval, scoring and inverse still work.

The fast tests use the ``aot_eager`` backend (Dynamo tracing + AOTAutograd, no C++ code generation),
which exercises graph capture, guards and recompilation exactly like Inductor but in seconds. The
Inductor test takes minutes on 2 CPU cores and only runs with ``FLOWOOD_COMPILE_TESTS=1``.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch._dynamo.utils import counters

import flowood
from flowood.perf import FastPath
from flowood.train.config import config_from_dict
from flowood.train.trainer import Trainer
from tests.train.conftest import tiny_raw


@pytest.fixture
def aot_eager(monkeypatch):
    original = FastPath.prepare_model
    monkeypatch.setattr(
        FastPath,
        "prepare_model",
        lambda self, flow, backend="aot_eager", also=(): original(self, flow, backend=backend, also=also),
    )
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


@pytest.mark.parametrize(
    "model",
    [
        ({"name": "glow", "num_scales": 1, "num_steps": 2, "mid_channels": 4, "num_blocks": 1}, "fp32"),
        ({"name": "realnvp", "num_scales": 1, "num_blocks": 1, "mid_channels": 4}, "bf16"),
    ],
    ids=["glow-fp32", "realnvp-bf16"],
)
def test_compiled_training_does_not_recompile_per_step(tmp_path, aot_eager, model):
    # Glow: ActNorm (data-dependent init) and the 1×1 convolution; RealNVP under bf16 autocast: the
    # fp32 regions nested inside the compiled graph.
    model, precision = model
    cfg = config_from_dict(tiny_raw(model=model, compile=True, epochs=2, sample_every=0, precision=precision))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    assert trainer.fast.compile
    graphs: list[int] = []
    step = trainer.train_step

    def counting_step(batch, ood_batch):
        out = step(batch, ood_batch)
        graphs.append(_graphs())
        return out

    trainer.train_step = counting_step  # type: ignore[method-assign]
    result = trainer.run()
    assert result.steps == 6 and math.isfinite(result.test_bpd)
    # Every step reuses one graph (the per-epoch evaluation runs eagerly), so nothing recompiles.
    assert graphs[1] == graphs[2] and graphs[3] == graphs[4] == graphs[5] == _graphs()
    assert _graphs() <= 2
    # The inverse (sampling) stays eager and works on the compiled flow.
    samples = trainer.flow.sample(2)
    assert samples.shape == (2, *trainer.flow.input_shape) and torch.isfinite(samples).all()
    # Parameter names are unchanged by in-place compilation.
    assert not any("_orig_mod" in k for k in trainer.flow.state_dict())


def test_compiled_blocks_under_memory_invert(tmp_path, aot_eager):
    # train.memory=invert calls the blocks one by one (forward, and the recomputation in the backward pass): each
    # is compiled, training runs them compiled and gives store's first step.
    model = {"name": "glow", "num_scales": 1, "num_steps": 1, "mid_channels": 4, "num_blocks": 1, "init_zeros": False}
    values = {}
    for memory in ("store", "invert"):
        cfg = config_from_dict(
            tiny_raw(model=model, compile=True, memory=memory, epochs=1, max_steps=1, sample_every=0)
        )
        trainer = Trainer(cfg, tmp_path / memory, quiet=True)
        if memory == "invert":
            assert trainer.flow.inversion is not None
            assert all(getattr(b, "_compiled_call_impl", None) is not None for b in trainer.flow.inversion.recomputed)
        values[memory] = trainer.run().train_bpd
    assert values["invert"] == pytest.approx(values["store"], rel=1e-6)
    assert _graphs() >= 3  # the transform and the blocks


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FLOWOOD_COMPILE_TESTS") != "1", reason="Inductor on 2 CPU cores takes minutes")
def test_inductor_compiled_flow_matches_eager():
    torch._dynamo.reset()
    flow = flowood.build_flow("realnvp", (1, 16, 16), num_scales=2, num_blocks=1, mid_channels=4).eval()
    flow.preprocess[0].noise = "midpoint"
    x = torch.rand(8, 1, 16, 16)
    with torch.no_grad():
        ref = flow.bits_per_dim(x)
        FastPath(torch.device("cpu"), compile=True).prepare_model(flow)
        got = flow.bits_per_dim(x)
    assert torch.allclose(ref, got, atol=1e-4)
