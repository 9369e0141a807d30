"""``flowood benchmark PROTOCOL``: every detector against a protocol's OOD sets, one leaderboard.

A protocol (:mod:`flowood.experiments.protocol`; shipped ones in ``flowood/experiments/protocols/``) is checked
whole first. The runner then obtains each flow it needs through
:func:`flowood.experiments.derived_runs.train_or_reuse` (reused when its saved config is the one wanted, so an
interrupted benchmark resumes where it stopped):

* ``OUT/run``: the flow on the in-distribution set, scored against the ``near`` / ``far`` / ``shift`` sets (for a
  protocol with ``holdout``: ``OUT/runs/all``, when it has such sets);
* ``OUT/runs/holdout-C``: for each held-out class ``C``, the flow on the other classes; ``C``'s test images are
  its OOD set (leave-one-class-out).

Every run is evaluated once per feature pipeline (:func:`flowood.experiments.evaluate.evaluate_run`; detectors
that read no features only in the first) on exactly the same samples (their fingerprints are checked), and the
per-sample scores are merged into one leaderboard (:mod:`flowood.experiments.leaderboard`): ``OUT/leaderboard.json``,
``OUT/leaderboard.md``, ``OUT/report.html``; each evaluation's report and scores in ``OUT/evaluations/UNIT/``; a
model card per run (``model_card.md`` / ``.json`` in the run directory).

Budgets are in optimiser steps (the protocol's overrides): the same command gives the same numbers on an idle and
on a loaded machine. A wall-clock cap (``max_minutes``) may be added as a safety; a flow it cut is *partial*: the
leaderboard says so at the top and does not rank detectors on it unless ``rank_partial``.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from flowood.analysis.html_report import collect_report_parts, write_html_report
from flowood.atomic import atomic_write, atomic_write_text
from flowood.data import dataset_info
from flowood.errors import ConfigError, DatasetError
from flowood.experiments import model_card
from flowood.experiments.derived_runs import DerivedRun, train_or_reuse
from flowood.experiments.detector_settings import AUX, configure
from flowood.experiments.evaluate import Evaluation, ScoringOptions, evaluate_run
from flowood.experiments.leaderboard import build_board, format_leaderboard
from flowood.experiments.protocol import BASELINE, Protocol, available_protocols, load_protocol, reads_features
from flowood.experiments.runs import read_config
from flowood.perf import cpu_threads
from flowood.runs import RunDir
from flowood.train.config import RunConfig, apply_overrides, config_from_dict
from flowood.train.presets import get_preset

__all__ = [
    "BASELINE",
    "Protocol",
    "Unit",
    "available_protocols",
    "dataset_status",
    "format_leaderboard",
    "load_protocol",
    "main_config",
    "run_benchmark",
]


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


@dataclass(frozen=True)
class Unit:
    """One flow of the benchmark and what it is scored against.

    Attributes:
        label: ``main``, ``all`` or ``holdout-C``.
        directory: its run directory.
        held_out: the class left out of its training (``None``: every class is in).
        classes: the classes it trains on (``None``: all).
        sets: OOD dataset name → group (``near``, ``far``, ``shift``, ``holdout``).
    """

    label: str
    directory: Path
    held_out: int | None = None
    classes: list[int] | None = None
    sets: dict[str, str] = field(default_factory=dict)


def units(p: Protocol, out: Path, present: dict[str, str]) -> list[Unit]:
    """The flows a protocol needs: the in-distribution flow for the named sets that are ``present`` (name → group),
    and one per held-out class."""
    if not p.holdout:
        return [Unit("main", out / "run", sets=present)]
    found: list[Unit] = [Unit("all", out / "runs" / "all", sets=present)] if present else []
    num = dataset_info(p.in_distribution).num_classes or 0
    for c in p.holdout:
        kept = [k for k in range(num) if k != c]
        found.append(Unit(f"holdout-{c}", out / "runs" / f"holdout-{c}", c, kept, {p.in_distribution: "holdout"}))
    return found


def main_config(
    p: Protocol, ood: list[str], device: str, data_root: str | None, unit: Unit | None = None,
    max_minutes: float | None = None,
) -> RunConfig:  # fmt: skip
    """A unit's flow: the protocol's preset and overrides on its in-distribution set (the unit's classes; a held-out
    class as the OOD classes of the same dataset), with the OOD sets that are present and ``data_root``; a
    wall-clock ``max_minutes`` safety cap when given."""
    raw = get_preset(p.preset)
    raw["device"] = device
    raw.setdefault("data", {})["dataset"] = p.in_distribution
    raw["data"]["ood"] = list(ood)
    raw["data"]["root"] = data_root
    if unit is not None and unit.held_out is not None:
        raw["data"]["classes"] = unit.classes
        raw["data"]["ood_classes"] = [unit.held_out]
    cfg = config_from_dict(apply_overrides(raw, list(p.overrides)))
    if max_minutes is not None:
        cfg.train.max_minutes = max_minutes
    return cfg


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def training_status(directory: Path, cfg: RunConfig, derived: DerivedRun) -> dict[str, Any]:
    """How far a unit's flow trained: steps done and planned, what stopped it, and whether a wall-clock cap cut
    it short of its step/epoch budget (``partial``)."""
    rows = RunDir(directory).read_metrics()
    steps = int(float(rows[-1].get("step") or 0)) if rows else 0
    epochs_done = sum(1 for r in rows if str(r.get("partial", "0")) in ("0", "", "0.0"))
    t = cfg.train
    stopped_by = derived.result.stopped_by if derived.result is not None else None
    finished = (t.max_steps is not None and steps >= t.max_steps) or epochs_done >= t.epochs
    partial = stopped_by == "train.max_minutes" or (not finished and stopped_by != "train.early_stopping")
    return {
        "steps": steps,
        "max_steps": t.max_steps,
        "epochs": t.epochs,
        "epochs_completed": epochs_done,
        "max_minutes": t.max_minutes,
        "stopped_by": stopped_by or "reused",
        "partial": bool(partial),
    }


def run_benchmark(
    protocol: str | Path | Protocol,
    out: str | Path,
    *,
    budget: str = "quick",
    device: str = "auto",
    quiet: bool = False,
    data_root: str | None = None,
    max_minutes: float | None = None,
    rank_partial: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Run a protocol and write ``leaderboard.json``, ``leaderboard.md``, ``report.html`` and the model cards.

    Args:
        protocol: a shipped name, a YAML file or a loaded :class:`Protocol`.
        out: the output directory (created and locked while the benchmark writes there; an existing *file* there is
            refused).
        budget: the protocol's budget (``quick``, ``full``).
        device: ``auto``, ``cpu`` or ``cuda``.
        quiet: no progress lines.
        data_root: where datasets are looked for first.
        max_minutes: a wall-clock safety cap on each flow's training (part of its config); a flow it cuts is partial.
        rank_partial: rank detectors even when a flow is partial.
        threads: torch CPU threads for everything (fixed, not chosen by the machine's load: float sums in another
            order would change the trained weights, and the same command must give the same numbers anywhere).

    Returns:
        The leaderboard (``leaderboard.json``'s content).
    """
    p = protocol if isinstance(protocol, Protocol) else load_protocol(protocol, budget)
    out = Path(out)
    with RunDir(out).hold_output("benchmark"):  # a file as OUT is one line; one benchmark writes OUT at a time
        return _run_locked(
            p,
            out,
            device=device,
            quiet=quiet,
            data_root=data_root,
            max_minutes=max_minutes,
            rank_partial=rank_partial,
            threads=threads,
        )


