"""GPU checks of issue 7 that are not plain throughput: time to result, and fast-path exactness.

``time-to-result``: train the paper's RealNVP FashionMNIST model (14.7M parameters) for a fixed wall
time (default 60 s, compilation included) with the fast path through :class:`flowood.train.trainer.Trainer`,
then score the FashionMNIST test images and MNIST (OOD) and report bits/dim and AUROC, with the fast
path and with the exact path. ``exactness``: on a fixed batch of test images (deterministic midpoint
dequantisation) compare the fast path's bits/dim (bf16 autocast + channels-last, and the compiled
flow) with the exact fp32 eager path; the target is a difference ≤ 0.01 bits/dim. It runs on the
trained model when ``time-to-result`` ran first in the same call (``all``), else on a perturbed
freshly built model.

The GPU machine may lack some of flowood's pure-Python dependencies; this driver installs nothing and
substitutes minimal stand-ins for missing ``tqdm`` / ``yaml`` / ``tensorboard`` / ``safetensors`` (recorded
in the output as ``shims``). Checkpoints are written once at the end instead of after every epoch (the
embedded 10k-image training set makes an "epoch" about a second long on an H200).

    PYTHONPATH=src python benchmarks/gpu_check.py all --seconds 60 --out $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def install_shims() -> list[str]:
    """Stand-ins for optional pure-Python dependencies missing on a bare GPU box."""
    shimmed: list[str] = []
    try:
        importlib.import_module("tqdm")
    except ImportError:
        mod = types.ModuleType("tqdm")

        class _Tqdm:
            def __init__(self, iterable: Any = None, **_: Any) -> None:
                self.iterable = iterable

            def __iter__(self) -> Any:
                return iter(self.iterable)

            def set_postfix(self, *_: Any, **__: Any) -> None:
                pass

            def close(self) -> None:
                pass

            @staticmethod
            def write(msg: str) -> None:
                print(msg, flush=True)

        mod.tqdm = _Tqdm  # type: ignore[attr-defined]
        sys.modules["tqdm"] = mod
        shimmed.append("tqdm")
    try:
        importlib.import_module("yaml")
    except ImportError:
        mod = types.ModuleType("yaml")
        mod.safe_dump = lambda obj, **_: json.dumps(obj, indent=2)  # type: ignore[attr-defined]
        mod.safe_load = lambda text: json.loads(text)  # type: ignore[attr-defined]
        mod.YAMLError = ValueError  # type: ignore[attr-defined]
        sys.modules["yaml"] = mod
        shimmed.append("yaml")
    try:
        importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        mod = types.ModuleType("torch.utils.tensorboard")

        class _Writer:
            def __init__(self, *_: Any, **__: Any) -> None:
                pass

            def add_scalar(self, *_: Any, **__: Any) -> None:
                pass

            def close(self) -> None:
                pass

        mod.SummaryWriter = _Writer  # type: ignore[attr-defined]
        sys.modules["torch.utils.tensorboard"] = mod
        shimmed.append("tensorboard")
    try:
        importlib.import_module("safetensors.torch")
    except ImportError:
        shimmed.append("safetensors (model.safetensors not written)")
    return shimmed


def time_to_result(args: argparse.Namespace, shims: list[str]) -> tuple[dict[str, Any], Any]:
    """Train for ``args.seconds`` with the fast path, then score in-distribution test and OOD data."""
    from flowood.data import pick_split
    from flowood.ood.likelihood import score_bits_per_dim
    from flowood.ood.metrics import detection_metrics
    from flowood.perf import eager_stance, resolve_fast_path
    from flowood.train import trainer as trainer_mod
    from flowood.train.config import config_from_dict
    from flowood.train.data import TensorBatches, load_split
    from flowood.train.presets import get_preset

    preset = get_preset(args.preset)
    raw = {
        "model": preset["model"],
        "data": {"dataset": args.dataset, "ood": [args.ood], "root": args.data_root},
        "train": {
            # The preset's optimiser and learning rate, scaled from the preset's batch size to --batch-size.
            "optimizer": preset["train"].get("optimizer", "adam"),
            "lr": float(preset["train"].get("lr", 5e-5)),
            "lr_scaling": args.lr_scaling,
            "reference_batch_size": int(preset["train"].get("batch_size", 32)),
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup_steps,
            "epochs": 100_000,
            "max_minutes": args.seconds / 60.0,
            "grad_clip": 100.0,
            "sample_every": 0,
            "eval_batch_size": 1024,
        },
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "seed": 0,
    }
    if args.compile != "auto":
        raw["train"]["compile"] = args.compile == "on"
    cfg = config_from_dict(raw)
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.out).parent / "ttr_run"
    tr = trainer_mod.Trainer(cfg, run_dir, quiet=True)
    real_save = tr.save
    tr.save = lambda: None  # type: ignore[method-assign]  # end-of-run checkpoint only (see module doc)
    t0 = time.perf_counter()
    result = tr.run()
    wall = time.perf_counter() - t0
    if "safetensors (model.safetensors not written)" not in shims:
        real_save()
    flow = tr.flow
    device = tr.device
    test = TensorBatches(tr.test_data.data[: args.score_limit], tr.test_data.kind, device)
    ood_ds = load_split(cfg.data, pick_split(args.ood, "test"), name=args.ood, like_shape=flow.input_shape)
    ood = TensorBatches(ood_ds.data[: args.score_limit], ood_ds.kind, device)
    out: dict[str, Any] = {
        "preset": args.preset,
        "dataset": args.dataset,
        "ood": args.ood,
        "train_images": len(tr.train_data),
        "train_data_on_device": tr.train_data.on_device,
        "batch_size": args.batch_size,
        "lr": tr.scheduler.base_lrs[0],
        "settings": tr.fast.describe(),
        "steps": result.steps,
        "epochs_completed": result.epochs_completed,
        "train_seconds": round(result.seconds, 1),
        "wall_seconds_incl_epoch_evals": round(wall, 1),
        "train_img_per_s_incl_compile": round(result.steps * args.batch_size / max(result.seconds, 1e-9), 1),
        "nonfinite_steps": result.nonfinite_steps,
        "last_epoch_test_bpd": result.test_bpd,
    }
    for label, fast in (
        ("fast", resolve_fast_path(device, compile=False)),
        ("exact", resolve_fast_path(device, exact=True)),
    ):
        t1 = time.perf_counter()
        with eager_stance(), fast.backends():
            in_bpd = score_bits_per_dim(flow, test.sequential(1024), seed=0, fast=fast)
            ood_bpd = score_bits_per_dim(flow, ood.sequential(1024), seed=1, fast=fast)
        metrics = detection_metrics(-in_bpd, -ood_bpd)
        out[f"scores_{label}"] = {
            "settings": fast.describe(),
            "test_bpd_mean": float(np.mean(in_bpd)),
            "test_bpd_median": float(np.median(in_bpd)),
            "ood_bpd_median": float(np.median(ood_bpd)),
            "auroc": float(metrics["auroc"]),
            "n_test": int(in_bpd.size),
            "n_ood": int(ood_bpd.size),
            "seconds": round(time.perf_counter() - t1, 2),
        }
    out["targets"] = {
        "test_bpd_median_le_3.52": out["scores_exact"]["test_bpd_median"] <= 3.52,
        "auroc_below_0.5_reproduces_failure": out["scores_exact"]["auroc"] < 0.5,
        "train_seconds_le_60": result.seconds <= 61.0,
    }
    return out, tr


def exactness(args: argparse.Namespace, trained: Any | None) -> dict[str, Any]:
    """Fast-path vs exact bits/dim on a fixed batch (midpoint dequantisation)."""
    from flowood.flows import build_flow
    from flowood.perf import FastPath, eager_stance, resolve_fast_path
    from flowood.train.presets import get_preset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if trained is not None:
        flow = trained.flow
        images = trained.test_data.first(args.exact_batch)
        source = "time-to-result model"
    else:
        model = dict(get_preset(args.preset)["model"])
        arch = model.pop("name")
        torch.manual_seed(0)
        flow = build_flow(arch, (1, 28, 28), **model).to(device)
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.02 * torch.randn_like(p))
        from flowood.data import load_dataset

        images = load_dataset("fashionmnist-mini", "test", limit=args.exact_batch).data.to(device).float() / 255.0
        source = "perturbed fresh model"
    flow.eval()
    dq = flow.preprocess[0]
    old_noise = dq.noise
    dq.noise = "midpoint"
    rows: dict[str, Any] = {"source": source, "batch": int(images.shape[0])}
    try:
        with torch.inference_mode():
            with eager_stance(), resolve_fast_path(device, exact=True).backends():
                exact = flow.bits_per_dim(images).double()
            variants = {
                "bf16_channels_last_eager": FastPath(device, "bf16", channels_last=True, cudnn_benchmark=True),
                "fp16_channels_last_eager": FastPath(device, "fp16", channels_last=True, cudnn_benchmark=True),
            }
            for name, fast in variants.items():
                if fast.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                    continue
                with eager_stance(), fast.backends(), fast.autocast():
                    got = flow.bits_per_dim(fast.prepare_input(images)).double()
                rows[name] = _diff(exact, got)
            if args.check_compiled:
                fast = FastPath(device, "bf16", channels_last=True, compile=True, cudnn_benchmark=True)
                if getattr(flow.transform, "_compiled_call_impl", None) is None:
                    fast.prepare_model(flow)  # compiles the transform in place (inference graph on first call)
                t0 = time.perf_counter()
                with fast.backends(), fast.autocast():
                    got = flow.bits_per_dim(fast.prepare_input(images)).double()
                rows["bf16_channels_last_compiled"] = {**_diff(exact, got), "seconds": round(time.perf_counter() - t0)}
    finally:
        dq.noise = old_noise
    rows["exact_bpd_mean"] = float(exact.mean())
    rows["target_max_abs_diff_le_0.01"] = all(
        v["max_abs_diff"] <= 0.01 for k, v in rows.items() if isinstance(v, dict) and "max_abs_diff" in v
    )
    return rows


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a - b).abs()
    return {
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "mean_diff": float((b - a).mean()),
        "finite": bool(torch.isfinite(b).all()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["all", "time-to-result", "exactness"])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--seconds", type=float, default=60.0, help="training wall time (compilation included)")
    p.add_argument("--dataset", default="fashionmnist-mini", help="in-distribution data (fashionmnist if present)")
    p.add_argument("--ood", default="mnist-mini")
    p.add_argument("--data-root", default=None, help="searched first for datasets (<root>/FashionMNIST/raw/*.gz)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr-scaling", default="linear", choices=["none", "linear", "sqrt"])
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--exact-batch", type=int, default=1024)
    p.add_argument("--preset", default="realnvp-fashionmnist", help="model preset (a small one for CPU smoke runs)")
    p.add_argument("--run-dir", default=None, help="run directory of the training (default: ttr_run/ beside --out)")
    p.add_argument("--score-limit", type=int, default=None, help="score at most N test / OOD images")
    p.add_argument("--check-compiled", action="store_true", help="also compare the compiled flow (compiles)")
    args = p.parse_args(argv)
    shims = install_shims()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "shims": shims,
    }
    trained = None

    def write() -> None:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))

    if args.what in ("all", "time-to-result"):
        try:
            report["time_to_result"], trained = time_to_result(args, shims)
        except Exception as err:
            report["time_to_result"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        write()
        print(json.dumps({"time_to_result": report["time_to_result"]}), flush=True)
    if args.what in ("all", "exactness"):
        try:
            report["exactness"] = exactness(args, trained)
        except Exception as err:
            report["exactness"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        write()
        print(json.dumps({"exactness": report["exactness"]}), flush=True)
    ok = all("error" not in v for v in report.values() if isinstance(v, dict))
    return 0 if ok and not any(isinstance(v, float) and math.isnan(v) for v in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
