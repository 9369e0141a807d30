"""Test bits/dim reached per CPU-minute of training: several presets trained side by side in one process.

Each run is a preset trained by flowood's own training step (``Trainer.train_step``: its optimiser, schedule,
clipping and dequantisation) on the same dataset (default: full FashionMNIST, 60,000 training images), one
intra-op thread each. The runs take turns, ``--slice`` CPU-seconds each, so that a change of load on a shared
machine hits every run alike; the budget is the process CPU time of the training steps alone
(``time.process_time``), evaluations excluded. At each of ``--checkpoints`` (CPU-minutes) every run's test
bits/dim is measured on the test split (default all 10,000 images, midpoint-free uniform dequantisation from a
fixed seed, so every run and checkpoint sees the same noise), with the count of non-finite values. At the end
each run's inverse is checked on real test images: ``max |f⁻¹(f(x)) − x|`` in float32.

    python benchmarks/bpd_per_cpu_minute.py --runs demo tarflow-fashionmnist-cpu --minutes 10
    python benchmarks/bpd_per_cpu_minute.py --runs demo 'tf-small=tarflow-fashionmnist-cpu,model.width=64' \\
        --minutes 3 --checkpoints 1 2 3

A run is ``PRESET`` or ``LABEL=PRESET,key=value,...`` (``--set``-style overrides of the preset). Prints one JSON
object per checkpoint and run, then a summary; ``--out FILE`` writes them all as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.objective import nll_bpd
from flowood.train.presets import get_preset
from flowood.train.trainer import Trainer


@dataclass
class Run:
    """One preset being trained, with its CPU time so far and its measurements."""

    label: str
    trainer: Trainer
    cpu_seconds: float = 0.0
    steps: int = 0
    images: int = 0
    epoch: int = 0
    recent: list[float] = field(default_factory=list)
    batches: Any = None

    def advance(self, seconds: float) -> None:
        """Train for about ``seconds`` more CPU-seconds (whole steps)."""
        t = self.trainer
        cfg = t.cfg
        t.flow.train()
        t.flow.set_dequantization_rng(t.dequant_gen)
        stop = self.cpu_seconds + seconds
        while self.cpu_seconds < stop:
            if self.batches is None:
                self.batches = iter(t.train_data.epoch(cfg.train.batch_size, cfg.seed, self.epoch))
            batch = next(self.batches, None)
            if batch is None:
                self.epoch += 1
                self.batches = None
                continue
            start = time.process_time()
            bpd = t.train_step(batch, None)
            self.cpu_seconds += time.process_time() - start
            self.steps += 1
            self.images += int(batch.shape[0])
            self.recent = [*self.recent[-49:], bpd]
        t.flow.set_dequantization_rng(None)


def _test_bpd(trainer: Trainer, batch_size: int, seed: int) -> dict[str, float]:
    """Mean and median test bits/dim of the current weights (fixed dequantisation noise), non-finite counted."""
    flow = trainer.flow
    flow.eval()
    flow.set_dequantization_rng(torch.Generator().manual_seed(seed))
    values = []
    with torch.inference_mode():
        for batch in trainer.test_data.sequential(batch_size):
            values.append(nll_bpd(flow, batch)[1].double())
    flow.set_dequantization_rng(None)
    bpd = torch.cat(values)
    finite = torch.isfinite(bpd)
    return {
        "test_bpd": float(bpd[finite].mean()) if finite.any() else math.nan,
        "test_bpd_median": float(bpd[finite].median()) if finite.any() else math.nan,
        "nonfinite": int((~finite).sum()),
        "scored": int(bpd.numel()),
    }


def _inverse_error(trainer: Trainer, n: int = 256) -> float:
    """``max |f⁻¹(f(x)) − x|`` over ``n`` real test images in float32 (logit space)."""
    flow = trainer.flow.eval()
    images = next(iter(trainer.test_data.sequential(n)))  # floats in [0, 1]
    flow.set_dequantization_rng(torch.Generator().manual_seed(0))
    with torch.inference_mode():
        x, _ = flow.preprocess_images(images)
        z, _ = flow(x)
        err = float((flow.inverse(z) - x).abs().max())
    flow.set_dequantization_rng(None)
    return err


def make_run(spec: str, args: argparse.Namespace, workdir: Path) -> Run:
    """``PRESET`` or ``LABEL=PRESET,key=value,...`` → a :class:`Run` on ``args.dataset``."""
    label, _, rest = spec.partition("=") if "=" in spec.split(",")[0] else (spec.split(",")[0], "", spec)
    preset, *overrides = rest.split(",")
    raw = get_preset(preset)
    raw["data"] = {"dataset": args.dataset, "ood": [], "test_limit": args.test_limit}
    raw["train"] = {**raw["train"], "epochs": 10_000, "max_minutes": None, "sample_every": 0, "eval_batch_size": 256}
    raw["device"] = "cpu"
    raw = apply_overrides(raw, overrides)
    cfg = config_from_dict(raw)
    return Run(label, Trainer(cfg, workdir / label.replace("/", "_"), quiet=True, device=torch.device("cpu")))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="PRESET or LABEL=PRESET,key=value,...")
    p.add_argument("--minutes", type=float, default=10.0, help="CPU-minutes of training per run")
    p.add_argument("--checkpoints", type=float, nargs="*", help="CPU-minutes to measure at (default 1, 2, 5, ...)")
    p.add_argument("--slice", type=float, default=30.0, help="CPU-seconds a run trains before the next takes its turn")
    p.add_argument("--dataset", default="fashionmnist")
    p.add_argument("--test-limit", type=int, default=None, help="test images scored (default: the whole split)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-seed", type=int, default=1234)
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--keep", type=Path, help="keep each run's directory here, with its final weights (default: temporary)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoints = sorted(args.checkpoints or [m for m in (1, 2, 5, 10, 15, 20, 30) if m < args.minutes])
    checkpoints = [c for c in checkpoints if c < args.minutes] + [args.minutes]
    rows: list[dict[str, Any]] = []
    header = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
        "dataset": args.dataset,
    }
    print(json.dumps(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [make_run(spec, args, args.keep or Path(tmp)) for spec in args.runs]
        for run in runs:
            params = sum(p.numel() for p in run.trainer.flow.parameters())
            print(json.dumps({"run": run.label, "parameters": params, "model": run.trainer.cfg.to_dict()["model"]}))
        for target in checkpoints:
            while any(r.cpu_seconds < target * 60 for r in runs):
                for run in runs:
                    if run.cpu_seconds < target * 60:
                        run.advance(min(args.slice, target * 60 - run.cpu_seconds))
            for run in runs:
                finite = [v for v in run.recent if math.isfinite(v)]
                row = {
                    "run": run.label,
                    "cpu_minutes": round(run.cpu_seconds / 60, 3),
                    "steps": run.steps,
                    "images": run.images,
                    "epochs": round(run.images / len(run.trainer.train_data), 3),
                    "train_bpd_last50": sum(finite) / len(finite) if finite else math.nan,
                    "nonfinite_steps": run.trainer.nonfinite_steps,
                    **_test_bpd(run.trainer, 256, args.eval_seed),
                    "load_average": os.getloadavg()[0],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        summary = {
            "summary": {r.label: {"inverse_max_abs_err_fp32": _inverse_error(r.trainer)} for r in runs},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_average_end": os.getloadavg(),
        }
        print(json.dumps(summary), flush=True)
        for run in runs:
            if args.keep:
                run.trainer.save()  # model.safetensors and checkpoints/last.pt in KEEP/LABEL
            run.trainer.close()
    if args.out:
        args.out.write_text(json.dumps({"header": header, "rows": rows, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
