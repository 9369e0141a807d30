"""Training and scoring throughput of flowood's flows: eager-fp32 baseline vs the fast path, same run.

Prints one JSON object per line::

    {"preset": ..., "mode": "eager-fp32" | "fast" | ..., "batch": B, "train_img_s": ..., "score_img_s": ...,
     "peak_mem_mb": ..., "settings": {...}, "device": ..., ...}

Modes: ``eager-fp32`` (fp32, eager, contiguous, for-each Adam: ``--exact``), ``fast`` (what
``train.precision=auto`` etc. resolve to on the device: on CUDA bf16 autocast + channels-last +
``torch.compile`` + fused Adam), ``fast-nocompile`` (the same without compilation), ``bf16`` (bf16
autocast without compilation, shown on the CPU), and ``naive`` (``naive_realnvp.py``: a straightforward
RealNVP with the original's per-layer host syncs; RealNVP presets only). All modes of a preset are
measured in the same process, one after the other, so their ratios hold on a noisy machine; each row
carries ``ratio_vs_baseline`` (train and score).

Training steps are what ``flowood train`` does per step (autocast forward, fp32 loss, backward, gradient
clipping, one finite check, optimiser step); scoring is :func:`flowood.ood.likelihood.iter_bits_per_dim`
under ``torch.inference_mode``. Data are random 8-bit images held on the device.

    python benchmarks/throughput.py --device cpu --small          # make bench: ~2 minutes on 2 cores
    python benchmarks/throughput.py --device cuda                 # the four paper presets
    python benchmarks/throughput.py --device cuda --presets realnvp-fashionmnist --batch-sizes 256 512
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from naive_realnvp import NaiveRealNVP

from flowood.flows import NormalizingFlow, build_flow
from flowood.host_allocator import host_allocator_state, tune_host_allocator
from flowood.ood.likelihood import iter_bits_per_dim
from flowood.perf import FastPath, resolve_fast_path
from flowood.train.presets import IMAGE_SHAPES, get_preset

PAPER_PRESETS = ["realnvp-fashionmnist", "realnvp-celeba", "glow-fashionmnist", "glow-celeba"]
SMALL_PRESETS = [
    "realnvp-fashionmnist-small",
    "glow-fashionmnist-small",
    "tarflow-fashionmnist-cpu",
    "jet-fashionmnist-cpu",
]
LN2 = math.log(2.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: the process's peak resident set so far (monotone across modes; an upper bound per mode).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def preset_flow(name: str, device: torch.device) -> tuple[NormalizingFlow, tuple[int, ...], dict[str, Any]]:
    """The preset's flow (seeded), its input shape and its train section."""
    preset = get_preset(name)
    model = dict(preset["model"])
    arch = model.pop("name")
    shape = IMAGE_SHAPES.get(preset["data"]["dataset"], (1, 28, 28))
    torch.manual_seed(0)
    return build_flow(arch, shape, **model).to(device), shape, preset["train"]


def flops_per_image(name: str, device: torch.device) -> dict[str, float]:
    """GFLOP per image of the preset's flow: a training step (forward + backward) and scoring (forward).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of 2 (convolutions and matrix
    products: the usual "model FLOPs"; elementwise work is not counted), so that each row can say which
    fraction of the hardware's peak its throughput uses.
    """
    from torch.utils.flop_counter import FlopCounterMode

    flow, shape, _ = preset_flow(name, device)
    x = torch.rand(2, *shape, device=device)
    with FlopCounterMode(display=False) as counter:
        (-flow.log_likelihood_8bit(x)).mean().backward()
    train = counter.get_total_flops() / 2
    flow.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        flow.log_likelihood_8bit(x)
    score = counter.get_total_flops() / 2
    return {"train_gflop_per_img": _sig(train / 1e9), "score_gflop_per_img": _sig(score / 1e9)}


