"""The benchmark's leaderboard: merged per-sample scores → metrics, paired-bootstrap intervals against the protocol's
reference row, held-out-class summaries (per class, mean, worst), throughput, provenance; ``leaderboard.json`` and
its Markdown rendering (every name from a protocol or a dataset escaped: a protocol file is user input).

``leaderboard.json``::

    protocol, budget, description, in_distribution, reference, limit, n_boot, seconds, cpu_seconds, machine
    partial, ranked, ranking        partial: a flow was cut by a wall-clock cap; ranked: rows ordered by their score
    ood                             {near, far, shift, holdout: [set keys]} (what was scored, by group)
    units                           {UNIT: {run_dir, held_out, training: {steps, max_steps, ..., partial}, test_bpd}}
    detectors                       {ROW: {detector, pipeline, per_batch, reference, fit_seconds, images_per_second}}
    results                         [{unit, detector (ROW), ood, group, held_out, auroc, aupr_in, aupr_out, fpr95,
                                      gain: {METRIC: {delta, low, high}} against the reference, provenance}]
    holdout                         {ROW: {classes, auroc (per class), mean: {...}, worst: {..., class}}}
    missing, provenance             datasets not on this machine; {flowood_version, git_commit, command_line}
"""

from __future__ import annotations

import html
import os
import platform
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowood.evaluation import SampleRecord
from flowood.ood import paired_class_summary, paired_metric_differences
from flowood.ood.detectors import DETECTORS

if TYPE_CHECKING:
    from flowood.experiments.benchmark import Unit
    from flowood.experiments.evaluate import Evaluation
    from flowood.experiments.protocol import Protocol

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")
GROUPS = ("holdout", "near", "far", "shift")
_MD_SPECIAL = set("\\`*_{}[]()#+-.!|~")


def md(text: object) -> str:
    """``text`` safe in a Markdown table cell: HTML's ``& < >`` as entities (no tag reaches a viewer that passes
    HTML through), Markdown's punctuation backslash-escaped, line breaks as spaces."""
    out = html.escape(" ".join(str(text).split()), quote=False)
    return "".join(f"\\{c}" if c in _MD_SPECIAL else c for c in out)


def per_batch(row: str) -> bool:
    return DETECTORS[row.split("@")[0]].info.per_batch


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(v, 2) for v in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _record(rec: SampleRecord | None) -> dict[str, Any] | None:
    return rec.to_json() if rec is not None else None


