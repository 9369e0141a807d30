"""``flowood.perf`` split by job: each module imports alone, the old names still resolve, and the rules
of each module (exact mode, learning-rate scaling, CPU threads)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import flowood.perf
from flowood.perf import fast_path, lr_scaling, threads
from flowood.perf.fast_path import FastPath, exact_settings, resolve_fast_path
from flowood.perf.lr_scaling import scaled_lr
from flowood.perf.threads import cpu_threads
from flowood.train.config import EXACT_OVERRIDES, apply_overrides, config_from_dict
from flowood.train.setup import resolve_train_fast_path
from tests.tiny import HANG_SECONDS
from tests.train.conftest import tiny_raw

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # CUDA: resolution only, nothing runs on a GPU
SRC = Path(flowood.perf.__file__).resolve().parents[2]

# Every public name of the old flowood/perf.py module and the module that now holds it.
HOMES = {
    "FastPath": fast_path,
    "resolve_fast_path": fast_path,
    "resolve_precision": fast_path,
    "fused_optimizer_supported": fast_path,
    "eager_stance": fast_path,
    "PRECISIONS": fast_path,
    "LR_SCALINGS": lr_scaling,
    "scaled_lr": lr_scaling,
    "cpu_threads": threads,
}


@pytest.mark.parametrize("module", ["flowood.perf.fast_path", "flowood.perf.lr_scaling", "flowood.perf.threads"])
def test_each_module_imports_alone(module: str) -> None:
    # A fresh interpreter: in this process other tests have imported everything already.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('flowood.perf')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=HANG_SECONDS)
    assert done.returncode == 0, done.stderr
    assert module in done.stdout


@pytest.mark.parametrize("name", sorted(HOMES))
def test_old_names_resolve_to_the_same_objects(name: str) -> None:
    assert getattr(flowood.perf, name) is getattr(HOMES[name], name)
    assert name in flowood.perf.__all__


def test_package_exports_only_names_that_exist() -> None:
    for name in flowood.perf.__all__:
        assert hasattr(flowood.perf, name), name


# --- exact mode: one definition ------------------------------------------------------------------------------


@pytest.mark.parametrize("device", [CPU, CUDA], ids=["cpu", "cuda"])
def test_exact_flag_pins_every_setting_whatever_else_is_asked(device: torch.device) -> None:
    fast = resolve_fast_path(
        device,
        precision="bf16",
        channels_last=True,
        compile=True,
        compile_mode="max-autotune",
        fused_optimizer=True,
        exact=True,
    )
    for key, value in exact_settings().items():
        assert getattr(fast, key) == value, key
    assert fast.compile_mode == "default"
    assert fast.cudnn_benchmark is False  # no autotuning: the same convolution algorithm every run
    assert fast.allow_tf32 is False  # IEEE fp32 on Ampere and newer too
    assert fast.autocast_dtype is None and fast.is_exact
    # Behaviour unchanged by the split: the reference path is what perf.py's exact=True returned.
    assert fast == FastPath(device=device, allow_tf32=False)


def test_exact_settings_are_the_reference_path() -> None:
    assert exact_settings() == {"precision": "fp32", "channels_last": False, "compile": False, "fused_optimizer": False}
    mine = exact_settings()
    mine["precision"] = "bf16"
    assert exact_settings()["precision"] == "fp32"  # a fresh dict: no caller can change it for the others


def test_without_the_flag_the_fast_path_differs_from_exact() -> None:
    assert resolve_fast_path(CUDA) != resolve_fast_path(CUDA, exact=True)
    assert not resolve_fast_path(CUDA).is_exact
    assert resolve_fast_path(CPU).fused_optimizer and not resolve_fast_path(CPU, exact=True).fused_optimizer


@pytest.mark.parametrize(
    "change", [{"precision": "bf16"}, {"precision": "fp16"}, {"compile": True}, {"channels_last": True}]
)
def test_is_exact_fails_for_any_changed_forward_setting(change: dict[str, object]) -> None:
    exact = resolve_fast_path(CPU, exact=True)
    assert not dataclasses.replace(exact, **change).is_exact


def test_is_exact_ignores_optimizer_and_backend_flags() -> None:
    exact = resolve_fast_path(CPU, exact=True)
    changed = dataclasses.replace(exact, fused_optimizer=True, cudnn_benchmark=True, allow_tf32=None)
    assert changed.is_exact


def test_train_exact_overrides_are_the_exact_settings() -> None:
    # `flowood train --exact` pins the config fields through EXACT_OVERRIDES; they must stay exact_settings().
    base = tiny_raw(precision="bf16", channels_last=True, compile=True, fused_optimizer=True)
    train = config_from_dict(apply_overrides(base, EXACT_OVERRIDES)).train
    assert {key: getattr(train, key) for key in exact_settings()} == exact_settings()
    assert train.exact and len(EXACT_OVERRIDES) == len(exact_settings()) + 1


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_train_exact_resolves_the_reference_path_with_tf32_off(device: torch.device) -> None:
    # `flowood train --exact` goes through resolve_fast_path(exact=True): on CUDA TF32 and autotuning are off too.
    asked = tiny_raw(precision="bf16", channels_last=True, compile=True, fused_optimizer=True)
    exact = resolve_train_fast_path(config_from_dict(apply_overrides(asked, EXACT_OVERRIDES)).train, device)
    assert exact == resolve_fast_path(device, exact=True)
    assert exact.allow_tf32 is False and not exact.cudnn_benchmark and exact.is_exact


def test_train_without_exact_keeps_the_fast_path_on_cuda() -> None:
    fast = resolve_train_fast_path(config_from_dict(tiny_raw(precision="fp32")).train, CUDA)
    assert fast.cudnn_benchmark and fast.allow_tf32 is None and fast.channels_last and fast.compile


def test_exact_backends_switch_tf32_off_inside_and_restore() -> None:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = True, True, True
        with resolve_fast_path(CUDA, exact=True).backends():
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
            assert cudnn.benchmark  # exact leaves an enabled autotuner alone; it only never switches it on
        assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (True, True, True)
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before


# --- learning-rate scaling -----------------------------------------------------------------------------------


def test_scaled_lr_rules() -> None:
    assert scaled_lr(2e-4, 256, 64, "linear") == pytest.approx(8e-4)
    assert scaled_lr(2e-4, 256, 64, "sqrt") == pytest.approx(4e-4)
    assert scaled_lr(2e-4, 16, 64, "linear") == pytest.approx(5e-5)  # smaller batch: smaller lr
    assert scaled_lr(2e-4, 16, 64, "sqrt") == pytest.approx(1e-4)
    assert scaled_lr(2e-4, 256, 64, "none") == 2e-4
    assert scaled_lr(2e-4, 256, None, "sqrt") == 2e-4  # no reference batch: nothing to scale from
    assert scaled_lr(2e-4, 64, 64, "linear") == 2e-4


def test_scaled_lr_rejects_unknown_rule() -> None:
    with pytest.raises(ValueError, match="lr_scaling must be one of none, linear, sqrt"):
        scaled_lr(1e-3, 64, 32, "cubic")


# --- CPU threads ---------------------------------------------------------------------------------------------


def test_cpu_threads_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)  # the perf conftest restores its own count after the test
    with cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == 2
    with cpu_threads(0) as n:  # at least one thread
        assert n == 1
    assert torch.get_num_threads() == 2


def test_cpu_threads_auto_steps_down_only_when_overloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 0.0, 0.0))
    with cpu_threads(None) as n:
        assert n == 1
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    with cpu_threads(None) as n:
        assert n == 2
    assert torch.get_num_threads() == 2
