"""train.memory=store vs invert, side by side: activation bytes, peak memory, images/s, gradients, curves.

Three measurements (all on the CPU unless ``--device`` says otherwise):

``--measure`` (default) — the paper's RealNVP and Glow FashionMNIST configurations at two depths each (RealNVP:
``num_scales`` 2 and 3; Glow: ``num_steps`` 16 and 32), batch ``--batch`` (32), one forward + backward per timed
step, each (configuration, mode) in a fresh process so that its peak RSS is its own. Reported per row:

* ``saved_fwd``: bytes autograd holds for the backward pass when the forward pass ends (parameters excluded; one
  count per storage), counted exactly with ``torch.autograd.graph.saved_tensors_hooks``;
* ``saved_peak``: the peak of those bytes over the forward *and* the backward pass (in ``invert`` mode the
  backward recomputes one block at a time under the same hooks, so its transient graph is counted too);
* ``rss_peak``: the process's peak resident memory during the measured steps minus its resident memory before
  them (weights, gradients and allocator caches included: an upper bound on what the mode needs);
* ``img_s``: images per second of forward + backward, median of ``--steps`` timed steps after the counting step.

``--accuracy`` — gradients of ``invert`` vs ``store`` (relative L2 difference over all parameters) in float32 and
under bf16 autocast (fp32 log-dets) for the ``demo``, ``glow-fashionmnist`` (tiny width) and spline presets, and
the reconstruction errors :meth:`flowood.flows.invert.BackpropByInversion.check` measures at the paper presets'
depths and widths; both at initialisation, with every all-zero parameter tensor (zero-initialised st-net output
layers, which make each coupling the identity and its inverse exact) drawn from N(0, 0.01²).

``--curves N`` — the ``demo`` preset trained ``N`` steps in each mode from the same seed; the per-step training
bits/dim compared.

    nice -n 10 python benchmarks/memory_modes.py --threads 2 --out benchmarks/results/memory-modes-DATE.json
    nice -n 10 python benchmarks/memory_modes.py --accuracy --curves 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowood.flows import NormalizingFlow
from flowood.train.build import build_run_flow
from flowood.train.config import config_from_dict
from flowood.train.presets import get_preset

CONFIGS = [
    ("realnvp-fashionmnist", "num_scales", (2, 3)),
    ("glow-fashionmnist", "num_steps", (16, 32)),
]
SHAPE = (1, 28, 28)


def _flow(preset: str, overrides: dict[str, Any], shape: tuple[int, ...] = SHAPE) -> NormalizingFlow:
    raw = get_preset(preset)
    raw["model"] = {**raw["model"], **overrides}
    return build_run_flow(config_from_dict(raw), shape)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class SavedBytes:
    """Bytes autograd holds (distinct storages, parameters excluded), now and at peak, via saved-tensor hooks."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in params}
        self.live: dict[int, list[int]] = {}
        self.current = self.peak = 0

    class _Held:
        __slots__ = ("__weakref__", "tensor")

        def __init__(self, tensor: Tensor) -> None:
            self.tensor = tensor

    def _release(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[ptr]

    def pack(self, t: Tensor) -> Any:
        ptr = t.untyped_storage().data_ptr()
        if ptr in self.params:
            return t
        entry = self.live.setdefault(ptr, [t.untyped_storage().nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        held = SavedBytes._Held(t)
        weakref.finalize(held, self._release, ptr)
        return held

    @staticmethod
    def unpack(held: Any) -> Tensor:
        return held.tensor if isinstance(held, SavedBytes._Held) else held


def _images(batch: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *SHAPE), generator=g).float() / 255


def _step(flow: NormalizingFlow, x: Tensor) -> None:
    flow.zero_grad(set_to_none=True)
    (-flow.log_likelihood(x).mean()).backward()


def one(preset: str, key: str, depth: int, mode: str, batch: int, steps: int) -> dict[str, Any]:
    """One row, measured in this process (run through a subprocess by :func:`measure`)."""
    torch.manual_seed(0)
    flow = _flow(preset, {key: depth})
    x = _images(batch)
    flow.train()
    with torch.no_grad():
        flow.log_likelihood(x[:8])  # ActNorm's data-dependent initialisation, as training does it first
    flow.set_memory(mode)
    rss0 = _rss()
    # The first step counts saved bytes (the hooks slow it down) and is the warm-up (and the inversion check).
    counter = SavedBytes(list(flow.parameters()))
    flow.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        loss = -flow.log_likelihood(x).mean()
        saved_fwd = counter.current
        loss.backward()
        del loss
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        _step(flow, x)
        times.append(time.perf_counter() - t0)
    rss_peak = _maxrss() - rss0
    warnings = flow.inversion.take_warnings() if flow.inversion is not None else []
    return {
        "preset": preset,
        "depth": f"{key}={depth}",
        "mode": mode,
        "batch": batch,
        "parameters": sum(p.numel() for p in flow.parameters()),
        "saved_fwd_bytes": saved_fwd,
        "saved_peak_bytes": counter.peak,
        "rss_peak_bytes": rss_peak,
        "step_seconds": statistics.median(times),
        "img_s": batch / statistics.median(times),
        "fallback_warnings": warnings,
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for preset, key, depths in CONFIGS:
        if args.only and preset not in args.only:
            continue
        for depth in depths:
            for mode in ("store", "invert"):
                cmd = [sys.executable, __file__, "--one", preset, key, str(depth), mode]
                cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"{preset} {key}={depth} {mode} failed")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(
                    f"{preset:22s} {row['depth']:13s} {mode:6s} saved_fwd {row['saved_fwd_bytes'] / 2**20:9.1f} MiB  "
                    f"saved_peak {row['saved_peak_bytes'] / 2**20:9.1f} MiB  rss_peak "
                    f"{row['rss_peak_bytes'] / 2**20:9.1f} MiB  {row['img_s']:6.2f} img/s",
                    flush=True,
                )
    return rows


def _relative(a: list[Tensor], b: list[Tensor]) -> float:
    num = sum(float((x - y).double().pow(2).sum()) for x, y in zip(a, b, strict=True))
    den = sum(float(x.double().pow(2).sum()) for x in a)
    return (num / den) ** 0.5 if den else 0.0


def _grads(flow: NormalizingFlow, x: Tensor, bf16: bool) -> list[Tensor]:
    flow.zero_grad(set_to_none=True)
    flow.set_dequantization_rng(torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = -flow.log_likelihood(x).mean()
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in flow.parameters()]


ACCURACY_PRESETS = [
    # (label, preset, model overrides, input shape): tiny widths, the presets' depths.
    ("demo", "demo", {}, SHAPE),
    ("glow-fashionmnist (tiny width)", "glow-fashionmnist", {"mid_channels": 8, "num_blocks": 1}, SHAPE),
    ("demo, spline couplings", "demo", {"coupling": "spline"}, SHAPE),
    ("tabular-spline-breast-cancer", "tabular-spline-breast-cancer", {}, (30,)),
]
PERTURB_STD = 0.01


@torch.no_grad()
def _randomize_zero_layers(flow: NormalizingFlow, seed: int = 7) -> int:
    """Give every all-zero parameter (zero-initialised st-net output layers: each coupling starts as the identity,
    which inverts exactly and would measure nothing) N(0, PERTURB_STD²) values; returns how many tensors."""
    g = torch.Generator().manual_seed(seed)
    count = 0
    for p in flow.parameters():
        if p.numel() > 1 and not p.any():
            p.copy_(torch.randn(p.shape, generator=g) * PERTURB_STD)
            count += 1
    return count


RECONSTRUCTION_PRESETS = [
    ("realnvp-fashionmnist", SHAPE),
    ("glow-fashionmnist", SHAPE),
    ("realnvp-celeba", (3, 32, 32)),
    ("glow-celeba", (3, 32, 32)),
]


def accuracy(batch: int, gradients: bool = True) -> list[dict[str, Any]]:
    rows = []
    for label, preset, overrides, shape in ACCURACY_PRESETS if gradients else ():
        for bf16 in (False, True):
            torch.manual_seed(0)
            flow = _flow(preset, overrides, shape)
            perturbed = _randomize_zero_layers(flow)
            g = torch.Generator().manual_seed(1)
            x = torch.rand(batch, *shape, generator=g) if len(shape) == 3 else torch.randn(batch, *shape, generator=g)
            flow.train()
            with torch.no_grad():
                flow.log_likelihood(x)
            start = {k: v.clone() for k, v in flow.state_dict().items()}
            store = _grads(flow, x, bf16)
            flow.load_state_dict(start)
            flow.set_memory("invert")
            invert = _grads(flow, x, bf16)
            assert flow.inversion is not None
            row = {
                "what": "gradient",
                "preset": label,
                "precision": "bf16 autocast" if bf16 else "fp32",
                "relative_gradient_difference": _relative(store, invert),
                "zero_tensors_randomized": perturbed,
                "max_residual": float(flow.inversion.max_residual() or 0.0),
                "fallback_warnings": flow.inversion.take_warnings(),
            }
            rows.append(row)
            print(
                f"gradient  {label:32s} {row['precision']:13s} rel diff {row['relative_gradient_difference']:.2e}  "
                f"max round-trip residual {row['max_residual']:.1e}",
                flush=True,
            )
    for preset, shape in RECONSTRUCTION_PRESETS:
        for bf16 in (False, True):
            torch.manual_seed(0)
            flow = _flow(preset, {}, shape)
            perturbed = _randomize_zero_layers(flow)
            x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
            flow.train()
            flow.set_memory("invert")
            assert flow.inversion is not None
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                flow.log_likelihood(x)  # ActNorm initialisation
                z, _ = flow.preprocess_images(x)
                errors = flow.inversion.check(z)
            local = [e for e in errors["local"] if e == e]
            uncut = [e for e in errors["uncut"] if e == e]
            acc = [e for e in errors["accumulated"] if e == e]
            row = {
                "what": "reconstruction",
                "preset": preset,
                "precision": "bf16 autocast" if bf16 else "fp32",
                "blocks": len(flow.inversion.blocks),
                "zero_tensors_randomized": perturbed,
                "max_local_error": max(local),
                "max_accumulated_error_uncut": max(uncut),
                "max_accumulated_error": max(acc),
                "stored": len(flow.inversion.stored),
                "cuts": len(flow.inversion.cuts),
                "fallback_warnings": flow.inversion.take_warnings(),
            }
            rows.append(row)
            print(
                f"reconstruction {preset:22s} {row['precision']:13s} {row['blocks']:3d} blocks: max own error "
                f"{row['max_local_error']:.1e}, max accumulated {row['max_accumulated_error_uncut']:.1e} uncut, "
                f"{row['max_accumulated_error']:.1e} after {row['cuts']} cuts and {row['stored']} stored blocks",
                flush=True,
            )
    return rows


def curves(steps: int) -> dict[str, Any]:
    from flowood.train.trainer import Trainer

    raw = get_preset("demo")
    per_mode: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for mode in ("store", "invert"):
        raw_mode = {**raw, "train": {**raw["train"], "memory": mode, "max_minutes": None}, "device": "cpu"}
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(config_from_dict(raw_mode), Path(tmp) / "run", quiet=True)
            values: list[float] = []
            epoch = 0
            t0 = time.perf_counter()
            while len(values) < steps:
                for batch in trainer.train_data.epoch(trainer.cfg.train.batch_size, trainer.cfg.seed, epoch):
                    values.append(trainer.train_step(batch, None))
                    if len(values) == steps:
                        break
                epoch += 1
            seconds[mode] = time.perf_counter() - t0
            trainer.close()
        per_mode[mode] = values
    diffs = [abs(a - b) for a, b in zip(per_mode["store"], per_mode["invert"], strict=True)]
    out = {
        "what": "curves",
        "preset": "demo",
        "steps": steps,
        "store_first_last": [per_mode["store"][0], per_mode["store"][-1]],
        "invert_first_last": [per_mode["invert"][0], per_mode["invert"][-1]],
        "max_abs_bpd_difference": max(diffs),
        "mean_abs_bpd_difference_last_50": statistics.mean(diffs[-50:]),
        "seconds": seconds,
        "store": per_mode["store"],
        "invert": per_mode["invert"],
    }
    print(
        f"curves demo {steps} steps: store {out['store_first_last'][0]:.3f} -> {out['store_first_last'][1]:.4f}, "
        f"invert {out['invert_first_last'][0]:.3f} -> {out['invert_first_last'][1]:.4f}; max |Δ bpd| "
        f"{out['max_abs_bpd_difference']:.2e}, mean over the last 50 {out['mean_abs_bpd_difference_last_50']:.2e}; "
        f"time invert/store {seconds['invert'] / seconds['store']:.2f}",
        flush=True,
    )
    return out


def per_block(batch: int) -> list[dict[str, Any]]:
    """RealNVP FashionMNIST at 2 and 3 scales under ``invert``: bytes autograd holds while each block's recomputed
    graph exists (read when its round-trip residual is recorded, inside the backward pass)."""
    from flowood.flows.invert import BackpropByInversion

    rows = []
    for scales in (2, 3):
        torch.manual_seed(0)
        flow = _flow("realnvp-fashionmnist", {"num_scales": scales})
        flow.set_memory("invert")
        counter = SavedBytes(list(flow.parameters()))
        live: dict[int, int] = {}
        original = BackpropByInversion.record_residual

        def record(
            self: BackpropByInversion, index: int, error: Tensor, live=live, counter=counter, original=original
        ) -> None:
            live[index] = counter.current
            original(self, index, error)

        BackpropByInversion.record_residual = record  # type: ignore[method-assign]
        try:
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                (-flow.log_likelihood(_images(batch)).mean()).backward()
        finally:
            BackpropByInversion.record_residual = original  # type: ignore[method-assign]
        rows.append({"num_scales": scales, "batch": batch, "peak_bytes": counter.peak, "per_block_bytes": live})
        print(
            f"per block, num_scales={scales}, batch {batch}: peak {counter.peak / 1e6:.2f} MB; "
            + ", ".join(f"{k}: {v / 1e6:.2f}" for k, v in sorted(live.items())),
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, metavar=("PRESET", "KEY", "DEPTH", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per row (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accuracy", action="store_true", help="gradient and reconstruction errors")
    parser.add_argument("--reconstruction", action="store_true", help="only the reconstruction rows of --accuracy")
    parser.add_argument("--per-block", type=int, default=0, metavar="BATCH", help="RealNVP per-block peak (invert)")
    parser.add_argument("--curves", type=int, default=0, metavar="N", help="train the demo N steps in each mode")
    parser.add_argument("--skip-measure", action="store_true", help="only --accuracy / --curves")
    parser.add_argument("--only", nargs="+", metavar="PRESET", help="measure only these of the configurations")
    parser.add_argument("--out", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        preset, key, depth, mode = args.one
        print(json.dumps(one(preset, key, int(depth), mode, args.batch, args.steps)))
        return
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": {"machine": platform.machine(), "processor": platform.processor(), "torch": torch.__version__},
        "threads": args.threads,
    }
    if not args.skip_measure:
        report["memory"] = measure(args)
    if args.accuracy or args.reconstruction:
        report["accuracy"] = accuracy(8, gradients=args.accuracy)
    if args.per_block:
        report["per_block"] = per_block(args.per_block)
    if args.curves:
        report["curves"] = curves(args.curves)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
