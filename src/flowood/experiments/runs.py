"""Reading run directories written by ``flowood train``.

Layout: ``config.yaml``, ``metrics.csv``, ``model.safetensors`` (+ ``model_ema.safetensors`` with EMA),
``checkpoints/last.pt`` (full training state), ``samples/epoch_XXX.png``, ``tensorboard/``, and after
``flowood evaluate``: ``report.json``, ``scores.npz``, ``histogram.png``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flowood.errors import CheckpointError
from flowood.flows import NormalizingFlow
from flowood.train.config import RunConfig, config_from_dict, load_config
from flowood.train.data import Standardizer
from flowood.train.trainer import build_run_flow


@dataclass
class Run:
    """A loaded run: its directory, config, trained flow (eval mode) and logs."""

    dir: Path
    config: dict[str, Any]
    run_config: RunConfig
    flow: NormalizingFlow
    metrics: list[dict[str, str]]
    report: dict[str, Any] | None
    standardizer: Standardizer | None
    weights_file: Path


def _input_shape(run_dir: Path, weights: Path) -> tuple[int, ...]:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "input_shape" in meta:
        return tuple(int(s) for s in meta["input_shape"].split(","))
    raise CheckpointError(f"{weights} has no input_shape metadata; re-save it with flowood train")


def load_run(run_dir: str | Path, *, device: str | torch.device = "cpu", weights: str = "auto") -> Run:
    """Load a run directory.

    Args:
        run_dir: directory written by ``flowood train`` or ``flowood demo``.
        device: where to put the flow.
        weights: ``auto`` (EMA weights when the run kept them), ``ema`` or ``raw``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{run_dir} is not a flowood run directory (no config.yaml); "
            "create one with `flowood train --out DIR` or `flowood demo`"
        )
    raw = load_config(run_dir / "config.yaml")
    cfg = config_from_dict(raw)
    ema = run_dir / "model_ema.safetensors"
    plain = run_dir / "model.safetensors"
    path = ema if weights == "ema" or (weights == "auto" and ema.is_file()) else plain
    if not path.is_file():
        raise CheckpointError(f"{path} not found: the run in {run_dir} has not finished an epoch yet")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is unreadable ({err}); resume the run to rewrite it") from None
    shape = _input_shape(run_dir, path)
    flow = build_run_flow(cfg, shape)
    flow.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"})
    flow.to(device).eval()
    metrics: list[dict[str, str]] = []
    if (run_dir / "metrics.csv").is_file():
        with (run_dir / "metrics.csv").open(newline="") as fh:
            metrics = list(csv.DictReader(fh))
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else None
    std_path = run_dir / "standardize.json"
    standardizer = Standardizer.load(std_path) if std_path.is_file() else None
    return Run(run_dir, raw, cfg, flow, metrics, report, standardizer, path)
