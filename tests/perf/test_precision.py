"""The fast path's numerics on the CPU: bf16 autocast keeps log-dets and likelihoods in fp32."""

from __future__ import annotations

import math

import pytest
import torch

import flowood
from flowood.errors import ConfigError
from flowood.flows import NormalizingFlow
from flowood.ood.likelihood import score_bits_per_dim
from flowood.perf import FastPath, resolve_fast_path, resolve_precision, scaled_lr
from flowood.train.config import EXACT_OVERRIDES, apply_overrides, config_from_dict
from flowood.train.trainer import Trainer
from tests.train.conftest import tiny_raw

CPU = torch.device("cpu")


def _perturbed(flow: NormalizingFlow) -> NormalizingFlow:
    """Leave the identity initialisation so that s and t are not zero."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    flow.preprocess[0].noise = "midpoint"
    return flow.eval()


def _images(n: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 16, 16), generator=gen).float() / 255.0


FLOWS = {
    "realnvp": {"num_scales": 2, "num_blocks": 1, "mid_channels": 8},
    "glow": {"num_scales": 2, "num_steps": 2, "mid_channels": 8, "num_blocks": 1},
}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_bf16_autocast_bits_per_dim_close_to_fp32(name):
    flow = _perturbed(flowood.build_flow(name, (1, 16, 16), **FLOWS[name]))
    x = _images()
    with torch.no_grad():
        exact = flow.bits_per_dim(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = flow.bits_per_dim(x)
    assert fast.dtype == torch.float32
    assert torch.isfinite(fast).all()
    assert (fast - exact).abs().max().item() < 0.01


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_every_logdet_and_flow_state_is_fp32_under_autocast(name):
    flow = _perturbed(flowood.build_flow(name, (1, 16, 16), **FLOWS[name]))
    seen: list[tuple[str, torch.dtype, torch.dtype]] = []

    def hook(module, _inputs, output):
        if isinstance(output, tuple) and len(output) == 2:
            seen.append((type(module).__name__, output[0].dtype, output[1].dtype))

    handles = [m.register_forward_hook(hook) for m in flow.modules() if isinstance(m, flowood.flows.InvertibleModule)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ll = flow.log_likelihood_8bit(_images(4))
    for h in handles:
        h.remove()
    kinds = {k for k, _, _ in seen}
    assert {"AffineCoupling", "Dequantize", "LogitTransform"} <= kinds
    if name == "glow":
        assert {"ActNorm"} <= kinds and kinds & {"InvConv1x1", "InvConv1x1LU"}
    assert all(out == torch.float32 and ld == torch.float32 for _, out, ld in seen), seen
    assert ll.dtype == torch.float32


# The patch-token flows: their Transformer conditioners are what autocast should speed up.
TOKEN_FLOWS = {
    "tarflow": {"patch_size": 4, "num_blocks": 2, "num_layers": 1, "width": 32, "heads": 4},
    "jet": {"patch_size": 4, "num_couplings": 4, "num_layers": 1, "width": 32, "heads": 4},
}


@pytest.mark.parametrize("name", sorted(TOKEN_FLOWS))
def test_token_flow_conditioners_run_in_bf16_and_logdets_stay_fp32(name):
    """Under bf16 autocast every Transformer matmul runs in bf16 while each flow block's output and log-det are
    fp32; log-dets stay within 0.25 nats of fp32 (1e-3 nats per dimension on 16x16) and bits/dim within 0.01."""
    flow = _perturbed(flowood.build_flow(name, (1, 16, 16), **TOKEN_FLOWS[name]))
    images = _images(16)
    linear: set[torch.dtype] = set()
    blocks: list[tuple[torch.dtype, torch.dtype]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: linear.add(out.dtype))
        for m in flow.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    hooks += [
        m.register_forward_hook(lambda _m, _i, out: blocks.append((out[0].dtype, out[1].dtype)))
        for m in flow.modules()
        if isinstance(m, flowood.flows.InvertibleModule)
    ]
    with torch.no_grad():
        x, _ = flow.preprocess_images(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, fast_logdet = flow(x)
            fast_bpd = flow.bits_per_dim(images)
        for h in hooks:
            h.remove()
        _, exact_logdet = flow(x)
        exact_bpd = flow.bits_per_dim(images)
    assert linear == {torch.bfloat16}
    assert blocks and all(out == torch.float32 and ld == torch.float32 for out, ld in blocks), blocks
    assert fast_logdet.dtype == torch.float32 and fast_bpd.dtype == torch.float32
    assert exact_logdet.abs().mean() > 1.0  # far from the identity, so the comparison means something
    assert (fast_logdet - exact_logdet).abs().max().item() <= 0.25
    assert (fast_bpd - exact_bpd).abs().max().item() < 0.01


def test_inverse_round_trip_under_autocast():
    flow = _perturbed(flowood.build_flow("glow", (1, 16, 16), **FLOWS["glow"]))
    x, _ = flow.preprocess_images(_images(4))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z, _ = flow(x)
        back = flow.inverse(z)
    assert back.dtype == torch.float32
    assert (back - x).abs().max().item() < 1e-3


def test_resolve_fast_path_defaults():
    cpu = resolve_fast_path(CPU)
    assert cpu.precision == "fp32" and not cpu.compile and not cpu.channels_last and cpu.fused_optimizer
    assert resolve_fast_path(CPU, exact=True).is_exact
    assert not resolve_fast_path(CPU, exact=True).fused_optimizer
    assert not resolve_fast_path(CPU, optimizer="rmsprop").fused_optimizer
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(ValueError):
        resolve_precision("int8", CPU)
    bf16 = resolve_fast_path(CPU, precision="bf16", channels_last=True)
    assert bf16.autocast_dtype == torch.bfloat16
    assert bf16.prepare_input(torch.zeros(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)


def test_cuda_defaults_autotune_cudnn_and_exact_forbids_tf32():
    # Resolution only: nothing runs on the (absent) GPU.
    cuda = resolve_fast_path(torch.device("cuda"))
    assert cuda.cudnn_benchmark and cuda.channels_last and cuda.compile and cuda.allow_tf32 is None
    assert not resolve_fast_path(CPU).cudnn_benchmark
    exact = resolve_fast_path(torch.device("cuda"), exact=True)
    assert exact.is_exact and exact.allow_tf32 is False and not exact.cudnn_benchmark
    assert exact.describe()["allow_tf32"] is False


def test_backend_flags_apply_inside_the_context_and_are_restored():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, True, True
        with FastPath(CPU, cudnn_benchmark=True, allow_tf32=False).backends():
            assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (True, False, False)
        assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (False, True, True)
        with pytest.raises(RuntimeError), FastPath(CPU, allow_tf32=False).backends():
            raise RuntimeError("restored on errors too")
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
        with FastPath(CPU).backends():  # None: leave PyTorch's settings alone
            assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (False, True, True)
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before


def test_trainer_runs_under_its_backend_flags(tmp_path, monkeypatch):
    seen: list[bool] = []
    real = Trainer.train_step

    def spy(self, batch, ood_batch):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return real(self, batch, ood_batch)

    monkeypatch.setattr(Trainer, "train_step", spy)
    before = torch.backends.cuda.matmul.allow_tf32
    cfg = config_from_dict(tiny_raw(epochs=1, sample_every=0))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.fast = FastPath(CPU, allow_tf32=not before)
    trainer.run()
    assert seen == [not before] * 3
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_lr_scaling_rules():
    assert scaled_lr(1e-4, 512, 32, "none") == 1e-4
    assert scaled_lr(1e-4, 512, 32, "linear") == pytest.approx(1.6e-3)
    assert scaled_lr(1e-4, 512, 32, "sqrt") == pytest.approx(4e-4)
    assert scaled_lr(1e-4, 512, None, "linear") == 1e-4
    cfg = config_from_dict(tiny_raw(lr=1e-3, lr_scaling="sqrt", reference_batch_size=8))
    from flowood.train.optim import base_lr

    assert base_lr(cfg.train) == pytest.approx(1e-3 * math.sqrt(32 / 8))
    with pytest.raises(ConfigError, match="reference_batch_size"):
        config_from_dict(tiny_raw(lr_scaling="linear"))
    with pytest.raises(ConfigError, match=r"train\.precision"):
        config_from_dict(tiny_raw(precision="fp8"))


def test_exact_overrides_select_reference_path():
    cfg = config_from_dict(apply_overrides(tiny_raw(), EXACT_OVERRIDES))
    t = cfg.train
    fast = resolve_fast_path(
        CPU, precision=t.precision, channels_last=t.channels_last, compile=t.compile, fused_optimizer=t.fused_optimizer
    )
    assert fast.is_exact and not fast.fused_optimizer


def test_trainer_bf16_channels_last_trains(tmp_path):
    cfg = config_from_dict(tiny_raw(precision="bf16", channels_last=True, epochs=1, warmup_steps=2, sample_every=0))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    assert trainer.fast.precision == "bf16" and trainer.fast.channels_last
    result = trainer.run()
    assert result.steps == 3 and math.isfinite(result.train_bpd) and math.isfinite(result.test_bpd)
    assert isinstance(trainer.optimizer, torch.optim.Adam) and trainer.optimizer.defaults["fused"]


def test_trainer_fp16_uses_grad_scaler(tmp_path):
    cfg = config_from_dict(tiny_raw(precision="fp16", epochs=1, sample_every=0))
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    assert trainer.scaler is not None
    result = trainer.run()
    assert result.steps == 3 and result.nonfinite_steps == 0


def test_scoring_with_fast_path_matches_fp32():
    flow = _perturbed(flowood.build_flow("realnvp", (1, 16, 16), **FLOWS["realnvp"]))
    flow.preprocess[0].noise = "uniform"
    x = _images(24)
    exact = score_bits_per_dim(flow, [x[:10], x[10:]], seed=5)
    fast = score_bits_per_dim(flow, [x[:10], x[10:]], seed=5, fast=FastPath(CPU, precision="bf16", channels_last=True))
    assert exact.shape == fast.shape == (24,)
    assert abs(fast - exact).max() < 0.01


def test_cli_exact_flag_is_saved_in_the_run_config(tmp_path):
    import yaml

    from flowood.cli.app import main

    raw = tiny_raw(epochs=1, sample_every=0)
    raw["data"]["limit"] = 64
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(cfg_path), "--out", str(tmp_path / "run"), "--exact", "-q"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    assert saved["precision"] == "fp32" and saved["exact"] is True  # what the trainer resolves exact=True from
    assert saved["compile"] is False and saved["channels_last"] is False and saved["fused_optimizer"] is False
    assert main(["train", "--resume", str(tmp_path / "run"), "--exact"]) == 2  # --resume keeps the saved config
