"""``flowood benchmark PROTOCOL``: every detector against near and far OOD sets, one leaderboard.

A protocol (YAML; shipped ones in ``flowood/experiments/protocols/``) names the in-distribution set, the OOD
sets grouped as ``near`` and ``far``, the detectors and budgets (``quick``, ``full``). A budget may replace the
datasets (``quick`` uses the embedded bundle) and gives the preset and overrides of the main flow, the
evaluation ``limit``, the bootstrap size and the detector settings (``settings:``, one section per detector and
``aux`` for the auxiliary models, :mod:`flowood.experiments.detector_settings`).

The runner trains the main flow into ``OUT/run`` (:func:`flowood.experiments.derived_runs.train_or_reuse`: reused
when its config is the one wanted), evaluates every available OOD set with every detector
(:func:`flowood.experiments.evaluate.evaluate_run`; auxiliary models are cached in the run), and writes:

* ``OUT/leaderboard.json``: per detector × OOD set AUROC, AUPR-in, AUPR-out, FPR95, each with a paired-bootstrap
  95 % interval of its difference to raw likelihood (:func:`flowood.ood.paired_metric_differences`; per-batch
  detectors are not paired with per-sample likelihoods and get none), wall time per detector (its fit and
  auxiliary training included), and the datasets that are missing with how to get them;
* ``OUT/leaderboard.md``: the same as tables;
* ``OUT/report.html``: the run's report with a benchmark section.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flowood.analysis.html_report import collect_report_parts, write_html_report
from flowood.data import dataset_info
from flowood.errors import ConfigError, DatasetError, FieldError
from flowood.evaluation import EvaluationReport
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.detector_settings import configure
from flowood.experiments.evaluate import BASELINE, Evaluation, ScoringOptions, evaluate_run
from flowood.ood import paired_metric_differences
from flowood.ood.detectors import DETECTORS, parse_detectors
from flowood.perf import cpu_threads
from flowood.settings import as_config_error, check, setting
from flowood.train.config import RunConfig, apply_overrides, config_from_dict, load_config
from flowood.train.presets import PRESETS, get_preset

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def available_protocols() -> list[str]:
    """Names of the protocols shipped with flowood."""
    folder = resources.files("flowood.experiments") / "protocols"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


@dataclass
class Protocol:
    """A benchmark protocol with one budget applied (every value checked on construction)."""

    name: str
    budget: str
    in_distribution: str
    near: list[str]
    far: list[str]
    detectors: list[str]
    preset: str = setting("demo", choices=lambda: list(PRESETS))
    overrides: list[str] = field(default_factory=list)
    limit: int | None = setting(None, ge=1, doc="samples scored per set")
    n_boot: int = setting(200, ge=1, doc="bootstrap resamples of the paired intervals")
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        check(self)


def load_protocol(source: str | Path, budget: str = "quick") -> Protocol:
    """A shipped protocol by name (``fashionmnist``, ``cifar10``) or a YAML file, with ``budget`` applied."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"protocol file {path} not found")
        raw = load_config(path)  # one-line errors naming the file for bad YAML or a non-mapping
    elif str(source) in available_protocols():
        raw = yaml.safe_load((resources.files("flowood.experiments") / "protocols" / f"{source}.yaml").read_text())
    else:
        raise ConfigError(f"unknown protocol {source!r}; shipped: {', '.join(available_protocols())} (or a .yaml file)")
    budgets = raw.get("budgets") or {}
    if not isinstance(budgets, dict):
        raise ConfigError(f"protocol {source}: budgets must map names (quick, full) to settings, got {budgets!r}")
    if not (budgets.get(budget) or {}).get("in_distribution") and "in_distribution" not in raw:
        raise ConfigError(f"protocol {source}: needs in_distribution (the dataset the flow is trained on)")
    if budget not in budgets:
        raise ConfigError(f"protocol {raw.get('name', source)} has no budget {budget!r}; it has: {', '.join(budgets)}")
    b = budgets[budget] or {}
    ood = b.get("ood") or raw.get("ood") or {}
    detectors = parse_detectors(b.get("detectors") or raw.get("detectors") or [])
    settings = b.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"protocol {source}: budgets.{budget}.settings must be a mapping, got {settings!r}")
    try:
        configure(detectors, settings)  # every value checked now, before anything trains
    except FieldError as err:
        raise ConfigError(
            f"protocol {source}: {as_config_error(err, f'budgets.{budget}.settings.{err.field}')}"
        ) from None
    values = {
        "preset": b.get("preset") or raw.get("preset") or "demo",
        "overrides": list(b.get("overrides") or []),
        "limit": b.get("limit"),
        "n_boot": b.get("n_boot", 200),
    }
    try:
        return Protocol(
            name=str(raw.get("name", source)),
            budget=budget,
            in_distribution=str(b.get("in_distribution") or raw["in_distribution"]),
            near=list(ood.get("near") or []),
            far=list(ood.get("far") or []),
            detectors=detectors,
            settings=dict(settings),
            description=str(raw.get("description", "")),
            **values,
        )
    except FieldError as err:
        raise ConfigError(f"protocol {source}: {as_config_error(err, f'budgets.{budget}.{err.field}')}") from None


