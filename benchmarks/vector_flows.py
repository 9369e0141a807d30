"""Affine vs spline couplings vs MAF (and a full-covariance Gaussian) on vector data: test nats and OOD AUROC.

Issue 16, items 5-6. Each variant is a preset plus ``--set``-style overrides, trained through
:class:`flowood.train.trainer.Trainer`; the scores are exact per-sample log-densities of the run's own
standardised vectors (the coordinates the flow models), so the Gaussian — scikit-learn's
``GaussianMixture(n_components=1, covariance_type="full")`` fitted to *all* training vectors, including those
a run holds out for early stopping (the flow never trains on them), mapped through the run's standardisation —
is compared in the same units. "test nats" is the mean negative log-likelihood per test sample. Each run also
reports its untrained start (with whitening: the standard normal on the whitened vectors).

    PYTHONPATH=src python benchmarks/vector_flows.py breast-cancer --seeds 0 1 2
    PYTHONPATH=src python benchmarks/vector_flows.py embeddings --emb-dir DIR --seeds 0 1 2

``embeddings`` expects ``DIR/fm/{train,test}.npz``, ``DIR/mnist.npz``, ``DIR/glyphs.npz`` written by
``flowood embed`` (docs/embeddings.md). Results are printed as a Markdown table and written as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from flowood.data import load_dataset
from flowood.ood.metrics import detection_metrics
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.presets import get_preset, preset_parameter_count
from flowood.train.trainer import Trainer

_ES_BC = "train.early_stopping={patience: 5, val_fraction: 0.1}"
_OLD_EMB = [
    "train.early_stopping=null",
    "train.lr=1e-3",
    "train.warmup_steps=100",
    "model.dropout=0.0",
]
SUITES: dict[str, dict[str, tuple[str, list[str]]]] = {
    "breast-cancer": {
        "affine coupling": ("tabular-breast-cancer", []),
        "spline coupling": ("tabular-spline-breast-cancer", []),
        "MAF (affine)": ("maf-breast-cancer", []),
        "affine + early stopping": ("tabular-breast-cancer", [_ES_BC]),
        "spline + early stopping": ("tabular-spline-breast-cancer", [_ES_BC]),
        "MAF + early stopping": ("maf-breast-cancer", [_ES_BC]),
        "affine, whitened + early stopping": ("tabular-breast-cancer", [_ES_BC, "data.whiten=true"]),
        "spline, whitened + early stopping": ("tabular-spline-breast-cancer", [_ES_BC, "data.whiten=true"]),
        "MAF, whitened + early stopping": ("maf-breast-cancer", [_ES_BC, "data.whiten=true"]),
    },
    "embeddings": {
        "affine, the 0.1 preset (Adam 1e-3, 30 epochs, no early stopping)": ("tabular-embeddings", _OLD_EMB),
        "affine (tabular-embeddings)": ("tabular-embeddings", []),
        "spline (tabular-spline-embeddings)": ("tabular-spline-embeddings", []),
        "MAF (maf-embeddings)": ("maf-embeddings", []),
        "affine, 3 epochs on all training vectors (the epoch count early stopping chose)": (
            "tabular-embeddings",
            ["train.early_stopping=null", "train.epochs=3"],
        ),
    },
}


def _sets(suite: str, emb_dir: Path | None) -> tuple[list[str], dict[str, Any], dict[str, tuple[str, str]]]:
    """``(overrides, data section, OOD name -> (dataset, split))``."""
    if suite == "breast-cancer":
        return [], {}, {"malignant": ("breast-cancer", "test")}
    assert emb_dir is not None
    data = {"dataset": f"embeddings:{emb_dir / 'fm'}", "ood": []}
    ood = {
        "MNIST": (f"embeddings:{emb_dir / 'mnist.npz'}", "test"),
        "glyphs": (f"embeddings:{emb_dir / 'glyphs.npz'}", "test"),
    }
    return [], data, ood


@torch.no_grad()
def _log_prob(flow: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    flow.eval()
    return torch.cat([flow.log_prob(b) for b in z.split(1024)]).double().numpy()


def run_variant(preset: str, overrides: list[str], data: dict[str, Any], ood: dict, seed: int) -> dict[str, Any]:
    raw = get_preset(preset)
    raw.setdefault("data", {}).update(data)
    raw = apply_overrides(raw, [*overrides, f"seed={seed}", "device=cpu"])
    cfg = config_from_dict(raw)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp) / "run", quiet=True)
        # The untrained flow, for what training adds (with whitening and zero-initialised st-nets it is the
        # standard normal on the whitened vectors: a full-covariance Gaussian with a floored spectrum).
        initial = copy.deepcopy(trainer.flow)
        result = trainer.run()
        seconds = time.perf_counter() - start
    std = trainer.standardizer
    assert std is not None

    def vectors(name: str, split: str, classes: list[int] | None = None) -> torch.Tensor:
        ds = load_dataset(name, split, classes=classes, seed=seed)
        return std(ds.data.float())

    d = cfg.data
    test = vectors(d.dataset, "test", d.classes)
    train_all = vectors(d.dataset, "train", d.classes)  # every training vector (the flow saw 1 - val_fraction)
    flow_test = _log_prob(trainer.flow, test)
    initial_test = _log_prob(initial, test)
    gauss = GaussianMixture(n_components=1, covariance_type="full", random_state=seed).fit(train_all.double().numpy())
    gauss_test = gauss.score_samples(test.double().numpy())
    out: dict[str, Any] = {
        "seconds": seconds,
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "stopped_by": result.stopped_by,
        "flow_test_nats": float(-flow_test.mean()),
        "gauss_test_nats": float(-gauss_test.mean()),
        "initial_test_nats": float(-initial_test.mean()),
        "flow_auroc": {},
        "gauss_auroc": {},
        "initial_auroc": {},
    }
    for label, (name, split) in ood.items():
        x = vectors(name, split, d.ood_classes if name == d.dataset else None)
        out["flow_auroc"][label] = detection_metrics(flow_test, _log_prob(trainer.flow, x))["auroc"]
        out["initial_auroc"][label] = detection_metrics(initial_test, _log_prob(initial, x))["auroc"]
        out["gauss_auroc"][label] = detection_metrics(gauss_test, gauss.score_samples(x.double().numpy()))["auroc"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--emb-dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="*", help="variant labels to run (default all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every variant")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    extra, data, ood = _sets(args.suite, args.emb_dir)
    extra = [*extra, *args.overrides]
    results: dict[str, Any] = {}
    for label, (preset, overrides) in SUITES[args.suite].items():
        if args.only and label not in args.only:
            continue
        runs = [run_variant(preset, [*overrides, *extra], data, ood, s) for s in args.seeds]
        results[label] = {
            "preset": preset,
            "overrides": overrides,
            "parameters": preset_parameter_count(preset),
            "runs": runs,
        }
        print(json.dumps({label: runs}), flush=True)
    labels = list(ood)
    head = " | ".join(f"AUROC {k}" for k in labels)
    print(f"\n| model | parameters | test nats | {head} | wall s / run |")
    print("|---|---|---|" + "---|" * len(labels) + "---|")

    def fmt(values: list[float], digits: int) -> str:
        m = float(np.mean(values))
        return f"{m:.{digits}f} ± {np.std(values):.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"

    for label, entry in results.items():
        runs = entry["runs"]
        for who in ("flow", "initial", "gauss"):
            name = {"flow": label, "initial": "  its untrained start", "gauss": "  Gaussian, all training vectors"}[who]
            params = f"{entry['parameters']:,}" if who == "flow" else ""
            nats = fmt([r[f"{who}_test_nats"] for r in runs], 2)
            aurocs = " | ".join(fmt([r[f"{who}_auroc"][k] for r in runs], 3) for k in labels)
            secs = fmt([r["seconds"] for r in runs], 0) if who == "flow" else ""
            print(f"| {name} | {params} | {nats} | {aurocs} | {secs} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