def _run_locked(
    p: Protocol,
    out: Path,
    *,
    device: str,
    quiet: bool,
    data_root: str | None,
    max_minutes: float | None,
    rank_partial: bool,
    threads: int,
) -> dict[str, Any]:
    missing_in = dataset_status(p.in_distribution, data_root)
    if missing_in is not None:
        raise DatasetError(
            f"benchmark {p.name}: the in-distribution set {p.in_distribution} is {missing_in['why']}; "
            f"{missing_in['how_to_get']}"
        )
    groups = {name: "near" for name in p.near} | {name: "far" for name in p.far} | {n: "shift" for n in p.shift}
    missing = [m for m in (dataset_status(n, data_root) for n in groups) if m is not None]
    for m in missing:
        m["group"] = groups[m["name"]]
    present = {n: g for n, g in groups.items() if n not in {m["name"] for m in missing}}
    if not present and not p.holdout:
        raise DatasetError(f"benchmark {p.name}: none of its OOD sets is on this machine: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    log = None if quiet else (lambda m: print(f"[benchmark] {m}", flush=True))
    start_all, cpu_all = time.perf_counter(), _cpu_seconds()
    evaluated: list[tuple[Unit, dict[str, Evaluation], dict[str, Any]]] = []
    with cpu_threads(threads):
        for unit in units(p, out, present):
            cfg = main_config(p, list(unit.sets), device, data_root, unit, max_minutes)
            start, cpu = time.perf_counter(), _cpu_seconds()
            derived = train_or_reuse(
                unit.directory,
                cfg,
                quiet=quiet,
                log=log,
                label=f"{unit.label}: flow ({p.preset}) on {p.in_distribution}",
            )
            status = training_status(unit.directory, read_config(unit.directory), derived)
            if derived.action != "reused":
                status.update(
                    train_seconds=round(time.perf_counter() - start, 1),
                    train_cpu_seconds=round(_cpu_seconds() - cpu, 1),
                )
            start, cpu = time.perf_counter(), _cpu_seconds()
            evaluations = evaluate_unit(p, unit, device, data_root, quiet)
            status.update(
                evaluate_seconds=round(time.perf_counter() - start, 1),
                evaluate_cpu_seconds=round(_cpu_seconds() - cpu, 1),
            )
            save_evaluations(out / "evaluations" / unit.label, evaluations)
            evaluated.append((unit, evaluations, status))
    board = build_board(
        p,
        evaluated,
        missing=missing,
        seconds=time.perf_counter() - start_all,
        cpu_seconds=_cpu_seconds() - cpu_all,
        rank_partial=rank_partial,
    )
    board["threads"] = threads
    atomic_write_text(out / "leaderboard.json", json.dumps(board, indent=2))
    atomic_write_text(out / "leaderboard.md", format_leaderboard(board))
    for unit, evaluations, status in evaluated:
        model_card.write(unit, p, board, next(iter(evaluations.values())).report, status)
    parts = collect_report_parts(evaluated[0][0].directory)
    parts.title = f"flowood benchmark {p.name} ({p.budget})"
    parts.benchmark = board
    write_html_report(parts, out / "report.html")
    return board


def _settings_for(p: Protocol, features: Any) -> dict[str, Any]:
    """The protocol's settings with ``aux.features`` replaced by one pipeline's."""
    settings = {k: dict(v) if isinstance(v, dict) else v for k, v in p.settings.items()}
    aux = dict(settings.get(AUX) or {})
    aux["features"] = {f: getattr(features, f) for f in features.__dataclass_fields__}
    settings[AUX] = aux
    return settings


def evaluate_unit(p: Protocol, unit: Unit, device: str, data_root: str | None, quiet: bool) -> dict[str, Evaluation]:
    """One evaluation per feature pipeline (``""`` when the protocol names none), keyed by pipeline; detectors that
    read no features only in the first. Each evaluation's scores are keyed by leaderboard row."""
    out: dict[str, Evaluation] = {}
    first_fingerprints: dict[str, str | None] | None = None
    for i, (label, features) in enumerate(p.feature_settings().items()):
        settings = _settings_for(p, features)
        names = [d for d in p.detectors if i == 0 or reads_features(d, settings)]
        detectors, aux = configure(names, settings)
        evaluation = evaluate_run(
            unit.directory,
            list(unit.sets),
            detectors=detectors,
            aux=aux,
            scoring=ScoringOptions(limit=p.limit),
            device=device,
            data_root=data_root,
            write=i == 0,
            quiet=quiet,
        )
        fingerprints = _fingerprints(evaluation)
        if first_fingerprints is not None and fingerprints != first_fingerprints:
            raise ConfigError(f"{unit.label}: pipeline {label} scored other samples than the first evaluation")
        first_fingerprints = fingerprints
        out[label] = _relabel(evaluation, label, settings, keep_plain=i == 0)
    return out


def _fingerprints(evaluation: Evaluation) -> dict[str, str | None]:
    r = evaluation.report
    found = {r.in_distribution.dataset: r.in_distribution.samples.fingerprint if r.in_distribution.samples else None}
    found.update({k: v.samples.fingerprint if v.samples else None for k, v in r.ood.items()})
    return found


def row_label(name: str, pipeline: str, settings: dict[str, Any]) -> str:
    """A detector's leaderboard row in a pipeline's evaluation: ``NAME@PIPELINE`` when it reads features."""
    return f"{name}@{pipeline}" if pipeline and reads_features(name, settings) else name


def _relabel(evaluation: Evaluation, pipeline: str, settings: dict[str, Any], *, keep_plain: bool) -> Evaluation:
    """The evaluation with its detectors named by leaderboard row; in a later pipeline's evaluation only the rows
    that read features are kept (the others were taken from the first)."""
    rows = {n: row_label(n, pipeline, settings) for n in evaluation.scores}
    keep = {n for n, row in rows.items() if keep_plain or row != n}
    report = evaluation.report
    ood = {
        key: replace(entry, metrics={rows[n]: m for n, m in entry.metrics.items() if n in keep})
        for key, entry in report.ood.items()
    }
    scores = {rows[n]: run for n, run in report.scores.items() if n in keep} if report.scores else None
    return Evaluation(
        report.with_(ood=ood, scores=scores),
        evaluation.bits_per_dim,
        {rows[n]: v for n, v in evaluation.scores.items() if n in keep},
        {rows[n]: v for n, v in evaluation.components.items() if n in keep},
    )


def save_evaluations(folder: Path, evaluations: dict[str, Evaluation]) -> None:
    """Each evaluation's ``report.json`` and per-sample ``scores.npz`` (``ROW/SET``) under ``folder/PIPELINE``."""
    for label, evaluation in evaluations.items():
        sub = folder / (label or "main")
        evaluation.report.save(sub / "report.json")
        flat = evaluation.flat_scores()

        def write(tmp: str, flat: dict[str, np.ndarray] = flat) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **flat)  # type: ignore[arg-type]

        atomic_write(sub / "scores.npz", write)