def _sig(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant figures (tiny test models and H200 rates alike)."""
    return float(f"{value:.{digits}g}")


def _optimizer(params: list[nn.Parameter], train: dict[str, Any], fused: bool) -> torch.optim.Optimizer:
    lr = float(train.get("lr", 1e-4))
    if train.get("optimizer") == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    adam = torch.optim.AdamW if train.get("optimizer") == "adamw" else torch.optim.Adam
    return adam(params, lr=lr, **({"fused": True} if fused else {}))


def _time_loop(step: Callable[[], None], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls (compilation happens there)."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _batch_cycler(data: Tensor) -> Callable[[int], Tensor]:
    """``next_batch(size)``: consecutive slices of the uint8 images ``data``, as floats in [0, 1], wrapping around."""
    n = data.shape[0]
    state = {"i": 0}

    def next_batch(size: int) -> Tensor:
        i = state["i"]
        state["i"] = (i + size) % (n - size)
        return data[i : i + size].float() / 255.0

    return next_batch


def measure_flow(
    flow: NormalizingFlow,
    fast: FastPath,
    train: dict[str, Any],
    data: Tensor,
    batch: int,
    score_batch: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Train and score throughput of one flow under one fast-path setting (call inside ``fast.backends()``)."""
    device = fast.device
    fast.prepare_model(flow)
    params = [p for p in flow.parameters() if p.requires_grad]
    opt = _optimizer(params, train, fast.fused_optimizer)
    clip = float(train.get("grad_clip") or math.inf)
    scale = flow.num_dims * LN2
    next_batch = _batch_cycler(data)

    def train_step() -> None:
        x = fast.prepare_input(next_batch(batch))
        with fast.autocast():
            loss = (-flow.log_likelihood_8bit(x) / scale).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        if bool(torch.isfinite(loss.detach()) & torch.isfinite(norm)):  # the trainer's one sync per step
            opt.step()

    _reset_peak(device)
    flow.train()
    t0 = time.perf_counter()
    sec = _time_loop(train_step, args.warmup, args.steps, device)
    train_wall = time.perf_counter() - t0
    peak = _peak_mb(device)

    flow.eval()

    def score_step() -> None:
        for _ in iter_bits_per_dim(flow, [data[:score_batch].float() / 255.0], fast=fast):
            pass

    score_sec = _time_loop(score_step, args.warmup, args.score_steps, device)
    return {
        "train_img_s": round(batch / sec, 1),
        "score_img_s": round(score_batch / score_sec, 1),
        "peak_mem_mb": round(max(peak, _peak_mb(device)), 1),
        "train_warmup_plus_timed_s": round(train_wall, 2),
        "settings": fast.describe(),
    }


def measure_naive(
    preset: dict[str, Any], shape: tuple[int, ...], data: Tensor, batch: int, score_batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The straightforward reference implementation (RealNVP presets), fp32 eager."""
    device = data.device
    model_cfg = preset["model"]
    torch.manual_seed(0)
    model = NaiveRealNVP(shape[0], model_cfg["num_scales"], model_cfg["mid_channels"], model_cfg["num_blocks"])
    model.to(device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=float(preset["train"]["lr"]))
    next_batch = _batch_cycler(data)

    def train_step() -> None:
        loss = model(next_batch(batch)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 100.0)
        opt.step()

    _reset_peak(device)
    model.train()
    sec = _time_loop(train_step, args.warmup, args.steps, device)
    peak = _peak_mb(device)
    model.eval()

    def score_step() -> None:
        with torch.inference_mode():
            model(data[:score_batch].float() / 255.0).cpu()

    score_sec = _time_loop(score_step, args.warmup, args.score_steps, device)
    return {
        "train_img_s": round(batch / sec, 1),
        "score_img_s": round(score_batch / score_sec, 1),
        "peak_mem_mb": round(peak, 1),
        "parameters": sum(p.numel() for p in params),
        "settings": {"device": str(device), "precision": "fp32", "implementation": "benchmarks/naive_realnvp.py"},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _modes(device: torch.device, requested: list[str] | None) -> list[str]:
    if requested:
        return requested
    if device.type == "cuda":
        return ["eager-fp32", "fast-nocompile", "fast"]
    return ["eager-fp32", "fast", "bf16", "naive"]


def _fast_for(mode: str, device: torch.device, optimizer: str) -> FastPath:
    if mode == "eager-fp32":
        return resolve_fast_path(device, exact=True)
    if mode == "fast":
        return resolve_fast_path(device, optimizer=optimizer)
    if mode == "fast-nocompile":
        return resolve_fast_path(device, optimizer=optimizer, compile=False)
    if mode == "fast-compile":
        return resolve_fast_path(device, optimizer=optimizer, compile=True)
    if mode == "fast-cudagraphs":  # compiled with CUDA graphs: no per-kernel launch cost (CUDA only)
        return resolve_fast_path(device, optimizer=optimizer, compile=True, compile_mode="reduce-overhead")
    if mode == "bf16":
        return resolve_fast_path(device, precision="bf16", optimizer=optimizer, compile=False)
    if mode == "channels-last":  # fp32, eager: the memory layout alone
        return resolve_fast_path(device, precision="fp32", channels_last=True, optimizer=optimizer, compile=False)
    raise ValueError(f"unknown mode {mode!r}")


def _measure_mode(
    name: str,
    mode: str,
    preset: dict[str, Any],
    shape: tuple[int, ...],
    data: Tensor,
    batch: int,
    device: torch.device,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One measurement of one mode (errors are returned, not raised)."""
    try:
        if mode == "naive":
            return measure_naive(preset, shape, data, batch, args.score_batch, args)
        flow, _, train = preset_flow(name, device)
        params = sum(p.numel() for p in flow.parameters())
        fast = _fast_for(mode, device, train.get("optimizer", "adam"))
        with fast.backends():
            return {"parameters": params, **measure_flow(flow, fast, train, data, batch, args.score_batch, args)}
    except Exception as err:  # report and continue with the next mode
        return {"error": f"{type(err).__name__}: {err}"[:500]}


def _aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median throughput over repeats (the first error wins); keeps the per-repeat values."""
    if not results:
        return {}
    errors = [r for r in results if "error" in r]
    if errors:
        return errors[0]
    out = dict(results[-1])
    for key in ("train_img_s", "score_img_s"):
        out[key] = round(statistics.median(r[key] for r in results), 1)
        out[f"{key}_repeats"] = [r[key] for r in results]
    out["peak_mem_mb"] = max(r["peak_mem_mb"] for r in results)
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every (preset, batch, mode) and print a JSON row for each."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or (SMALL_PRESETS if args.small else PAPER_PRESETS)
    rows: list[dict[str, Any]] = []
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host_allocator": host_allocator_state(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
    }
    for name in presets:
        preset = get_preset(name)
        flops = flops_per_image(name, device)
        for batch in args.batch_sizes:
            gen = torch.Generator().manual_seed(0)
            shape = IMAGE_SHAPES.get(preset["data"]["dataset"], (1, 28, 28))
            n = max(4 * batch, args.score_batch) + batch
            data = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8).to(device)
            modes = [m for m in _modes(device, args.modes) if m != "naive" or preset["model"]["name"] == "realnvp"]
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
            # Modes are interleaved and repeated so that load changes on a shared machine hit all of them.
            for _ in range(args.repeat):
                for mode in modes:
                    result = _measure_mode(name, mode, preset, shape, data, batch, device, args)
                    runs[mode].append(result)
                    # Each measurement as soon as it exists: a run killed at its time limit keeps what it had.
                    print(
                        "# measured " + json.dumps({"preset": name, "mode": mode, "batch": batch, **result}), flush=True
                    )
                    torch._dynamo.reset()
            baseline = _aggregate(runs.get("eager-fp32", []))
            for mode in modes:
                row = {"preset": name, "mode": mode, "batch": batch, "score_batch": args.score_batch}
                row.update(_aggregate(runs[mode]))
                if "error" not in baseline and "error" not in row and baseline:
                    # Median of per-repeat ratios: each mode is compared with the baseline measured next to it.
                    for key in ("train", "score"):
                        pairs = zip(row[f"{key}_img_s_repeats"], baseline[f"{key}_img_s_repeats"], strict=True)
                        row[f"{key}_ratio_vs_baseline"] = round(statistics.median(a / b for a, b in pairs), 3)
                if "error" not in row:
                    # Achieved model TFLOP/s: img/s × GFLOP/img / 1000.
                    row["train_tflops"] = _sig(row["train_img_s"] * flops["train_gflop_per_img"] / 1e3)
                    row["score_tflops"] = _sig(row["score_img_s"] * flops["score_gflop_per_img"] / 1e3)
                row.update(flops)
                row.update(env)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--small", action="store_true", help="CPU-sized presets and few steps (make bench)")
    p.add_argument("--presets", nargs="*", help="preset names (default: the paper presets, or small ones)")
    p.add_argument(
        "--modes",
        nargs="*",
        help="eager-fp32, fast, fast-nocompile, fast-compile, fast-cudagraphs, bf16, channels-last, naive",
    )
    p.add_argument("--batch-sizes", type=int, nargs="*", help="training batch sizes")
    p.add_argument("--score-batch", type=int, help="scoring batch size")
    p.add_argument("--warmup", type=int, help="untimed steps per mode (compilation happens here)")
    p.add_argument("--steps", type=int, help="timed training steps per mode")
    p.add_argument("--score-steps", type=int, help="timed scoring batches per mode")
    p.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: leave as is; 1 is steadier on a shared machine)"
    )
    p.add_argument("--repeat", type=int, help="interleaved repetitions of all modes (median reported)")
    p.add_argument("--out", help="also write all rows as a JSON list to this file")
    p.add_argument(
        "--host-allocator",
        choices=["tuned", "default"],
        default="tuned",
        help="glibc malloc as the flowood CLI sets it (tuned) or left alone (see flowood.host_allocator)",
    )
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    small = args.small or not cuda
    args.batch_sizes = args.batch_sizes or ([32] if small else [256])
    args.score_batch = args.score_batch or (128 if small else 1024)
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 5)
    args.steps = args.steps or (3 if small else 20)
    args.score_steps = args.score_steps or (2 if small else 10)
    args.repeat = args.repeat or (2 if small else 1)
    return args


if __name__ == "__main__":
    cli_args = parse_args()
    if cli_args.host_allocator == "tuned":
        tune_host_allocator()
    run(cli_args)
