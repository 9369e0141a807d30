"""``flowood evaluate --scores ...``: the field's OOD scores for one run, with their auxiliary models.

:func:`add_scores` is called by :func:`flowood.experiments.evaluate.evaluate_run` after the run's own
likelihoods are computed. It loads exactly the samples the evaluation scored, trains the auxiliary models a
score needs when they are missing (through flowood's normal training, capped by :class:`ScoreSettings`),
and writes for every OOD set ``report["ood"][NAME]["metrics"][SCORE]`` (AUROC, AUPR-in, AUPR-out, FPR95)
plus ``report["scores"][SCORE]`` (direction, cost, reference and score-specific facts such as typicality's M).
Per-sample (per-batch for typicality) values go to ``RUN/ood_scores.npz`` under ``"SCORE/DATASET"``.

Auxiliary models, stored in the run directory and reused on the next evaluation:

* ``RUN/background/``: the likelihood-ratio background flow, an ordinary run directory whose config is the
  run's (same architecture) with ``data.dataset = npz:RUN/background/data/mutated.npz`` (training and test
  images mutated with rate μ, see :func:`flowood.ood.scores.mutate_images`) and a shorter training budget;
  ``RUN/background/mutation.json`` records μ (a different μ retrains it).
* ``RUN/ensemble/member-K/``: WAIC members, the run's config with seeds ``seed + 101 + K`` and the budget below.
* ``RUN/embedding-flow/`` (+ ``RUN/embeddings/``): the tabular flow on pretrained-CNN features of the
  in-distribution training split, the same layout ``flowood demo --embeddings`` writes (which is reused).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowood.data import pick_split
from flowood.errors import ConfigError
from flowood.experiments.runs import Run, load_run
from flowood.ood import detection_metrics, score_bits_per_dim
from flowood.ood.scores import (
    DEFAULT_MUTATION_RATE,
    SCORES,
    compressed_bits_per_dim,
    input_complexity,
    likelihood_ratio,
    mutate_images,
    parse_scores,
    typicality_batches,
    typicality_scores,
    waic,
)
from flowood.perf import FastPath
from flowood.train.config import apply_overrides, config_from_dict
from flowood.train.data import TensorBatches, load_split
from flowood.train.trainer import train

LN2 = math.log(2.0)


@dataclass
class ScoreSettings:
    """Sizes of the scores and of their auxiliary models (defaults: CPU-sized, about a minute per model).

    Attributes:
        mutation_rate: μ of the likelihood-ratio background (each value replaced with probability μ).
        mutation_copies: independently mutated copies of the training set the background is trained on.
        background_minutes: training-time cap of the background flow (wall-clock minutes).
        ensemble_size: K, the number of WAIC members.
        member_minutes: training-time cap of each WAIC member.
        aux_max_steps: step cap of the background flow and of each member (``None``: only time and the run's
            epochs limit them).
        aux_test_limit: test images the background and the members evaluate at the end of each epoch.
        aux_overrides: ``key=value`` overrides applied to the configs of the background and the members
            (e.g. ``model.mid_channels=8`` for a smaller model of the same family).
        typicality_m: M, samples per typicality batch.
        typicality_batches: batches drawn from each set (in-distribution test set and every OOD set).
        typicality_train_limit: training samples used to estimate the mean training NLL (``None``: all of the
            run's training data; never more than the run's ``data.limit``).
        compressor: input-complexity compressor (``png``, ``zlib``, ``bz2``, ``lzma``).
        extractor: CNN of the embedding flow (when one is trained here).
        embedding_size: extractor input resolution in pixels.
        embedding_train_limit: in-distribution training images embedded for the embedding flow.
        embedding_test_limit: in-distribution test images embedded (the embedding flow's test split).
        embedding_minutes: training-time cap of the embedding flow.
        embedding_max_steps: step cap of the embedding flow.
        embedding_overrides: ``key=value`` overrides of the ``tabular-embeddings`` preset.
    """

    mutation_rate: float = DEFAULT_MUTATION_RATE
    mutation_copies: int = 1
    background_minutes: float = 1.0
    ensemble_size: int = 3
    member_minutes: float = 1.0
    aux_max_steps: int | None = None
    aux_test_limit: int = 500
    aux_overrides: list[str] = field(default_factory=list)
    typicality_m: int = 10
    typicality_batches: int = 200
    typicality_train_limit: int | None = 2000
    compressor: str = "png"
    extractor: str = "efficientnet-lite0"
    embedding_size: int = 64
    embedding_train_limit: int | None = 3000
    embedding_test_limit: int | None = 1000
    embedding_minutes: float = 1.5
    embedding_max_steps: int | None = 700
    embedding_overrides: list[str] = field(default_factory=list)


@dataclass
class ScoredSet:
    """One dataset the evaluation scored: its report key, how it was loaded and its bits/dim under the run."""

    key: str
    name: str | None
    limit: int | None
    classes: list[int] | None
    noise_seed: int
    bpd: np.ndarray


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"[scores] {msg}", flush=True)


def _load(run: Run, s: ScoredSet) -> Any:
    """The samples :func:`flowood.experiments.evaluate.score_dataset` scored for ``s`` (same call)."""
    cfg = run.run_config.data
    return load_split(
        cfg,
        pick_split(s.name or cfg.dataset, "test"),
        name=s.name,
        limit=s.limit,
        classes=s.classes,
        seed=run.run_config.seed,
        like_shape=run.flow.input_shape,
    )


def _bpd(run: Run, ds: Any, *, batch_size: int, seed: int, fast: FastPath | None) -> np.ndarray:
    """Bits/dim of an already loaded dataset under ``run``'s flow (with its standardiser for vectors)."""
    device = next(run.flow.parameters()).device
    transform = run.standardizer if (ds.kind == "vector" and run.standardizer is not None) else None
    data = ds.data.float() if ds.kind == "vector" else ds.data
    batches = TensorBatches(data, ds.kind, device).sequential(batch_size)
    with torch.inference_mode():
        return score_bits_per_dim(run.flow, batches, seed=seed, transform=transform, fast=fast)


def _has_weights(run_dir: Path) -> bool:
    return (run_dir / "config.yaml").is_file() and (
        (run_dir / "model.safetensors").is_file() or (run_dir / "model_ema.safetensors").is_file()
    )


def _aux_config(run: Run, *, seed: int, minutes: float, settings: ScoreSettings, device: str) -> dict[str, Any]:
    """The run's config, shortened: same model family, time/step caps, no samples, no negative training."""
    raw = copy.deepcopy(run.config)
    for key in ("description", "paper", "name", "parameters", "input_shape"):
        raw.pop(key, None)
    raw["seed"] = seed
    raw["device"] = device
    data = raw.setdefault("data", {})
    data["ood"] = []
    data["negative_dataset"] = None
    data["test_limit"] = min(data.get("test_limit") or settings.aux_test_limit, settings.aux_test_limit)
    tr = raw.setdefault("train", {})
    tr["max_minutes"] = minutes
    tr["max_steps"] = settings.aux_max_steps
    tr["sample_every"] = 0
    tr["checkpoint_every"] = 0
    return apply_overrides(raw, list(settings.aux_overrides))


# ------------------------------------------------------------------------------------------------ auxiliary models


def ensure_background(run: Run, settings: ScoreSettings, *, device: str = "auto", quiet: bool = False) -> Path:
    """Train (or reuse) the likelihood-ratio background flow in ``RUN/background``; returns its directory.

    The training and test images of the run's in-distribution data (same ``limit``/``classes``) are mutated
    with rate μ (``settings.mutation_copies`` independent copies of the training set) and written to
    ``RUN/background/data/mutated.npz``; the background is the run's config pointed at that file, trained by
    :func:`flowood.train.train` for at most ``settings.background_minutes``."""
    bg = run.dir / "background"
    want = {"mutation_rate": float(settings.mutation_rate), "copies": int(settings.mutation_copies)}
    meta = bg / "mutation.json"
    if _has_weights(bg) and meta.is_file() and json.loads(meta.read_text()).get("mutation") == want:
        return bg
    if bg.exists():
        shutil.rmtree(bg)
    d = run.run_config.data
    seed = run.run_config.seed
    train_ds = load_split(d, "train", limit=d.limit, classes=d.classes, seed=seed)
    test_limit = min(d.test_limit or settings.aux_test_limit, settings.aux_test_limit)
    test_ds = load_split(d, "test", limit=test_limit, classes=d.classes, seed=seed)
    if train_ds.kind != "image":
        raise ConfigError("likelihood_ratio needs an image run (the background is trained on mutated pixels)")
    base = train_ds.data.numpy()
    x_train = np.concatenate(
        [mutate_images(base, settings.mutation_rate, seed=1000 + seed + c) for c in range(settings.mutation_copies)]
    )
    x_test = mutate_images(test_ds.data.numpy(), settings.mutation_rate, seed=2000 + seed)
    (bg / "data").mkdir(parents=True)
    file = bg / "data" / "mutated.npz"
    np.savez(file, x_train=x_train, x_test=x_test)
    raw = _aux_config(run, seed=seed + 100, minutes=settings.background_minutes, settings=settings, device=device)
    raw["data"] = {"dataset": f"npz:{file.resolve()}", "ood": []}
    _log(
        quiet,
        f"likelihood_ratio: training the background flow on {len(x_train)} images mutated with rate "
        f"{settings.mutation_rate} -> {bg} (at most {settings.background_minutes:g} min)",
    )
    train(config_from_dict(raw), bg, quiet=quiet)
    meta.write_text(json.dumps({"mutation": want, "seed": seed}, indent=2))
    return bg


def ensure_ensemble(run: Run, settings: ScoreSettings, *, device: str = "auto", quiet: bool = False) -> list[Path]:
    """Train (or reuse) the K WAIC members ``RUN/ensemble/member-0..K-1`` (the run's config, seeds
    ``seed + 101 + k``, at most ``settings.member_minutes`` each); returns their directories."""
    if settings.ensemble_size < 2:
        raise ConfigError(f"waic needs an ensemble of at least 2 flows, got ensemble_size={settings.ensemble_size}")
    members = []
    for k in range(settings.ensemble_size):
        member = run.dir / "ensemble" / f"member-{k}"
        if not _has_weights(member):
            if member.exists():
                shutil.rmtree(member)
            seed = run.run_config.seed + 101 + k
            _log(
                quiet,
                f"waic: training ensemble member {k + 1}/{settings.ensemble_size} (seed {seed}) -> {member} "
                f"(at most {settings.member_minutes:g} min)",
            )
            raw = _aux_config(run, seed=seed, minutes=settings.member_minutes, settings=settings, device=device)
            train(config_from_dict(raw), member, quiet=quiet)
        members.append(member)
    return members


def _embedding_source(emb_run: Run) -> tuple[str, int | None]:
    """Extractor name and input size of an embedding-flow run, read from its training file's metadata."""
    from flowood.features import read_embeddings

    name = emb_run.run_config.data.dataset
    path = Path(name.split(":", 1)[1] if ":" in name else name)
    file = path / "train.npz" if path.is_dir() else path
    meta = read_embeddings(file).metadata
    if "extractor" not in meta:
        raise ConfigError(f"{file} does not say which extractor made it; re-embed with `flowood embed`")
    return str(meta["extractor"]), meta.get("size")


def ensure_embedding_flow(run: Run, settings: ScoreSettings, *, device: str = "auto", quiet: bool = False) -> Path:
    """Train (or reuse) ``RUN/embedding-flow``: the ``tabular-embeddings`` preset on CNN features of the
    in-distribution training/test splits written to ``RUN/embeddings/<dataset>/{train,test}.npz``
    (the layout of ``flowood demo --embeddings``, whose flow is reused when present)."""
    from flowood.features import embed_dataset
    from flowood.train.presets import get_preset

    emb = run.dir / "embedding-flow"
    if _has_weights(emb):
        return emb
    if emb.exists():
        shutil.rmtree(emb)
    d = run.run_config.data
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in d.dataset)
    in_dir = run.dir / "embeddings" / safe
    _log(
        quiet,
        f"embedding_likelihood: embedding {d.dataset} with {settings.extractor}@{settings.embedding_size}px "
        f"(cached by content) and training a tabular flow -> {emb} (at most {settings.embedding_minutes:g} min)",
    )
    for split, limit in (("train", settings.embedding_train_limit), ("test", settings.embedding_test_limit)):
        embed_dataset(
            d.dataset,
            settings.extractor,
            [split],
            in_dir / f"{split}.npz",
            size=settings.embedding_size,
            device=device,
            limit=limit,
            data_root=d.root,
            seed=run.run_config.seed,
            classes=d.classes,
            progress=not quiet,
        )
    raw = get_preset("tabular-embeddings")
    raw["data"]["dataset"] = f"embeddings:{in_dir.resolve()}"
    raw["data"]["ood"] = []
    raw["train"]["max_minutes"] = settings.embedding_minutes
    raw["train"]["max_steps"] = settings.embedding_max_steps
    raw["train"]["epochs"] = max(raw["train"]["epochs"], 1000)  # the step / time caps decide
    raw["device"] = device
    raw["seed"] = run.run_config.seed
    train(config_from_dict(apply_overrides(raw, list(settings.embedding_overrides))), emb, quiet=quiet)
    return emb


