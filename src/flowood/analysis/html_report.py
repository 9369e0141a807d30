"""One self-contained HTML page per run: config, training curves, evaluation table, measurements, figures.

The page has no scripts, fonts, stylesheets or images from anywhere else: PNGs are embedded as base64 ``data:``
URIs and the CSS is inline, so it opens offline, from an e-mail attachment or a cluster's scratch disk. Layout:
a max-width column, images that shrink with the window and tables that scroll sideways on narrow screens.

This module reads the run directory's files directly (it must not import the training/experiment layers):
``config.yaml``, ``metrics.csv``, ``report.json``, ``figures/*.png``, ``figures/coupling_stats.json``,
``histogram.png`` and ``samples/*.png``.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from flowood.analysis.style import BPD_LABEL, dataset_color, figure_style, new_figure
from flowood.atomic import atomic_write_text
from flowood.errors import ReportError
from flowood.evaluation import BitsPerDim, DetectorMetrics, EvaluationReport
from flowood.runs import RunDir

MAX_SAMPLE_FIGURES = 12
"""At most this many ``samples/epoch_*.png`` are embedded (first, last and evenly spaced ones in between)."""

# Short explanations shown under figures whose file names flowood's visualize step uses.
FIGURE_NOTES: dict[str, str] = {
    "latents": "Paper claim 2: the latent z = f(x) reshaped onto the image grid (and per scale) still looks like "
    "the input, for in-distribution and OOD images alike.",
    "coupling": "Paper claim 3: a coupling layer's st-network sees the masked input and predicts s and t; −t "
    "resembles the hidden pixels (a smart interpolation), whatever the dataset.",
    "samples": "Samples at the temperature T stated in the caption or above each grid (base standard deviation "
    "scaled by T).",
    "histogram": "Paper claim 1 / Figure 1: bits/dim per dataset; OOD data with lower bits/dim than the "
    "in-distribution test set means the likelihood ranks it as more in-distribution.",
}


@dataclass
class ReportParts:
    """Everything a report shows; build it from a run directory with :func:`collect_report_parts` or by hand.

    Attributes:
        title: page title.
        config: the run's configuration (shown as YAML), or None.
        metrics: rows of ``metrics.csv`` (values parsed to float where numeric).
        report: the evaluation (``report.json``), or None.
        coupling_stats: rows of ``figures/coupling_stats.json`` (claim-3 measurement), or None.
        figures: ``(caption, png path or bytes)`` in display order.
        notes: extra lines shown under the title (e.g. what is missing and how to produce it).
        benchmark: a ``flowood benchmark`` leaderboard (``leaderboard.json``), shown as its own section.
    """

    title: str = "flowood run report"
    config: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    report: EvaluationReport | None = None
    coupling_stats: list[dict[str, Any]] | None = None
    figures: list[tuple[str, Path | bytes]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    benchmark: dict[str, Any] | None = None
    step_curve: list[tuple[int, float]] = field(default_factory=list)
    """``(step, train bits/dim)`` from TensorBoard: the curve of a run with too few epochs for one."""


# --------------------------------------------------------------------------------------------------- reading files


def _num(v: str) -> Any:
    """CSV cell → float when numeric (including nan/inf), else the stripped string; empty → None."""
    v = v.strip()
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` with numeric cells parsed to float (empty cells → None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _num(v or "") for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]


def _sample_subset(paths: list[Path], limit: int) -> list[Path]:
    if len(paths) <= limit:
        return paths
    idx = np.unique(np.linspace(0, len(paths) - 1, limit).round().astype(int))
    return [paths[i] for i in idx]


# The story of the paper: likelihoods (claim 1), latents (claim 2), coupling layers (claim 3), then samples.
_FIGURE_ORDER = ("histogram", "latent", "coupling", "sample")


def _figure_order(path: Path) -> tuple[int, str]:
    stem = path.stem.lower()
    rank = next((i for i, key in enumerate(_FIGURE_ORDER) if stem.startswith(key)), len(_FIGURE_ORDER))
    return rank, stem


def collect_report_parts(run_dir: str | Path) -> ReportParts:
    """Read whatever a run directory holds; missing pieces become notes, never errors.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    parts = ReportParts(title=f"flowood run report: {run.resolve().name}")
    files = RunDir(run)
    cfg_path = files.config
    if cfg_path.is_file():
        try:
            loaded = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as err:
            raise ReportError(f"{cfg_path} cannot be read ({str(err).splitlines()[0][:120]})") from None
        parts.config = loaded if isinstance(loaded, dict) else {"config": loaded}
    else:
        parts.notes.append("No config.yaml in the run directory.")
    if files.metrics.is_file():
        parts.metrics = read_metrics_csv(files.metrics)
    else:
        parts.notes.append("No metrics.csv: training curves unavailable.")
    if files.report.is_file():
        try:
            parts.report = EvaluationReport.load(files.report)
        except ReportError as err:
            parts.notes.append(f"report.json not shown: {err}")
        else:  # models stopped short of their budget: the numbers below are not those of the configured ones
            parts.notes += [f"PARTIAL RESULTS: {line}" for line in parts.report.partial or ()]
    else:
        parts.notes.append("No report.json: run `flowood evaluate RUN_DIR` for the evaluation table.")
    stats_path = files.figures / "coupling_stats.json"
    if stats_path.is_file():
        try:
            loaded = json.loads(stats_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            parts.notes.append(f"{stats_path} not shown: not JSON ({err}); run `flowood visualize RUN_DIR` again.")
        else:
            rows = loaded.get("rows", []) if isinstance(loaded, dict) else loaded
            parts.coupling_stats = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else None
    figs = sorted(files.figures.glob("*.png"), key=_figure_order) if files.figures.is_dir() else []
    if not figs:
        parts.notes.append("No figures/: run `flowood visualize RUN_DIR` for latent, coupling and sample figures.")
    for p in figs:
        parts.figures.append((p.stem.replace("_", " "), p))
    if files.histogram.is_file():
        parts.figures.append(("histogram (from evaluation)", files.histogram))
    samples = sorted(files.samples.glob("*.png")) if files.samples.is_dir() else []
    shown = _sample_subset(samples, MAX_SAMPLE_FIGURES)
    if len(shown) < len(samples):
        parts.notes.append(f"{len(shown)} of {len(samples)} training-sample grids shown (evenly spaced).")
    # flowood train draws these at train.sample_temperature (0.7 before that setting existed).
    train_cfg = (parts.config or {}).get("train") if isinstance(parts.config, dict) else None
    temperature = (train_cfg or {}).get("sample_temperature", 0.7) if isinstance(train_cfg, dict) else 0.7
    for p in shown:
        parts.figures.append((f"training samples: {p.stem.replace('_', ' ')} (temperature {temperature:g})", p))
    parts.step_curve = read_step_curve(run / "tensorboard")
    return parts


def read_step_curve(tensorboard_dir: str | Path) -> list[tuple[int, float]]:
    """``(step, bits/dim)`` of the training loss logged to TensorBoard every 10 steps (``train/bpd_step``),
    finite values only; empty without events."""
    path = Path(tensorboard_dir)
    if not path.is_dir():
        return []
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/bpd_step" not in acc.Tags().get("scalars", []):
            return []
        points = {int(e.step): float(e.value) for e in acc.Scalars("train/bpd_step")}
    except Exception:  # a report never fails on unreadable event files
        return []
    return sorted((s, v) for s, v in points.items() if math.isfinite(v))


# ------------------------------------------------------------------------------------------------ training curves


def _finite(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def training_curves_png(
    metrics: list[dict[str, Any]], step_curve: list[tuple[int, float]] | None = None
) -> bytes | None:
    """PNG bytes of train/test bits/dim vs epoch (and the learning rate), or None without usable rows.

    When ``metrics.csv`` logs several rows per epoch (step-level logging), the x-axis is the step instead, so
    the curve is not drawn as vertical zig-zags. With fewer than 3 epoch rows and a ``step_curve`` (the
    per-step training loss from TensorBoard) the training curve is drawn per step, the epochs' test bits/dim
    as points at their steps: a one-epoch run is a curve, not two dots.
    """
    rows = [r for r in metrics if _finite(r.get("epoch")) or _finite(r.get("step"))]
    per_step = step_curve is not None and len(step_curve) >= 2 and len(rows) < 3
    if not rows and not per_step:
        return None
    epochs = [r.get("epoch") for r in rows]
    use_epoch = all(_finite(e) for e in epochs) and len(set(epochs)) == len(epochs) and not per_step
    xkey, xlabel = ("epoch", "epoch") if use_epoch else ("step", "training step")
    series: dict[str, np.ndarray] = {}
    for key in ("train_bpd", "test_bpd"):
        pts = [(r[xkey], r[key]) for r in rows if _finite(r.get(xkey)) and _finite(r.get(key))]
        if pts:
            series[key] = np.array(pts)
    lr = np.array([(r[xkey], r["lr"]) for r in rows if _finite(r.get(xkey)) and _finite(r.get("lr"))])
    if per_step and step_curve is not None:
        series["train_bpd"] = np.array(step_curve, dtype=np.float64)
        if len(lr) < 2:
            lr = np.empty(0)  # one logged learning rate is not a curve
    if not series:
        return None
    with figure_style():
        fig = new_figure(9.0, 3.6)
        ax = fig.add_subplot(1, 2 if lr.size else 1, 1)
        colours = {"train_bpd": "#0072B2", "test_bpd": "#D55E00"}
        for key, curve in series.items():
            ax.plot(
                curve[:, 0],
                curve[:, 1],
                marker="o" if len(curve) < 40 and not (per_step and key == "train_bpd") else None,
                markersize=3,
                color=colours[key],
                label=key.replace("_bpd", "") + (" (per step)" if per_step and key == "train_bpd" else ""),
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(BPD_LABEL)
        ax.set_title("bits/dim during training")
        ax.legend(frameon=False)
        if lr.size:
            ax2 = fig.add_subplot(1, 2, 2)
            ax2.plot(lr[:, 0], lr[:, 1], color="#555555", marker="o", markersize=3)
            ax2.set_xlabel(xlabel)
            ax2.set_ylabel("learning rate")
            if (lr[:, 1] > 0).all():
                ax2.set_yscale("log")
            ax2.set_title("learning rate")
        fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.16, wspace=0.3)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------- rendering

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d232a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  font-size: 16px; line-height: 1.5; }
.container { max-width: 1200px; margin: 0 auto; padding: 1.25rem 1rem 3rem; }
header h1 { font-size: 1.6rem; margin: 0 0 0.25rem; word-break: break-word; }
header .meta { color: #5b6570; font-size: 0.9rem; }
nav { margin: 0.75rem 0 1rem; font-size: 0.95rem; }
nav a { color: #0b5cad; margin-right: 1rem; text-decoration: none; white-space: nowrap; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; padding: 1rem 1.25rem;
  margin: 1rem 0; }
h2 { font-size: 1.25rem; margin: 0 0 0.75rem; }
.note { color: #5b6570; font-size: 0.92rem; margin: 0.25rem 0; }
.warn { color: #9a3412; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.5rem 0; }
table { border-collapse: collapse; font-size: 0.92rem; min-width: 100%; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #eceff2; text-align: right; white-space: nowrap; }
th { background: #f1f3f5; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.name, th.name { text-align: left; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 0.4em;
  vertical-align: baseline; }
.bad { color: #b42318; font-weight: 600; }
.good { color: #067647; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 6px; padding: 0.75rem; overflow-x: auto;
  font-size: 0.85rem; line-height: 1.4; max-height: 28rem; }
figure { margin: 1rem 0 1.5rem; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; border: 1px solid #eceff2; }
figcaption { font-size: 0.9rem; color: #3d4650; margin-top: 0.4rem; }
figcaption b { color: #1d232a; }
"""


def _data_uri(png: Path | bytes) -> str:
    data = png.read_bytes() if isinstance(png, Path) else png
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _swatch(name: str) -> str:
    return f'<span class="swatch" style="background:{dataset_color(name)}"></span>{html.escape(name)}'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th class="name">{h}</th>' if i == 0 else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="name">{c}</td>' if i == 0 else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _auroc_cell(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return _fmt(v)
    cls = "bad" if float(v) < 0.5 else ("good" if float(v) >= 0.9 else "")
    return f'<span class="{cls}">{float(v):.3f}</span>' if cls else f"{float(v):.3f}"


def _bpd_cells(name: str, b: BitsPerDim, m: DetectorMetrics | None, *, in_distribution: bool = False) -> list[str]:
    """One row of the evaluation table: bits/dim summary, then the likelihood's metrics ("–" when absent)."""
    label = _swatch(name) + (" (in-dist.)" if in_distribution else "")
    cells = [label, _fmt(b.mean), _fmt(b.median), _fmt(b.n), _fmt(b.nonfinite)]
    if m is None:
        return cells + ["–"] * 4
    return [*cells, _auroc_cell(m.auroc), _fmt(m.aupr_in), _fmt(m.aupr_out), _fmt(m.fpr95)]


def _evaluation_section(report: EvaluationReport | None) -> str:
    if report is None:
        return '<p class="note">No evaluation yet (report.json missing).</p>'
    ind = report.in_distribution
    rows = [_bpd_cells(ind.dataset, ind.bits_per_dim, None, in_distribution=True)]
    for name, entry in report.ood.items():
        rows.append(_bpd_cells(name, entry.bits_per_dim, entry.metrics.get("log_likelihood")))
    header = [
        "dataset",
        "bits/dim mean",
        "bits/dim median",
        "n",
        "non-finite",
        "AUROC",
        "AUPR-in",
        "AUPR-out",
        "FPR@95%TPR",
    ]
    note = (
        '<p class="note">Score: log-likelihood, in-distribution test set as positives. AUROC below 0.5 '
        "(red) means the OOD data gets <i>higher</i> likelihood than the in-distribution data (paper claim 1).</p>"
    )
    return _table(header, rows) + note


def _coupling_section(stats: list[dict[str, Any]] | None) -> str:
    if not stats:
        return ""
    header = [
        "dataset",
        "layer",
        "mask",
        "layer input",
        "r(−t, x)",
        "± std",
        "std(x+t)/std(x)",
        "mean |s|",
        "mean |t|",
        "images",
    ]
    rows = []
    for r in sorted(stats, key=lambda r: (r.get("layer", 0), str(r.get("dataset")))):
        shape = "×".join(str(s) for s in r.get("layer_input_shape") or [])
        rows.append(
            [
                _swatch(str(r.get("dataset"))),
                _fmt(r.get("layer")),
                f"{html.escape(str(r.get('mask_type')))} p{_fmt(r.get('parity'))}",
                shape,
                _fmt(r.get("corr_neg_t_x")),
                _fmt(r.get("corr_neg_t_x_std")),
                _fmt(r.get("residual_std_ratio")),
                _fmt(r.get("mean_abs_s")),
                _fmt(r.get("mean_abs_t")),
                _fmt(r.get("n_images")),
            ]
        )
    note = (
        '<p class="note">Pearson correlation between −t (the shift the st-network predicts) and the '
        "entries the layer transforms, per image, averaged. Values near 1 for in-distribution <i>and</i> OOD "
        "data mean the layer interpolates hidden pixels from their neighbours for any structured image "
        "(paper claim 3). std(x+t)/std(x) &lt; 1: the shift removes predictable signal.</p>"
    )
    return '<section id="couplings"><h2>Coupling-layer measurement</h2>' + _table(header, rows) + note + "</section>"


def _figure_note(caption: str) -> str:
    low = caption.lower()
    for key, text in FIGURE_NOTES.items():
        if key in low:
            return " " + html.escape(text)
    return ""


def _summary(config: dict[str, Any] | None, metrics: list[dict[str, Any]]) -> str:
    if not config:
        return ""
    model = config.get("model") or {}
    data = config.get("data") or {}
    train = config.get("train") or {}
    bits = []
    if isinstance(model, dict) and model.get("name"):
        bits.append(f"model <b>{html.escape(str(model['name']))}</b>")
    if isinstance(data, dict) and data.get("dataset"):
        bits.append(f"trained on {_swatch(str(data['dataset']))}")
    if isinstance(data, dict) and data.get("ood"):
        ood = data["ood"] if isinstance(data["ood"], list) else [data["ood"]]
        bits.append("OOD: " + ", ".join(_swatch(str(o)) for o in ood))
    planned = train.get("epochs") if isinstance(train, dict) else None
    last = metrics[-1] if metrics else {}
    if _finite(last.get("epoch")) and _finite(last.get("step")):
        # What was trained, not only what was configured: time caps and max_steps stop runs early.
        of = f" of {html.escape(str(planned))}" if planned is not None else ""
        text = f"epoch {int(last['epoch'])}{of} · {int(last['step'])} steps"
        if _finite(last.get("seconds")):
            text += f" · {float(last['seconds']):.0f} s"
        bits.append(text)
    elif planned is not None:
        bits.append(f"{html.escape(str(planned))} epochs configured, none logged yet")
    return '<p class="meta">' + " · ".join(bits) + "</p>" if bits else ""


def _gain_text(row: dict[str, Any], metric: str) -> str:
    gain = (row.get("gain") or {}).get(metric)
    if not gain:
        return ""
    return f" <small>({gain['delta']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}])</small>"


def _benchmark_section(board: dict[str, Any]) -> str:
    """``flowood benchmark``: detector × OOD set AUROC (with its gain over raw likelihood), every metric,
    wall times and the datasets that were missing."""
    by = {(r["detector"], r["ood"]): r for r in board.get("results", [])}
    dets = list(board.get("detectors", {}))
    reference = html.escape(str(board.get("reference") or board.get("baseline") or "log_likelihood"))
    out = [
        '<section id="benchmark"><h2>Benchmark</h2>',
        f'<p class="meta">protocol {html.escape(str(board.get("protocol")))} · budget '
        f"{html.escape(str(board.get('budget')))} · in-distribution {html.escape(str(board.get('in_distribution')))}"
        f" · {html.escape(str(board.get('seconds')))} s</p>",
        '<p class="note">AUROC of each detector (higher = better; 0.5 = chance). In parentheses: the difference to '
        f"<code>{reference}</code> on the same samples with its paired-bootstrap 95 % interval.</p>",
    ]
    if board.get("partial"):
        out.append(
            '<p class="note warn"><b>Partial results</b>: a wall-clock cap cut a flow short of its step budget; '
            "these are not the protocol's numbers.</p>"
        )
    for group in ("holdout", "near", "far", "shift"):
        sets = board.get("ood", {}).get(group) or []
        if not sets:
            continue
        rows = []
        for d in dets:
            cells = [f"<code>{html.escape(d)}</code>"]
            for s_ in sets:
                r = by.get((d, s_))
                cells.append(_auroc_cell(r["auroc"]) + _gain_text(r, "auroc") if r else "-")
            rows.append(cells)
        title = {"holdout": "held-out classes", "shift": "covariate shift (not OOD; reported apart)"}.get(
            group, f"{group} OOD"
        )
        out.append(f"<h3>{title}</h3>" + _table(["detector", *map(html.escape, sets)], rows))
    rows = [
        [
            f"<code>{html.escape(r['detector'])}</code>",
            html.escape(r["ood"]),
            *(_fmt(r[m]) + _gain_text(r, m) for m in ("auroc", "aupr_in", "aupr_out", "fpr95")),
        ]
        for r in board.get("results", [])
    ]
    out.append("<h3>Every metric</h3>" + _table(["detector", "OOD set", "AUROC", "AUPR-in", "AUPR-out", "FPR95"], rows))
    times = [
        [f"<code>{html.escape(d)}</code>", _fmt(i.get("seconds"), 1)] for d, i in board.get("detectors", {}).items()
    ]
    out.append("<h3>Wall time per detector (s)</h3>" + _table(["detector", "seconds"], times))
    for m in board.get("missing", []):
        out.append(
            f'<p class="note warn">Missing: <b>{html.escape(m["name"])}</b> ({html.escape(m.get("group", ""))}) '
            f"{html.escape(m['why'])}. How to get it: {html.escape(m['how_to_get'])}</p>"
        )
    out.append("</section>")
    return "".join(out)


def render_html(parts: ReportParts) -> str:
    """The report page as one HTML string (no external references)."""
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(parts.title)}</title>",
        f'<style>{_CSS}</style></head><body><div class="container">',
        f"<header><h1>{html.escape(parts.title)}</h1>{_summary(parts.config, parts.metrics)}"
        f'<p class="meta">generated {when} by flowood</p></header>',
    ]
    toc = [("evaluation", "Evaluation"), ("training", "Training"), ("config", "Config")]
    if parts.coupling_stats:
        toc.insert(1, ("couplings", "Couplings"))
    if parts.figures:
        toc.append(("figures", "Figures"))
    if parts.benchmark:
        toc.insert(0, ("benchmark", "Benchmark"))
    out.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in toc) + "</nav>")
    for note in parts.notes:
        out.append(f'<p class="note warn">{html.escape(note)}</p>')

    if parts.benchmark:
        out.append(_benchmark_section(parts.benchmark))
    out.append('<section id="evaluation"><h2>Evaluation</h2>' + _evaluation_section(parts.report) + "</section>")
    out.append(_coupling_section(parts.coupling_stats))

    out.append('<section id="training"><h2>Training curves</h2>')
    png = training_curves_png(parts.metrics, parts.step_curve) if parts.metrics or parts.step_curve else None
    if png is not None:
        # A run stopped in its first epoch has a step curve (TensorBoard) and no metrics.csv row yet.
        last = parts.metrics[-1] if parts.metrics else {}
        extra = []
        for key in ("nonfinite_steps", "seconds"):
            # Both columns are running totals (the trainer writes them cumulatively): the last value is the total.
            logged = [r[key] for r in parts.metrics if _finite(r.get(key))]
            if logged:
                extra.append(
                    f"{key.replace('_', ' ')}: {_fmt(logged[-1], 1) if key == 'seconds' else int(logged[-1])} total"
                )
        rows = f"{len(parts.metrics)} row{'s' if len(parts.metrics) != 1 else ''}"
        out.append(
            f'<figure><img alt="training curves" src="{_data_uri(png)}"><figcaption>Train and test bits/dim '
            f"from metrics.csv ({rows}; last: train {_fmt(last.get('train_bpd'))}, test "
            f"{_fmt(last.get('test_bpd'))} bits/dim; {'; '.join(extra)}).</figcaption></figure>"
        )
    else:
        out.append('<p class="note">No training metrics.</p>')
    out.append("</section>")

    out.append('<section id="config"><h2>Config</h2>')
    if parts.config is not None:
        text = yaml.safe_dump(parts.config, sort_keys=False, default_flow_style=False, allow_unicode=True)
        out.append(f"<pre>{html.escape(text)}</pre>")
    else:
        out.append('<p class="note">No config.</p>')
    out.append("</section>")

    if parts.figures:
        out.append('<section id="figures"><h2>Figures</h2>')
        for caption, png_src in parts.figures:
            out.append(
                f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(png_src)}">'
                f"<figcaption><b>{html.escape(caption)}.</b>{_figure_note(caption)}</figcaption></figure>"
            )
        out.append("</section>")
    out.append("</div></body></html>")
    return "\n".join(out)


def write_html_report(source: str | Path | ReportParts, out_path: str | Path | None = None) -> Path:
    """Write a self-contained report page and return its path.

    Args:
        source: a run directory (read with :func:`collect_report_parts`) or ready :class:`ReportParts`.
        out_path: where to write; default ``RUN_DIR/report.html`` (required when ``source`` is ReportParts).
    """
    if isinstance(source, ReportParts):
        if out_path is None:
            raise ValueError("write_html_report(parts) needs out_path")
        parts = source
    else:
        parts = collect_report_parts(source)
        out_path = out_path if out_path is not None else RunDir(source).report_html
    out = Path(out_path)
    atomic_write_text(out, render_html(parts))  # a full disk keeps the previous page whole
    return out