def _merged(evaluations: dict[str, Evaluation]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
    """Scores ``ROW → SET → (N,)`` and metrics ``SET → ROW → DetectorMetrics`` of one unit's evaluations."""
    scores: dict[str, dict[str, np.ndarray]] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for evaluation in evaluations.values():
        scores.update(evaluation.scores)
        for key, entry in evaluation.report.ood.items():
            metrics.setdefault(key, {}).update(entry.metrics)
    return scores, metrics


def build_board(
    p: Protocol,
    evaluated: Sequence[tuple[Unit, dict[str, Evaluation], dict[str, Any]]],
    *,
    missing: list[dict[str, Any]],
    seconds: float,
    cpu_seconds: float,
    rank_partial: bool = False,
) -> dict[str, Any]:
    """The leaderboard of a benchmark's evaluations (module docstring: the layout)."""
    rows = p.rows()
    results: list[dict[str, Any]] = []
    ood: dict[str, list[str]] = {g: [] for g in GROUPS}
    units: dict[str, Any] = {}
    holdout_pairs: dict[str, list[tuple[np.ndarray, ...]]] = {r: [] for r in rows}
    holdout_classes: list[int] = []
    timing: dict[str, dict[str, list[float]]] = {r: {"fit": [], "ips": []} for r in rows}
    provenance: dict[str, Any] | None = None
    for unit, evaluations, status in evaluated:
        first = next(iter(evaluations.values())).report
        provenance = provenance or (first.provenance.to_json() if first.provenance else None)
        scores, metrics = _merged(evaluations)
        in_key = first.in_distribution.dataset
        units[unit.label] = {
            "run_dir": str(unit.directory.resolve()),
            "held_out": unit.held_out,
            "training": status,
            "auxiliary_training_cpu_seconds": auxiliary_training_cpu(evaluations.values()),
            "test_bits_per_dim": first.in_distribution.bits_per_dim.mean,
        }
        for evaluation in evaluations.values():
            for name, run in (evaluation.report.scores or {}).items():
                if name in timing:
                    timing[name]["fit"].append(run.fit_seconds or 0.0)
                    if run.images_per_second is not None:
                        timing[name]["ips"].append(run.images_per_second)
        for key, entry in first.ood.items():
            name = key.split("[")[0]
            group = unit.sets.get(key, unit.sets.get(name, "far"))
            if key not in ood[group]:
                ood[group].append(key)
            if group == "holdout" and unit.held_out is not None:
                holdout_classes.append(unit.held_out)
            ref = scores.get(p.reference, {})
            for row in rows:
                m = metrics.get(key, {}).get(row)
                if m is None:
                    continue
                result: dict[str, Any] = {
                    "unit": unit.label,
                    "detector": row,
                    "ood": key,
                    "group": group,
                    "held_out": unit.held_out,
                    **{k: getattr(m, k) for k in METRICS},
                    "provenance": {
                        "in": _record(first.in_distribution.samples),
                        "ood": _record(entry.samples),
                        "scores_fingerprint": m.fingerprint,
                    },
                }
                paired = row != p.reference and not per_batch(row) and in_key in ref
                if paired:
                    result["gain"] = paired_metric_differences(
                        ref[in_key], ref[key], scores[row][in_key], scores[row][key], n_boot=p.n_boot
                    )
                if group == "holdout" and paired:
                    holdout_pairs[row].append((ref[in_key], ref[key], scores[row][in_key], scores[row][key]))
                results.append(result)
    holdout = _holdout_summary(p, holdout_pairs, holdout_classes, results)
    partial = any(u["training"].get("partial") for u in units.values())
    ranked = not partial or rank_partial
    board: dict[str, Any] = {
        "protocol": p.name,
        "budget": p.budget,
        "description": p.description,
        "in_distribution": p.in_distribution,
        "reference": p.reference,
        "baseline": p.reference,
        "ood": ood,
        "missing": missing,
        "units": units,
        "detectors": {
            row: {
                "detector": row.split("@")[0],
                "pipeline": row.split("@")[1] if "@" in row else None,
                "per_batch": per_batch(row),
                "reference": DETECTORS[row.split("@")[0]].info.reference,
                "units": DETECTORS[row.split("@")[0]].info.units,
                "seconds": round(sum(timing[row]["fit"]), 1) if timing[row]["fit"] else None,
                "images_per_second": round(float(np.median(timing[row]["ips"])), 1) if timing[row]["ips"] else None,
            }
            for row in rows
        },
        "results": results,
        "holdout": holdout,
        "partial": partial,
        "ranked": ranked,
        "ranking": _ranking(rows, results, holdout) if ranked else [],
        "limit": p.limit,
        "n_boot": p.n_boot,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "machine": _machine(),
        "provenance": provenance,
    }
    return board


def auxiliary_training_cpu(evaluations: Iterable[Evaluation]) -> dict[str, float | None]:
    """CPU seconds spent training each auxiliary model of a run's evaluations that reports it: every learned
    extractor (``learned@PIPELINE``, from its ``metrics.json``: when it was trained) and every embedding flow
    (``embedding_flow@PIPELINE``, ``None`` when this evaluation reused it); ``learned`` / ``embedding_flow`` in a
    protocol without pipelines."""
    found: dict[str, float | None] = {}
    for evaluation in evaluations:
        for row, run in (evaluation.report.scores or {}).items():
            # A protocol without pipelines has plain rows: its models are ``learned`` / ``embedding_flow``.
            at = "@" + row.split("@")[1] if "@" in row else ""
            learned = run.facts.get("learned")
            if isinstance(learned, dict):
                found[f"learned{at}"] = learned.get("training", {}).get("cpu_seconds")
            if row.split("@")[0] == "embedding_likelihood" and "train_cpu_seconds" in run.facts:
                found[f"embedding_flow{at}"] = run.facts["train_cpu_seconds"]
    return found


def _holdout_summary(
    p: Protocol,
    pairs: dict[str, list[tuple[np.ndarray, ...]]],
    classes: list[int],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """Per row: the AUROC of each held-out class, and the mean and worst class with paired intervals against the
    reference (:func:`flowood.ood.paired_class_summary`)."""
    if not classes:
        return {}
    order = list(dict.fromkeys(classes))
    out: dict[str, Any] = {}
    for row, row_pairs in pairs.items():
        per_class = {r["held_out"]: r["auroc"] for r in results if r["detector"] == row and r["group"] == "holdout"}
        if row == p.reference and per_class:
            aurocs = [per_class[c] for c in order]
            worst = int(np.argmin(aurocs))
            out[row] = {
                "classes": order,
                "auroc": aurocs,
                "mean": {"auroc": float(np.mean(aurocs))},
                "worst": {"auroc": aurocs[worst], "class": order[worst]},
            }
            continue
        if len(row_pairs) != len(order):
            if per_class:
                out[row] = {"classes": order, "auroc": [per_class.get(c) for c in order]}
            continue
        summary: dict[str, dict[str, Any]] = dict(paired_class_summary(row_pairs, n_boot=max(p.n_boot, 200)))  # type: ignore[arg-type]
        summary["worst"]["class"] = order[int(summary["worst"].pop("index"))]
        summary["worst"]["reference_class"] = order[int(summary["worst"].pop("reference_index"))]
        out[row] = {"classes": order, "auroc": [per_class[c] for c in order], **summary}
    return out


def _ranking(rows: list[str], results: list[dict[str, Any]], holdout: dict[str, Any]) -> list[str]:
    """Per-sample rows ordered best first: by mean held-out AUROC when the protocol holds classes out, else by mean
    AUROC over the near and far sets (covariate shifts never count)."""

    def key(row: str) -> float:
        if holdout:
            return float(holdout.get(row, {}).get("mean", {}).get("auroc", -1.0))
        values = [r["auroc"] for r in results if r["detector"] == row and r["group"] in ("near", "far")]
        return float(np.mean(values)) if values else -1.0

    return sorted((r for r in rows if not per_batch(r)), key=key, reverse=True)


# ------------------------------------------------------------------------------------------------- Markdown


def _interval(d: dict[str, Any] | None) -> str:
    if not d or "delta" not in d:
        return ""
    return f" ({d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}])"


def _cell(row: dict[str, Any] | None, metric: str = "auroc") -> str:
    if row is None:
        return "-"
    return f"{row[metric]:.3f}" + _interval(row.get("gain", {}).get(metric))


def _ips(info: dict[str, Any]) -> str:
    value = info.get("images_per_second")
    return f"{value:,.0f}" if value is not None else "-"


def format_leaderboard(board: dict[str, Any]) -> str:
    """``leaderboard.md``: the partial-results warning first, held-out classes (per class, mean, worst), near and
    far OOD, covariate shifts on their own, every metric, timings, missing datasets, and the provenance of every
    number at the end."""
    ref = board["reference"]
    dets = board["ranking"] if board.get("ranked") and board.get("ranking") else list(board["detectors"])
    dets += [d for d in board["detectors"] if d not in dets]
    lines = [f"# flowood benchmark {md(board['protocol'])} (budget {md(board['budget'])})", ""]
    if board.get("description"):
        lines += [md(board["description"]), ""]
    if board.get("partial"):
        cut = [
            f"{md(u)}: {t['training']['steps']} of {t['training']['max_steps'] or '?'} steps"
            for u, t in board["units"].items()
            if t["training"].get("partial")
        ]
        lines += [
            "> **PARTIAL RESULTS: a wall-clock cap cut the training of " + "; ".join(cut) + ".** These numbers are "
            "not the protocol's; " + ("detectors are ranked anyway (--rank-partial)." if board.get("ranked") else
            "detectors are not ranked (pass --rank-partial to rank them anyway).") + " Rerun without the cap.",
            "",
        ]  # fmt: skip
    lines += [
        f"In-distribution: **{md(board['in_distribution'])}** (its test split is the positive class). Scores: higher "
        f"= more in-distribution. In parentheses: the difference to `{ref}` on the same samples with its "
        "paired-bootstrap 95 % interval; per-batch detectors are not paired. images/s: scoring throughput (the "
        "detector's own scoring plus the shared flow pass and feature extraction it reads; fits excluded).",
        "",
    ]
    if board.get("ranked") and board.get("ranking"):
        lines += [f"Rows are ranked by {'mean held-out-class' if board['holdout'] else 'mean near/far'} AUROC.", ""]
    lines += _holdout_table(board, dets)
    by = {(r["detector"], r["ood"]): r for r in board["results"]}
    for group, title in (
        ("near", "near OOD"),
        ("far", "far OOD"),
        ("shift", "covariate shift (not OOD: the same objects, mildly degraded; reported apart, never averaged "
         "with OOD results; 0.5 = the detector ignores the shift)"),
    ):  # fmt: skip
        sets = board["ood"].get(group) or []
        if not sets:
            continue
        lines += [f"## AUROC, {title}", "", "| detector | " + " | ".join(md(s) for s in sets) + " | images/s |"]
        lines.append("|---|" + "---|" * (len(sets) + 1))
        for d in dets:
            lines.append(
                f"| `{d}` | " + " | ".join(_cell(by.get((d, s))) for s in sets) + f" | {_ips(board['detectors'][d])} |"
            )
        lines.append("")
    lines += ["## Every metric", "", "| detector | OOD set | group | AUROC | AUPR-in | AUPR-out | FPR95 |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in board["results"]:
        cells = " | ".join(_cell(r, m) for m in METRICS)
        lines.append(f"| `{r['detector']}` | {md(r['ood'])} | {r['group']} | {cells} |")
    lines += _timing(board, dets)
    if board["missing"]:
        lines += ["", "## Missing datasets (not evaluated)", ""]
        for m in board["missing"]:
            lines.append(f"- **{md(m['name'])}** ({m['group']}): {md(m['why'])}. How to get it: {md(m['how_to_get'])}")
    lines += _provenance(board)
    return "\n".join(lines) + "\n"


def _holdout_table(board: dict[str, Any], dets: list[str]) -> list[str]:
    holdout = board.get("holdout") or {}
    if not holdout:
        return []
    classes = next(iter(holdout.values()))["classes"]
    lines = [
        "## AUROC, held-out classes (near OOD: each class left out of training in turn)",
        "",
        f"Mean and worst class with the paired-bootstrap 95 % interval of the difference to `{board['reference']}` "
        "(worst: this row's worst class against the reference's worst class).",
        "",
        "| detector | " + " | ".join(f"class {c}" for c in classes) + " | mean | worst (class) | images/s |",
        "|---|" + "---|" * (len(classes) + 3),
    ]
    for d in dets:
        h = holdout.get(d)
        if h is None:
            continue
        cells = [f"{a:.3f}" if a is not None else "-" for a in h["auroc"]]
        mean = f"{h['mean']['auroc']:.3f}" + _interval(h["mean"]) if "mean" in h else "-"
        worst = f"{h['worst']['auroc']:.3f} ({h['worst']['class']})" + _interval(h["worst"]) if "worst" in h else "-"
        lines.append(f"| `{d}` | " + " | ".join(cells) + f" | {mean} | {worst} | {_ips(board['detectors'][d])} |")
    return [*lines, ""]


def _timing(board: dict[str, Any], dets: list[str]) -> list[str]:
    lines = ["", "## Time", "", "| detector | fit seconds (all runs) | images/s |", "|---|---|---|"]
    for d in dets:
        info = board["detectors"][d]
        lines.append(f"| `{d}` | {info['seconds'] if info['seconds'] is not None else '-'} | {_ips(info)} |")
    lines += [
        "",
        "| run | steps | stopped by | train wall / CPU s | auxiliary training CPU s | evaluate wall / CPU s | test "
        "bits/dim |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, u in board["units"].items():
        t = u["training"]
        train = f"{t.get('train_seconds', 'reused')} / {t.get('train_cpu_seconds', '-')}"
        ev = f"{t.get('evaluate_seconds', '-')} / {t.get('evaluate_cpu_seconds', '-')}"
        steps = f"{t['steps']} of {t['max_steps']}" if t["max_steps"] else f"{t['steps']} ({t['epochs']} epochs)"
        aux = ", ".join(
            f"{k} {v:.0f}" if v is not None else f"{k} reused" for k, v in u["auxiliary_training_cpu_seconds"].items()
        )
        lines.append(
            f"| {md(label)} | {steps} | {t['stopped_by']} | {train} | {aux or '-'} | {ev} | "
            f"{u['test_bits_per_dim']:.3f} |"
        )
    m = board["machine"]
    lines += [
        "",
        f"Total {board['seconds']} s wall, {board['cpu_seconds']} s CPU (this process) on {m['cpu_count']} CPUs, load "
        f"average at the end {m['load_average_1_5_15']}.",
    ]
    return lines


def _provenance(board: dict[str, Any]) -> list[str]:
    """The provenance of every number: code and command, each scored set, each cell's score fingerprint."""
    prov = board.get("provenance") or {}
    command = (prov.get("command_line") or "?").replace("`", "'")
    lines = [
        "",
        "## Provenance",
        "",
        f"flowood {md(prov.get('flowood_version', '?'))}, git commit {md(prov.get('git_commit') or 'unknown')}; "
        f"command: `{command}`.",
        "",
        "Scored sets (split, limit, resize/convert policy as applied, subset seed / noise seed, SHA-256 of the "
        "scored array):",
        "",
        "| run | set | split | limit | conversions | seeds | data fingerprint |",
        "|---|---|---|---|---|---|---|",
    ]
    seen: set[tuple[str, str]] = set()
    for r in board["results"]:
        for side, name in (("in", board["in_distribution"]), ("ood", r["ood"])):
            rec = r["provenance"][side]
            if rec is None or (r["unit"], f"{side}:{name}") in seen:
                continue
            seen.add((r["unit"], f"{side}:{name}"))
            conv = "; ".join(rec.get("conversions") or []) or "none"
            seeds = f"{rec.get('seed')} / {rec.get('noise_seed')}"
            lines.append(
                f"| {md(r['unit'])} | {md(name)} | {md(rec['split'])} | {rec['limit']} | {md(conv)} | {seeds} | "
                f"`{(rec.get('fingerprint') or '')[:16]}` |"
            )
    lines += ["", "Score fingerprints (SHA-256 of the in-distribution and OOD score arrays of each cell):", ""]
    lines += ["| run | detector | set | scores fingerprint |", "|---|---|---|---|"]
    for r in board["results"]:
        fp = (r["provenance"].get("scores_fingerprint") or "")[:16]
        lines.append(f"| {md(r['unit'])} | `{r['detector']}` | {md(r['ood'])} | `{fp}` |")
    return lines
