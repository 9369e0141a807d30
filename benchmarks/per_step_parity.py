"""Learning per step: the original's loss scale and clipping against flowood's former default.

Both arms train the same small RealNVP from the same seed: identical initial weights, identical batches
in identical order, identical dequantisation noise (all checked before training). They differ only in
``train.loss_scale`` and ``train.grad_clip_scope``:

* ``original``: mean NLL in nats per image, gradients clipped at 100 per optimizer group (the weight-norm
  gains their own group), as the original's ``train_unsup.py``;
* ``former``: mean bits/dim, one global clip at 100 (flowood's default and CPU presets).

Both use Adam at ``--lr`` with weight decay 5e-5 on the weight-norm gains (``train.weight_decay`` is then
543× stronger relative to the data term in the ``former`` arm: it is the same number acting on a loss
D·ln 2 times smaller). Test bits/dim after the same steps, several seeds.

    nice -n 10 python benchmarks/per_step_parity.py --steps 300 --seeds 0 1 2

Writes a JSON of every number to ``benchmarks/results/`` and prints a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from flowood.train.config import config_from_dict
from flowood.train.trainer import Trainer, evaluate_bpd

ARMS = {
    "original": {"loss_scale": "nats", "grad_clip_scope": "per_group"},
    "former": {"loss_scale": "bits_per_dim", "grad_clip_scope": "global"},
}


def config(seed: int, arm: str, args: argparse.Namespace):
    return config_from_dict(
        {
            # the demo preset's RealNVP (0.33M parameters), random st-net init as the original
            "model": {"name": "realnvp", "num_scales": 2, "num_blocks": 2, "mid_channels": 16, "init_zeros": False},
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
                **ARMS[arm],
            },
            "device": "cpu",
            "seed": seed,
        }
    )


def check_same_start(a: Trainer, b: Trainer, batch_size: int, seed: int) -> None:
    """Nothing but the loss scale and clip scope differs: weights, buffers, data order, noise."""
    sa, sb = a.flow.state_dict(), b.flow.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), "initial weights differ"
    for xa, xb, _ in zip(
        a.train_data.epoch(batch_size, seed, 0), b.train_data.epoch(batch_size, seed, 0), range(5), strict=False
    ):
        assert torch.equal(xa, xb), "batch order differs"
    assert torch.equal(a.dequant_gen.get_state(), b.dequant_gen.get_state()), "dequantisation noise differs"
    assert [len(g["params"]) for g in a.optimizer.param_groups] == [len(g["params"]) for g in b.optimizer.param_groups]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-limit", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            trainers = {arm: Trainer(config(seed, arm, args), Path(tmp) / f"{arm}-{seed}", quiet=True) for arm in ARMS}
            check_same_start(trainers["original"], trainers["former"], args.batch_size, seed)
            for arm, trainer in trainers.items():
                start = time.perf_counter()
                result = trainer.run()
                gen = torch.Generator().manual_seed(12345)
                test_bpd = evaluate_bpd(trainer.flow, trainer.test_data, 256, gen)
                rows.append(
                    {
                        "seed": seed,
                        "arm": arm,
                        "steps": result.steps,
                        "test_bpd": test_bpd,
                        "last_train_bpd": result.train_bpd,
                        "seconds": time.perf_counter() - start,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"per_step_parity-{meta['date'][:10]}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwrote {path}\n")
    print("| seed | original (nats, per-group clip) | former (bits/dim, global clip) | difference |")
    print("|---:|---:|---:|---:|")
    diffs = []
    for seed in args.seeds:
        o = next(r["test_bpd"] for r in rows if r["seed"] == seed and r["arm"] == "original")
        f = next(r["test_bpd"] for r in rows if r["seed"] == seed and r["arm"] == "former")
        diffs.append(o - f)
        print(f"| {seed} | {o:.3f} | {f:.3f} | {o - f:+.3f} |")
    mean = statistics.mean(diffs)
    spread = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    print(f"\nmean difference (original − former) {mean:+.3f} bits/dim, std over seeds {spread:.3f}")


if __name__ == "__main__":
    main()
