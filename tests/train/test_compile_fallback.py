"""``flowood.train.compile_fallback``: a failing torch.compile backend → one warning naming
train.compile=false, the run continues eagerly and equals an eager run."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from flowood.perf import FastPath
from flowood.train.config import config_from_dict
from flowood.train.trainer import train
from tests.train.conftest import tiny_raw


def _failing_backend(gm, example_inputs):
    raise RuntimeError("backend exploded\nwith a long second line")


@pytest.fixture
def broken_compiler(monkeypatch):
    original = FastPath.prepare_model
    monkeypatch.setattr(
        FastPath,
        "prepare_model",
        lambda self, flow, backend=None, also=(): original(self, flow, backend=_failing_backend, also=also),
    )
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _cfg(compile: bool):
    return config_from_dict(tiny_raw(compile=compile, epochs=1, sample_every=0))


def test_failing_first_compiled_step_falls_back_to_eager(tmp_path, broken_compiler, capsys):
    result = train(_cfg(True), tmp_path / "compiled", quiet=True)
    warnings = [n for n in result.notes if "torch.compile failed" in n]
    assert len(warnings) == 1 and "train.compile=false" in warnings[0] and "backend exploded" in warnings[0]
    out = capsys.readouterr().out
    assert out.count("warning: torch.compile failed") == 1 and "second line" not in out  # one line, also quiet
    eager = train(_cfg(False), tmp_path / "eager", quiet=True)
    assert result.steps == eager.steps == 3 and not eager.notes
    a = load_file(str(tmp_path / "compiled" / "model.safetensors"))
    b = load_file(str(tmp_path / "eager" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the failed step was repeated from the same state


def test_failing_compile_call_falls_back_to_eager(tmp_path, monkeypatch, capsys):
    def no_compiler(self, flow, backend="inductor", also=()):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(FastPath, "prepare_model", no_compiler)
    result = train(_cfg(True), tmp_path / "run", quiet=True)
    assert result.epochs_completed == 1
    assert capsys.readouterr().out.count("train.compile=false") == 1