# ------------------------------------------------------------------------------------------------ scoring


def _nats(bpd: np.ndarray, num_dims: int) -> np.ndarray:
    return -np.asarray(bpd, dtype=np.float64) * num_dims * LN2


def add_scores(
    run: Run,
    report: dict[str, Any],
    sets: list[ScoredSet],
    scores: list[str],
    *,
    settings: ScoreSettings | None = None,
    device: str = "auto",
    batch_size: int = 512,
    fast: FastPath | None = None,
    quiet: bool = False,
    write: bool = True,
) -> dict[str, np.ndarray]:
    """Compute ``scores`` for the in-distribution set ``sets[0]`` and the OOD sets ``sets[1:]``; fill ``report``.

    Args:
        run: the loaded run (its flow produced ``ScoredSet.bpd``).
        report: the evaluation report; gains ``ood[KEY].metrics[SCORE]`` and ``scores[SCORE]``.
        sets: the in-distribution test set first, then each OOD set, as the evaluation scored them.
        scores: score names (:data:`flowood.ood.scores.SCORES`); ``log_likelihood`` is already in the report.
        settings: sizes (default :class:`ScoreSettings`).
        device: where auxiliary models train and score.
        batch_size: scoring batch size.
        fast: precision / memory format used for the auxiliary flows (never compiled here).
        quiet: no progress bars or log lines.
        write: write ``RUN/ood_scores.npz``.

    Returns:
        Per-sample values, ``"SCORE/KEY" -> array`` (per batch for typicality).
    """
    settings = settings or ScoreSettings()
    scores = parse_scores(scores)
    is_image = run.flow.preprocess is not None
    for name in scores:
        if SCORES[name].images_only and not is_image:
            raise ConfigError(f"score {name} is only defined for image runs; {run.dir} models vectors")
    aux_fast = None
    if fast is not None:
        aux_fast = replace(fast, compile=False)  # auxiliary models are scored eagerly
    per_sample: dict[str, dict[str, np.ndarray]] = {}
    info: dict[str, dict[str, Any]] = {}
    datasets: list[Any] | None = None
    timings: dict[str, float] = {}

    def loaded() -> list[Any]:
        nonlocal datasets
        if datasets is None:
            datasets = [_load(run, s) for s in sets]
        return datasets

    num_dims = run.flow.num_dims
    for name in scores:
        start = time.perf_counter()
        if name in ("log_likelihood", "bits_per_dim"):
            per_sample[name] = {s.key: -s.bpd for s in sets}
            info[name] = {"units": "negated bits/dim (same ranking as nats)"}
        elif name == "input_complexity":
            values = {}
            comp_summary = {}
            for s, ds in zip(sets, loaded(), strict=True):
                comp = compressed_bits_per_dim(ds.data.numpy(), settings.compressor)
                values[s.key] = input_complexity(s.bpd, comp)
                comp_summary[s.key] = float(np.mean(comp))
            per_sample[name] = values
            info[name] = {
                "compressor": settings.compressor,
                "mean_compressed_bits_per_dim": comp_summary,
                "units": "bits/dim (L(x) - bpd_model(x))",
            }
        elif name == "likelihood_ratio":
            bg_dir = ensure_background(run, settings, device=device, quiet=quiet)
            bg = load_run(bg_dir, device=next(run.flow.parameters()).device)
            if aux_fast is not None:
                aux_fast.prepare_model(bg.flow)
            values = {}
            for s, ds in zip(sets, loaded(), strict=True):
                bg_bpd = _bpd(bg, ds, batch_size=batch_size, seed=s.noise_seed, fast=aux_fast)
                values[s.key] = likelihood_ratio(_nats(s.bpd, num_dims), _nats(bg_bpd, num_dims))
            per_sample[name] = values
            info[name] = {
                "background_dir": str(bg_dir),
                "mutation_rate": settings.mutation_rate,
                "mutation_copies": settings.mutation_copies,
                "units": "nats",
            }
        elif name == "waic":
            members = ensure_ensemble(run, settings, device=device, quiet=quiet)
            runs = [load_run(m, device=next(run.flow.parameters()).device) for m in members]
            values = {}
            for s, ds in zip(sets, loaded(), strict=True):
                lp = []
                for r in runs:
                    if aux_fast is not None:
                        aux_fast.prepare_model(r.flow)
                    lp.append(_nats(_bpd(r, ds, batch_size=batch_size, seed=s.noise_seed, fast=aux_fast), num_dims))
                values[s.key] = waic(np.stack(lp))
            per_sample[name] = values
            info[name] = {
                "ensemble_size": len(members),
                "members": [str(m) for m in members],
                "units": "nats (mean - population variance over members)",
            }
        elif name == "typicality":
            d = run.run_config.data
            # The training NLL is estimated on the run's own training data (its `data.limit` subset, same seed).
            caps = [c for c in (d.limit, settings.typicality_train_limit) if c is not None]
            train_ds = load_split(
                d, "train", limit=min(caps) if caps else None, classes=d.classes, seed=run.run_config.seed
            )
            train_bpd = _bpd(run, train_ds, batch_size=batch_size, seed=run.run_config.seed + 7, fast=fast)
            finite = train_bpd[np.isfinite(train_bpd)]
            train_mean = float(finite.mean())
            values = {}
            for j, s in enumerate(sets):
                m = settings.typicality_m
                if len(s.bpd) < m:
                    raise ConfigError(
                        f"typicality: {s.key} has {len(s.bpd)} samples, fewer than M={m}; lower --typicality-m"
                    )
                batches = typicality_batches(len(s.bpd), m, settings.typicality_batches, seed=4242 + j)
                values[s.key] = typicality_scores(s.bpd, train_mean, batches)
            per_sample[name] = values
            info[name] = {
                "M": settings.typicality_m,
                "num_batches": settings.typicality_batches,
                "train_mean_bits_per_dim": train_mean,
                "train_samples": len(train_bpd),
                "batches": "each set (in-distribution test set and every OOD set): num_batches random batches of M "
                "distinct samples (fixed seeds); one score per batch; metrics compare in-distribution batches "
                "with OOD batches",
                "units": "bits/dim",
            }
        elif name == "embedding_likelihood":
            from flowood.features import extract_features

            emb_dir = ensure_embedding_flow(run, settings, device=device, quiet=quiet)
            emb = load_run(emb_dir, device=next(run.flow.parameters()).device)
            extractor, size = _embedding_source(emb)
            values = {}
            for s, ds in zip(sets, loaded(), strict=True):
                feats = extract_features(
                    ds, extractor, size=size, device=device, progress=not quiet, desc=f"{s.key} {extractor}@{size}px"
                )
                vec = torch.from_numpy(np.ascontiguousarray(feats)).float()
                transform = emb.standardizer
                vectors = TensorBatches(vec, "vector", next(emb.flow.parameters()).device).sequential(batch_size)
                with torch.inference_mode():
                    bpd = score_bits_per_dim(emb.flow, vectors, transform=transform)
                values[s.key] = _nats(bpd, emb.flow.num_dims)
            per_sample[name] = values
            info[name] = {
                "run_dir": str(emb_dir),
                "extractor": extractor,
                "size": size,
                "flow_dim": emb.flow.num_dims,
                "units": "nats of the standardised features",
            }
        timings[name] = time.perf_counter() - start

    in_key = sets[0].key
    for name in scores:
        vals = per_sample[name]
        for s in sets[1:]:
            metrics = detection_metrics(vals[in_key], vals[s.key])
            if name == "typicality":
                metrics = {**metrics, "M": settings.typicality_m, "num_batches": settings.typicality_batches}
            report["ood"].setdefault(s.key, {}).setdefault("metrics", {})[name] = metrics
        info[name]["seconds"] = round(timings[name], 2)
    report["scores"] = {name: {**SCORES[name].describe(), **info[name]} for name in scores}
    report["score_settings"] = asdict(settings)
    flat: dict[str, Any] = {f"{name}/{key}": v for name, by in per_sample.items() for key, v in by.items()}
    if write:
        np.savez(run.dir / "ood_scores.npz", **flat)
    return flat


