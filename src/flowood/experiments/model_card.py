"""A model card for each flow a benchmark trained: ``RUN/model_card.json`` and ``RUN/model_card.md``.

What it records, all read from the run and the leaderboard (nothing typed in by hand): the data (dataset, the
classes trained on, the held-out class, training images, seed), the preprocessing (dequantisation and logit of the
pixel flow; each feature pipeline), the budget (preset, overrides, steps done and planned, what stopped training,
wall and CPU seconds, whether a wall-clock cap cut it), test bits/dim, every AUROC of this run with its paired
interval against the leaderboard's reference, the provenance, and the limits known for this kind of run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flowood.atomic import atomic_write_text
from flowood.evaluation import EvaluationReport
from flowood.experiments.leaderboard import md
from flowood.experiments.runs import read_config
from flowood.runs import RunDir

if TYPE_CHECKING:
    from flowood.experiments.benchmark import Unit
    from flowood.experiments.protocol import Protocol

KNOWN_LIMITS = (
    "Pixel likelihood ranks simpler images (fewer strokes, more background) as more likely than the training data "
    "(Kirichenko et al. 2020): use it through a detector that corrects for this, not raw.",
    "Near-OOD numbers come from leave-one-class-out on this dataset: a class the flow never saw, of the same kind of "
    "image. They say nothing about classes of other datasets.",
    "Covariate shifts (blur, JPEG, translation, contrast) are reported apart: a high AUROC there means the detector "
    "flags a degraded in-distribution image, which may or may not be wanted.",
    "A learned feature extractor is trained on this run's training split only; its features do not transfer to "
    "other runs.",
)


def card(
    unit: Unit, p: Protocol, board: dict[str, Any], report: EvaluationReport, status: dict[str, Any]
) -> dict[str, Any]:
    """The model card of ``unit``'s run (``model_card.json``'s content)."""
    cfg = read_config(unit.directory)
    d = cfg.data
    results = [
        {k: r[k] for k in ("detector", "ood", "group", "auroc", "aupr_in", "aupr_out", "fpr95")}
        | ({"auroc_vs_reference": r["gain"]["auroc"]} if "gain" in r else {})
        for r in board["results"]
        if r["unit"] == unit.label
    ]
    model = cfg.to_dict()["model"]
    alpha = model.get("alpha", 0.9)
    return {
        "run_dir": str(unit.directory.resolve()),
        "benchmark": {"protocol": p.name, "budget": p.budget, "unit": unit.label, "reference": board["reference"]},
        "data": {
            "dataset": d.dataset,
            "classes": d.classes,
            "held_out_class": unit.held_out,
            "training_images": d.limit if d.limit is not None else "all",
            "test_images_scored": report.in_distribution.bits_per_dim.n,
            "root": d.root,
            "seed": cfg.seed,
        },
        "preprocessing": {
            "pixels": f"uniform dequantisation (255 x + u) / 256, squeeze to [(1-a)/2, (1+a)/2] with a = {alpha}, "
            "logit; its log-det is part of the likelihood",
            "scored_sets": "loaded at the run's shape; conversions listed per set under provenance",
            "feature_pipelines": {
                label or "default": {k: str(v) for k, v in vars(f).items()} for label, f in p.feature_settings().items()
            },
        },
        "budget": {"preset": p.preset, "overrides": p.overrides, **status},
        "model": model,
        "test_bits_per_dim": report.in_distribution.bits_per_dim.to_json(),
        "results": results,
        "provenance": report.provenance.to_json() if report.provenance else None,
        "known_limits": [
            *(["PARTIAL: a wall-clock cap cut training short of its step budget."] if status.get("partial") else []),
            *KNOWN_LIMITS,
        ],
    }


def render(c: dict[str, Any]) -> str:
    """``model_card.md`` of a card."""
    data, budget, bpd = c["data"], c["budget"], c["test_bits_per_dim"]
    b = c["benchmark"]
    held = f", class {data['held_out_class']} held out" if data["held_out_class"] is not None else ""
    lines = [
        f"# Model card: {md(b['protocol'])} / {md(b['unit'])}",
        "",
        f"- **Data**: {md(data['dataset'])} (classes {md(data['classes'] if data['classes'] is not None else 'all')}"
        f"{held}), training images: {md(data['training_images'])}, seed {data['seed']}.",
        f"- **Preprocessing**: {md(c['preprocessing']['pixels'])}.",
        f"- **Budget**: preset `{budget['preset']}` {md(' '.join(budget['overrides']))}; {budget['steps']} steps "
        f"(planned {budget['max_steps'] or 'the epochs'}), stopped by {budget['stopped_by']}; training "
        f"{budget.get('train_seconds', 'reused')} s wall / {budget.get('train_cpu_seconds', '-')} s CPU"
        + (" — **PARTIAL**" if budget.get("partial") else "")
        + ".",
        f"- **Test bits/dim**: {bpd['mean']:.3f} (median {bpd['median']:.3f}, n = {bpd['n']}).",
        "",
        f"| detector | OOD set | group | AUROC | vs `{b['reference']}` (95 %) |",
        "|---|---|---|---|---|",
    ]
    for r in c["results"]:
        g = r.get("auroc_vs_reference")
        vs = f"{g['delta']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" if g else "-"
        lines.append(f"| `{r['detector']}` | {md(r['ood'])} | {r['group']} | {r['auroc']:.3f} | {vs} |")
    lines += ["", "## Known limits", ""] + [f"- {md(x)}" for x in c["known_limits"]]
    prov = c.get("provenance") or {}
    lines += [
        "",
        f"flowood {md(prov.get('flowood_version', '?'))}, commit {md(prov.get('git_commit') or 'unknown')}.",
    ]
    return "\n".join(lines) + "\n"


def write(unit: Unit, p: Protocol, board: dict[str, Any], report: EvaluationReport, status: dict[str, Any]) -> None:
    """Write ``model_card.json`` and ``model_card.md`` into ``unit``'s run directory."""
    c = card(unit, p, board, report, status)
    files = RunDir(unit.directory)
    atomic_write_text(files.model_card_json, json.dumps(c, indent=2, default=str))
    atomic_write_text(files.model_card, render(c))
