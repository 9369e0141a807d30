"""What the per-step parity benchmarks share: the paper-settings trainer config, their common command-line
options, the lockstep batch order, and the metadata + JSON every result file carries.

Used by ``original_parity.py`` (flowood against the original code) and ``per_step_parity.py`` (the
original's loss scale and clipping against flowood's former default). Not part of the library.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from flowood.train.config import RunConfig, config_from_dict
from flowood.train.trainer import Trainer

# The demo preset's RealNVP (0.33M parameters) with random st-net init, as the original's README commands.
DEMO_REALNVP: dict[str, Any] = {
    "name": "realnvp",
    "num_scales": 2,
    "num_blocks": 2,
    "mid_channels": 16,
    "init_zeros": False,
}
# The original's training step (train_unsup.py): mean NLL in nats per image, clip 100 per optimizer group.
ORIGINAL_STEP: dict[str, str] = {"loss_scale": "nats", "grad_clip_scope": "per_group"}


def paper_config(model: dict[str, Any], seed: int, args: argparse.Namespace, **train: Any) -> RunConfig:
    """A CPU fp32 run config with the paper's optimiser settings: Adam at ``args.lr``, weight decay 5e-5 on
    the weight-norm gains, gradient clip 100, ``args.steps`` steps of batch ``args.batch_size`` on the
    embedded ``fashionmnist-mini`` (``args.test_limit`` test images); no sampling, no compile or fused
    kernels (bit-comparable arms). ``train`` adds or overrides train keys (e.g. :data:`ORIGINAL_STEP`)."""
    return config_from_dict(
        {
            "model": model,
            "data": {"dataset": "fashionmnist-mini", "test_limit": args.test_limit},
            "train": {
                "optimizer": "adam",
                "lr": args.lr,
                "batch_size": args.batch_size,
                "epochs": 1000,
                "max_steps": args.steps,
                "weight_decay": 5e-5,
                "weight_decay_scope": "gains",
                "grad_clip": 100.0,
                "sample_every": 0,
                "precision": "fp32",
                "compile": False,
                "channels_last": False,
                "fused_optimizer": False,
                **train,
            },
            "device": "cpu",
            "seed": seed,
        }
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--steps --seeds --batch-size --lr --test-limit --threads --out`` with the benchmarks' defaults."""
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-limit", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")


def lockstep_batches(trainer: Trainer, batch_size: int, seed: int, steps: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(step, batch)`` for steps 1..``steps`` in the trainer's own data order (epoch after epoch), the
    batches both arms of a comparison see."""
    step, epoch = 0, 0
    while step < steps:
        for batch in trainer.train_data.epoch(batch_size, seed, epoch):
            step += 1
            yield step, batch
            if step >= steps:
                return
        epoch += 1


def run_meta(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """Date, machine, torch threads and version, the arguments, and ``extra`` (e.g. load averages)."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **extra,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def write_results(out: Path, stem: str, meta: Any, rows: list[dict[str, Any]], date: str) -> Path:
    """Write ``{"meta": meta, "rows": rows}`` to ``out/<stem>-<YYYY-MM-DD>.json`` and say where."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}-{date[:10]}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwrote {path}\n")
    return path