def format_scores(report: dict[str, Any]) -> str:
    """AUROC of every score (rows) on every OOD set (columns), as plain text."""
    names = list(report.get("scores") or ["log_likelihood"])
    ood = list(report.get("ood", {}))
    width = max(14, *(len(n) + 2 for n in ood)) if ood else 14
    lines = [
        f"OOD AUROC by score (in-distribution: {report.get('in_distribution', {}).get('dataset', '?')}; "
        "higher = better separation, 0.5 = chance)"
    ]
    lines.append(f"{'score':<24}" + "".join(f"{n:>{width}}" for n in ood))
    for name in names:
        row = f"{name:<24}"
        for key in ood:
            m = report["ood"][key].get("metrics", {}).get(name)
            row += f"{m['auroc']:>{width}.3f}" if m else f"{'-':>{width}}"
        if name == "typicality" and "typicality" in report.get("scores", {}):
            row += f"   (batches of M={report['scores']['typicality']['M']})"
        lines.append(row)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the demo

DEMO_MAIN_MINUTES = 2.5
"""Training cap of the pixel RealNVP in ``flowood demo --all-scores`` (the plain demo uses 3 minutes)."""

DEMO_SCORES = [
    "log_likelihood",
    "bits_per_dim",
    "likelihood_ratio",
    "input_complexity",
    "typicality",
    "waic",
    "embedding_likelihood",
]


