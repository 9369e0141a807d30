"""Learning per step against the ORIGINAL code: flowood's paper-preset training vs ``flows_ood``'s own.

Both arms train the demo-sized RealNVP (2 scales, 2 blocks, 16 channels; 0.33M parameters) on the embedded
``fashionmnist-mini`` in lockstep:

* ``original``: the original's own ``flow_ssl.RealNVP`` (random st-net init, ``init_zeros=False``), its
  ``FlowLoss`` with a standard-normal prior, its ``utils.get_param_groups`` (weight decay 5e-5 on the
  weight-norm gains ``weight_g``), ``optim.Adam``, its ``utils.clip_grad_norm`` (each group at 100) — the
  training step of ``experiments/train_flows/train_unsup.py`` (without DataParallel);
* ``flowood``: :meth:`flowood.train.trainer.Trainer.train_step` with the paper presets' settings
  (``train.loss_scale=nats``, ``train.grad_clip_scope=per_group``, clip 100, weight decay 5e-5 on the
  gains, Adam), its initial weights copied from the original's freshly-initialised model with
  :func:`flowood.convert.map_original_state_dict`.

Same batches (flowood's data order, fed to both), same dequantisation noise (the original draws it with
``torch.rand_like`` from torch's global generator inside ``iLogits``; the global generator is set to the
state of flowood's dequantisation generator before each original step, so both draw the same numbers),
batch 32, 1 torch thread. Test bits/dim of both in eval mode on the same test images with the same noise.
The original's bits/dim are reported minus its documented constant log2(256/255) (its preprocessing
log-det adds D·log(255/256); see ``shared/golden/flows_ood/README.md``), so both are exact bits/dim.

The original is not part of flowood and is never copied into it. Get it and pass its checkout:

    git clone https://github.com/PolinaKirichenko/flows_ood /tmp/flows_ood
    nice -n 10 python benchmarks/original_parity.py --original /tmp/flows_ood --steps 300 --seeds 0 1 2
    # or one seed per process, side by side, then combine their JSONs:
    python benchmarks/original_parity.py --merge /tmp/s0/*.json /tmp/s1/*.json /tmp/s2/*.json

(it needs only torch and numpy from the original's requirements). Writes a JSON of every number to
``benchmarks/results/`` and prints Markdown tables for RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from _parity_common import ORIGINAL_STEP, add_common_arguments, lockstep_batches, paper_config, run_meta, write_results

from flowood.convert import OriginalArchitecture, map_original_state_dict
from flowood.train.trainer import Trainer

LN2 = math.log(2.0)
# The original's full bits/dim exceed the exact value by this much (its iLogits log-det, golden README).
ORIGINAL_OFFSET_BPD = math.log2(256 / 255)
ARCH = OriginalArchitecture(flow="RealNVP", dataset="FashionMNIST", num_scales=2, num_blocks=2, num_mid_channels=16)


def load_original(path: Path) -> tuple[ModuleType, ModuleType, ModuleType]:
    """``flow_ssl`` and the training script's ``utils/norm_util.py`` and ``utils/optim_util.py``."""
    utils_dir = path / "experiments" / "train_flows" / "utils"
    if not (path / "flow_ssl" / "__init__.py").is_file() or not utils_dir.is_dir():
        sys.exit(
            f"error: --original {path}: no flows_ood checkout there (expected flow_ssl/ and "
            "experiments/train_flows/utils/). Get it with: "
            "git clone https://github.com/PolinaKirichenko/flows_ood /tmp/flows_ood"
        )
    sys.path.insert(0, str(path))
    flow_ssl = importlib.import_module("flow_ssl")

    def by_file(name: str) -> ModuleType:
        # The package utils/__init__ imports plotting libraries the training step does not need.
        spec = importlib.util.spec_from_file_location(f"flows_ood_{name}", utils_dir / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return flow_ssl, by_file("norm_util"), by_file("optim_util")


def flowood_trainer(seed: int, args: argparse.Namespace, out: Path) -> Trainer:
    name, options = ARCH.flowood_model()
    cfg = paper_config({"name": name, **options, "init_zeros": False}, seed, args, **ORIGINAL_STEP)
    return Trainer(cfg, out, quiet=True)


class OriginalArm:
    """The original's model, loss, optimizer and clipping, stepped as ``train_unsup.py``'s ``train``."""

    def __init__(self, flow_ssl: ModuleType, norm_util: ModuleType, optim_util: ModuleType, seed: int, lr: float):
        torch.manual_seed(seed)
        self.net = flow_ssl.RealNVP(
            num_scales=ARCH.num_scales,
            in_channels=1,
            mid_channels=ARCH.num_mid_channels,
            num_blocks=ARCH.num_blocks,
            init_zeros=False,
            img_shape=(1, 28, 28),
        )
        self.dims = 28 * 28
        prior = torch.distributions.MultivariateNormal(torch.zeros(self.dims), torch.eye(self.dims))
        self.loss_fn = flow_ssl.FlowLoss(prior)
        groups = norm_util.get_param_groups(self.net, 5e-5, norm_suffix="weight_g")
        self.optimizer = torch.optim.Adam(groups, lr=lr)
        self.clip = optim_util.clip_grad_norm

    def nll(self, x: torch.Tensor, noise_state: torch.Tensor) -> torch.Tensor:
        # iLogits draws its noise with torch.rand_like from the global generator: give it flowood's state.
        torch.default_generator.set_state(noise_state)
        z = self.net(x)
        return self.loss_fn(z, sldj=self.net.logdet(), mean=False)

    def step(self, x: torch.Tensor, noise_state: torch.Tensor) -> float:
        self.net.train()
        self.optimizer.zero_grad()
        loss = self.nll(x, noise_state).mean()
        loss.backward()
        self.clip(self.optimizer, 100.0)
        self.optimizer.step()
        return float(loss.detach()) / (self.dims * LN2) - ORIGINAL_OFFSET_BPD


@torch.no_grad()
def test_bpd(trainer: Trainer, original: OriginalArm, batch_size: int) -> tuple[float, float]:
    """Mean exact test bits/dim of both arms in eval mode, same images, same noise."""
    flow, net = trainer.flow, original.net
    was = flow.training
    flow.eval()
    net.eval()
    gen = torch.Generator().manual_seed(12345)
    ours, theirs = [], []
    for batch in trainer.test_data.sequential(batch_size):
        state = gen.get_state()
        noise = torch.rand(batch.shape, generator=gen)
        ours.append(-flow.log_likelihood_8bit(batch, noise) / (original.dims * LN2))
        theirs.append(original.nll(batch, state) / (original.dims * LN2) - ORIGINAL_OFFSET_BPD)
    flow.train(was)
    return float(torch.cat(ours).mean()), float(torch.cat(theirs).mean())


def run_seed(seed: int, args: argparse.Namespace, modules: tuple[ModuleType, ...], tmp: Path) -> dict[str, Any]:
    original = OriginalArm(*modules, seed=seed, lr=args.lr)
    trainer = flowood_trainer(seed, args, tmp / f"flowood-{seed}")
    flow = trainer.flow
    with torch.no_grad():
        flow.load_state_dict(map_original_state_dict(original.net.state_dict(), flow))
    n_orig = sum(p.numel() for p in original.net.parameters())
    n_ours = sum(p.numel() for p in flow.parameters())
    assert n_orig == n_ours, f"parameter counts differ: {n_orig} vs {n_ours}"
    assert sorted(len(g["params"]) for g in trainer.optimizer.param_groups) == sorted(
        len(g["params"]) for g in original.optimizer.param_groups
    ), "weight-decay groups differ"
    start_test = test_bpd(trainer, original, 256)
    assert abs(start_test[0] - start_test[1]) < 1e-4, f"initial functions differ: {start_test}"
    flow.train()
    flow.set_dequantization_rng(trainer.dequant_gen)
    train_curves: dict[str, list[float]] = {"flowood": [], "original": []}
    tests: list[dict[str, float]] = [{"step": 0, "flowood": start_test[0], "original": start_test[1]}]
    seconds = {"flowood": 0.0, "original": 0.0}
    for step, batch in lockstep_batches(trainer, args.batch_size, seed, args.steps):
        state = trainer.dequant_gen.get_state()
        t0 = time.perf_counter()
        train_curves["flowood"].append(trainer.train_step(batch, None))
        t1 = time.perf_counter()
        train_curves["original"].append(original.step(batch, state))
        seconds["flowood"] += t1 - t0
        seconds["original"] += time.perf_counter() - t1
        if step % args.eval_every == 0 or step == args.steps:
            ours, theirs = test_bpd(trainer, original, 256)
            tests.append({"step": step, "flowood": ours, "original": theirs})
            print(json.dumps({"seed": seed, **tests[-1]}), flush=True)
    return {"seed": seed, "params": n_ours, "train_bpd": train_curves, "test_bpd": tests, "seconds": seconds}


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


def report(rows: list[dict[str, Any]], steps: int) -> None:
    """Print the Markdown tables of RESULTS.md from the per-seed rows."""
    print("Train bits/dim, steps 1–10 (flowood / original, per seed):\n")
    print("| step | " + " | ".join(f"seed {r['seed']}" for r in rows) + " | max abs diff |")
    print("|---:|" + "---:|" * (len(rows) + 1))
    for i in range(min(10, steps)):
        cells = [f"{r['train_bpd']['flowood'][i]:.4f} / {r['train_bpd']['original'][i]:.4f}" for r in rows]
        worst = max(abs(r["train_bpd"]["flowood"][i] - r["train_bpd"]["original"][i]) for r in rows)
        print(f"| {i + 1} | " + " | ".join(cells) + f" | {worst:.4f} |")
    print("\nMean train bits/dim over windows (mean over seeds; flowood / original):\n")
    print("| steps | flowood | original | difference |")
    print("|---|---:|---:|---:|")
    for lo in range(0, steps, 50):
        hi = min(lo + 50, steps)
        f = mean([mean(r["train_bpd"]["flowood"][lo:hi]) for r in rows])
        o = mean([mean(r["train_bpd"]["original"][lo:hi]) for r in rows])
        print(f"| {lo + 1}–{hi} | {f:.3f} | {o:.3f} | {f - o:+.3f} |")
    print("\nTest bits/dim (exact, eval mode, same images and noise):\n")
    print("| step | " + " | ".join(f"seed {r['seed']} flowood / original" for r in rows) + " | mean diff |")
    print("|---:|" + "---:|" * (len(rows) + 1))
    for i, first in enumerate(rows[0]["test_bpd"]):
        cells = [f"{r['test_bpd'][i]['flowood']:.4f} / {r['test_bpd'][i]['original']:.4f}" for r in rows]
        diff = mean([r["test_bpd"][i]["flowood"] - r["test_bpd"][i]["original"] for r in rows])
        print(f"| {first['step']} | " + " | ".join(cells) + f" | {diff:+.4f} |")
    final = [r["test_bpd"][-1] for r in rows]
    diffs = [t["flowood"] - t["original"] for t in final]
    spread = statistics.stdev([t["original"] for t in final]) if len(final) > 1 else float("nan")
    print(
        f"\nat step {final[0]['step']}: mean difference (flowood − original) {mean(diffs):+.4f} bits/dim "
        f"(per seed {', '.join(f'{d:+.4f}' for d in diffs)}); seed-to-seed std of the original's test "
        f"bits/dim {spread:.4f}"
    )
    for r in rows:
        print(
            f"seed {r['seed']}: seconds flowood {r['seconds']['flowood']:.0f}, original {r['seconds']['original']:.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, help="a checkout of PolinaKirichenko/flows_ood (required to run)")
    add_common_arguments(parser)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="JSONs of earlier runs (e.g. one seed each, run side by side) to combine"
    )
    args = parser.parse_args()
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        rows = [row for run in runs for row in run["rows"]]
        steps = len(rows[0]["train_bpd"]["flowood"])
        write_results(args.out, "original_parity", [run["meta"] for run in runs], rows, runs[0]["meta"]["date"])
        report(rows, steps)
        return
    if args.original is None:
        parser.error(
            "--original PATH is required: a checkout of the original code, e.g. "
            "git clone https://github.com/PolinaKirichenko/flows_ood /tmp/flows_ood"
        )
    modules = load_original(args.original.resolve())
    torch.set_num_threads(args.threads)
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_seed(seed, args, modules, Path(tmp)) for seed in args.seeds]
    load_after = Path("/proc/loadavg").read_text().split()[:3] if load_before else []
    meta = run_meta(args, loadavg_before=load_before, loadavg_after=load_after)
    write_results(args.out, "original_parity", meta, rows, meta["date"])
    report(rows, args.steps)


if __name__ == "__main__":
    main()
