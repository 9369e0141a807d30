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
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _parity_common import (
    DEMO_REALNVP,
    ORIGINAL_STEP,
    add_common_arguments,
    lockstep_batches,
    paper_config,
    run_meta,
    write_results,
)

from flowood.train.config import RunConfig
from flowood.train.objective import evaluate_bpd
from flowood.train.trainer import Trainer

ARMS = {
    "original": ORIGINAL_STEP,
    "former": {"loss_scale": "bits_per_dim", "grad_clip_scope": "global"},
}


def config(seed: int, arm: str, args: argparse.Namespace) -> RunConfig:
    return paper_config(DEMO_REALNVP, seed, args, **ARMS[arm])


def check_same_start(a: Trainer, b: Trainer, batch_size: int, seed: int) -> None:
    """Nothing but the loss scale and clip scope differs: weights, buffers, data order, noise."""
    sa, sb = a.flow.state_dict(), b.flow.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), "initial weights differ"
    for (_, xa), (_, xb) in zip(
        lockstep_batches(a, batch_size, seed, 5), lockstep_batches(b, batch_size, seed, 5), strict=True
    ):
        assert torch.equal(xa, xb), "batch order differs"
    assert torch.equal(a.dequant_gen.get_state(), b.dequant_gen.get_state()), "dequantisation noise differs"
    assert [len(g["params"]) for g in a.optimizer.param_groups] == [len(g["params"]) for g in b.optimizer.param_groups]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
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
    meta = run_meta(args)
    write_results(args.out, "per_step_parity", meta, rows, meta["date"])
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