def demo_settings() -> ScoreSettings:
    """Auxiliary-model sizes of ``flowood demo --all-scores``: training capped at 3.75 minutes in total.

    Background 0.75 min, K = 3 members of 0.5 min each, the embedding flow with the settings of
    ``flowood demo --embeddings`` (:data:`flowood.experiments.embedding_demo.SETTINGS`) capped at 1.5 min; with
    the pixel flow's 2.5 minutes and scoring, the demo takes about 8 minutes on 2 idle CPU cores."""
    settings = ScoreSettings(background_minutes=0.75, ensemble_size=3, member_minutes=0.5, aux_test_limit=256)
    try:
        from flowood.experiments.embedding_demo import SETTINGS as EMB
    except ImportError:  # pragma: no cover - the embedding demo ships with the package
        return settings
    settings.extractor = EMB.extractor
    settings.embedding_size = EMB.size
    settings.embedding_train_limit = EMB.train_limit
    settings.embedding_test_limit = EMB.test_limit
    settings.embedding_minutes = min(EMB.minutes, 1.5)
    settings.embedding_max_steps = EMB.max_steps
    settings.embedding_overrides = list(EMB.overrides)
    return settings


def demo_evaluate_options(all_scores: bool, quiet: bool = False) -> dict[str, Any]:
    """Extra :func:`~flowood.experiments.evaluate.evaluate_run` arguments of ``flowood demo`` (``{}`` unless
    ``--all-scores``)."""
    if not all_scores:
        return {}
    return {"scores": list(DEMO_SCORES), "score_settings": demo_settings(), "quiet": quiet}
