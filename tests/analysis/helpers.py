"""Tiny flows, structured synthetic images, PNG checks and a fake run directory for the analysis tests."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import yaml
from PIL import Image

from flowood.evaluation import (
    BitsPerDim,
    DetectorMetrics,
    EvaluationReport,
    InDistribution,
    OODResult,
    SampleRecord,
    Scoring,
)
from flowood.flows import NormalizingFlow, build_flow
from flowood.train.config import config_from_dict

SHAPE = (1, 16, 16)
"""Image shape of the tests' flows: small so that the whole suite stays fast on 2 CPU cores."""

TINY_MODELS: dict[str, dict] = {
    "realnvp": {"num_scales": 2, "num_blocks": 1, "mid_channels": 8},
    "glow": {"num_scales": 2, "num_steps": 2, "num_blocks": 1, "mid_channels": 8},
    "realnvp-cycle-mask": {"num_blocks": 1, "mid_channels": 8},
}


def tiny_flow(name: str, shape: tuple[int, int, int] = SHAPE) -> NormalizingFlow:
    """A tiny flow whose couplings are not the identity (``init_zeros=False``), in eval mode."""
    torch.manual_seed(0)
    return build_flow(name, shape, init_zeros=False, **TINY_MODELS[name]).eval()


def disc_images(n: int, seed: int, shape: tuple[int, int, int] = SHAPE) -> torch.Tensor:
    """``(n, C, H, W)`` 8-bit-valued images in ``[0, 1]``: a bright disc on a noisy dark background."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=g) - 0.5).tolist()
        r = 0.3 + 0.4 * float(torch.rand(1, generator=g))
        disc = (((xx - cx) ** 2 + (yy - cy) ** 2) < r**2).float()
        out.append((0.8 * disc + 0.1 * torch.rand(c, h, w, generator=g)).expand(c, h, w))
    return (torch.stack(out).clamp(0, 1) * 255).round() / 255


def png_array(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def num_colours(arr: np.ndarray) -> int:
    """Distinct RGB colours of an ``(H, W, 3)`` uint8 image (packed to one int: much faster than unique rows)."""
    a = arr.reshape(-1, 3).astype(np.int32)
    return int(np.unique((a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2]).size)


def assert_png(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The file is a PNG of ``size`` (width, height) that is not blank: pixel std > 0, many colours."""
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(path)
    if size is not None:
        assert img.size == size, (img.size, size)
    arr = png_array(path)
    assert arr.std() > 5.0, f"{path} looks blank"
    assert num_colours(arr) > 20, f"{path} has almost a single colour"
    return arr


def write_png(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


def make_fake_run(run_dir: Path, flow_name: str = "realnvp") -> SimpleNamespace:
    """A run directory in the training contract's layout (config, metrics, report, samples, histogram).

    Returns what ``load_run`` returns (``dir``, the typed ``config``, ``flow``, ``metrics``, ``report``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"name": flow_name, **TINY_MODELS[flow_name]},
        "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"]},
        "train": {"epochs": 3, "lr": 1e-3, "batch_size": 32},
        "seed": 0,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    cols = ["epoch", "step", "train_bpd", "test_bpd", "lr", "nonfinite_steps", "seconds"]
    rows = [[e, 10 * e, 5.0 - e, 5.2 - 0.9 * e, 1e-3 * 0.5 ** (e - 1), 0, 12.5] for e in (1, 2, 3)]
    with (run_dir / "metrics.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)

    def bpd(mean: float, nonfinite: int = 0) -> BitsPerDim:
        return BitsPerDim(mean=mean, median=mean - 0.1, std=0.3, n=64, nonfinite=nonfinite)

    def metrics(auroc: float, aupr_in: float, aupr_out: float, fpr95: float) -> dict[str, DetectorMetrics]:
        return {"log_likelihood": DetectorMetrics(auroc, aupr_in, aupr_out, fpr95, nonfinite=0)}

    report = EvaluationReport(
        run_dir=str(run_dir.resolve()),
        model=config["model"],
        metric_convention="score = log-likelihood (higher = in-distribution)",
        scoring=Scoring(batch_size=512, fast_path={"device": "cpu", "precision": "fp32"}),
        in_distribution=InDistribution("fashionmnist-mini", bpd(3.5), SampleRecord("test", None)),
        ood={
            "mnist-mini": OODResult(bpd(2.2), SampleRecord("test", None), metrics(0.07, 0.3, 0.9, 0.99)),
            "glyphs": OODResult(bpd(4.1, nonfinite=2), SampleRecord("test", None), metrics(0.93, 0.9, math.nan, 0.2)),
        },
    )
    report.save(run_dir / "report.json")
    write_png(run_dir / "histogram.png", 1)
    write_png(run_dir / "samples" / "epoch_001.png", 2)
    with (run_dir / "metrics.csv").open(newline="") as fh:
        metrics = list(csv.DictReader(fh))
    typed = config_from_dict(config)
    return SimpleNamespace(dir=run_dir, config=typed, flow=tiny_flow(flow_name), metrics=metrics, report=report)


def finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(float(v))