def dataset_status(name: str, root: str | None = None) -> dict[str, Any] | None:
    """``None`` when ``name`` can be loaded now, else ``{"name", "why", "how_to_get"}``."""
    try:
        info = dataset_info(name, root)
    except DatasetError:
        return {
            "name": name,
            "why": "not a dataset flowood knows",
            "how_to_get": "flowood has no loader for it: export it as folder:/path or npz:/path.npz and name that "
            "in the protocol",
        }
    if info.available_now:
        return None
    return {
        "name": name,
        "why": "not on this machine (looked in: " + ", ".join(info.locations[:4]) + ")",
        "how_to_get": info.how_to_get,
    }


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(v, 2) for v in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main_config(p: Protocol, ood: list[str], device: str, data_root: str | None) -> RunConfig:
    """The benchmark's main flow: the protocol's preset and overrides on its in-distribution set, with the OOD
    sets that are present and ``data_root`` (where their availability was checked)."""
    raw = get_preset(p.preset)
    raw["device"] = device
    raw.setdefault("data", {})["dataset"] = p.in_distribution
    raw["data"]["ood"] = list(ood)
    raw["data"]["root"] = data_root
    return config_from_dict(apply_overrides(raw, list(p.overrides)))


def run_benchmark(
    protocol: str | Path | Protocol,
    out: str | Path,
    *,
    budget: str = "quick",
    device: str = "auto",
    quiet: bool = False,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Run a protocol and write ``leaderboard.json``, ``leaderboard.md`` and ``report.html`` into ``out``.

    Returns:
        The leaderboard dict (see ``leaderboard.json`` in the module docstring).
    """
    p = protocol if isinstance(protocol, Protocol) else load_protocol(protocol, budget)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing_in = dataset_status(p.in_distribution, data_root)
    if missing_in is not None:
        raise DatasetError(
            f"benchmark {p.name}: the in-distribution set {p.in_distribution} is {missing_in['why']}; "
            f"{missing_in['how_to_get']}"
        )
    groups = {name: "near" for name in p.near} | {name: "far" for name in p.far}
    missing = [m for m in (dataset_status(n, data_root) for n in groups) if m is not None]
    for m in missing:
        m["group"] = groups[m["name"]]
    ood = [n for n in groups if n not in {m["name"] for m in missing}]
    if not ood:
        raise DatasetError(f"benchmark {p.name}: none of its OOD sets is on this machine: {missing}")
    run_dir = out / "run"
    detectors, aux = configure(p.detectors, p.settings)
    start_all = time.perf_counter()
    with cpu_threads(None):
        start = time.perf_counter()
        derived = train_or_reuse(
            run_dir,
            main_config(p, ood, device, data_root),
            quiet=quiet,
            log=None if quiet else lambda m: print(f"[benchmark] {m}", flush=True),
            label=f"main flow ({p.preset}) on {p.in_distribution}",
        )
        train_seconds = time.perf_counter() - start if derived.action != "reused" else None
        evaluation = evaluate_run(
            run_dir,
            ood,
            detectors=detectors,
            aux=aux,
            scoring=ScoringOptions(limit=p.limit),
            device=device,
            data_root=data_root,
            quiet=quiet,
        )
    report = evaluation.report
    results = _results(evaluation, p, groups)
    board: dict[str, Any] = {
        "protocol": p.name,
        "budget": p.budget,
        "description": p.description,
        "in_distribution": p.in_distribution,
        "ood": {"near": [n for n in p.near if n in ood], "far": [n for n in p.far if n in ood]},
        "missing": missing,
        "baseline": BASELINE,
        "detectors": {
            name: {
                "seconds": _detector_seconds(report, name),
                "per_batch": DETECTORS[name].info.per_batch,
                "reference": DETECTORS[name].info.reference,
                "units": DETECTORS[name].info.units,
            }
            for name in p.detectors
        },
        "results": results,
        "main_model": {
            "preset": p.preset,
            "overrides": p.overrides,
            "train_seconds": round(train_seconds, 1) if train_seconds is not None else "reused",
            "test_bits_per_dim": report.in_distribution.bits_per_dim.mean,
        },
        "limit": p.limit,
        "n_boot": p.n_boot,
        "seconds": round(time.perf_counter() - start_all, 1),
        "machine": _machine(),
        "run_dir": str(run_dir.resolve()),
    }
    (out / "leaderboard.json").write_text(json.dumps(board, indent=2))
    (out / "leaderboard.md").write_text(format_leaderboard(board))
    parts = collect_report_parts(run_dir)
    parts.title = f"flowood benchmark {p.name} ({p.budget})"
    parts.benchmark = board
    write_html_report(parts, out / "report.html")
    return board


def _detector_seconds(report: EvaluationReport, name: str) -> float | None:
    run = (report.scores or {}).get(name)
    return run.seconds if run is not None else None


def _results(evaluation: Evaluation, p: Protocol, groups: dict[str, str]) -> list[dict[str, Any]]:
    report, scores = evaluation.report, evaluation.scores
    in_key = report.in_distribution.dataset
    rows: list[dict[str, Any]] = []
    for name in p.detectors:
        per_batch = DETECTORS[name].info.per_batch
        for key, entry in report.ood.items():
            m = entry.metrics.get(name)
            if m is None:
                continue
            row: dict[str, Any] = {
                "detector": name,
                "ood": key,
                "group": groups.get(key, "far"),
                **{k: getattr(m, k) for k in METRICS},
            }
            if name != BASELINE and not per_batch:
                row["gain"] = paired_metric_differences(
                    scores[BASELINE][in_key],
                    scores[BASELINE][key],
                    scores[name][in_key],
                    scores[name][key],
                    n_boot=p.n_boot,
                )
            rows.append(row)
    return rows


def _cell(row: dict[str, Any] | None, metric: str = "auroc") -> str:
    if row is None:
        return "-"
    text = f"{row[metric]:.3f}"
    gain = row.get("gain", {}).get(metric)
    if gain is not None:
        text += f" ({gain['delta']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}])"
    return text


def format_leaderboard(board: dict[str, Any]) -> str:
    """``leaderboard.md``: AUROC table per group, then every metric, wall times and missing datasets."""
    by = {(r["detector"], r["ood"]): r for r in board["results"]}
    dets = list(board["detectors"])
    lines = [
        f"# flowood benchmark `{board['protocol']}` (budget `{board['budget']}`)",
        "",
        f"In-distribution: **{board['in_distribution']}** (its test split is the positive class). Scores: higher = "
        "more in-distribution. In parentheses: the difference to raw likelihood (`log_likelihood`) on the same "
        f"samples with its paired-bootstrap {int(100 * 0.95)} % interval; per-batch detectors are not paired.",
        "",
    ]
    for group in ("near", "far"):
        sets = board["ood"][group]
        if not sets:
            continue
        lines += [f"## AUROC, {group} OOD", "", "| detector | " + " | ".join(sets) + " |"]
        lines.append("|---|" + "---|" * len(sets))
        for d in dets:
            lines.append(f"| `{d}` | " + " | ".join(_cell(by.get((d, s))) for s in sets) + " |")
        lines.append("")
    lines += ["## Every metric", "", "| detector | OOD set | group | AUROC | AUPR-in | AUPR-out | FPR95 |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in board["results"]:
        cells = " | ".join(_cell(r, m) for m in METRICS)
        lines.append(f"| `{r['detector']}` | {r['ood']} | {r['group']} | {cells} |")
    lines += ["", "## Wall time per detector (fit and auxiliary training included)", "", "| detector | seconds |"]
    lines.append("|---|---|")
    for d, info in board["detectors"].items():
        lines.append(f"| `{d}` | {info['seconds']} |")
    mm = board["main_model"]
    lines += [
        "",
        f"Main flow: preset `{mm['preset']}` {' '.join(mm['overrides'])}, training {mm['train_seconds']} s, test "
        f"{mm['test_bits_per_dim']:.3f} bits/dim. Total {board['seconds']} s on {board['machine']['cpu_count']} CPUs "
        f"(load average {board['machine']['load_average_1_5_15']}).",
    ]
    if board["missing"]:
        lines += ["", "## Missing datasets (not evaluated)", ""]
        for m in board["missing"]:
            lines.append(f"- **{m['name']}** ({m['group']}): {m['why']}. How to get it: {m['how_to_get']}")
    return "\n".join(lines) + "\n"
