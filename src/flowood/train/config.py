"""Typed, validated run configuration (YAML in, YAML out).

A run configuration has four parts: ``model`` (arguments of :func:`flowood.build_flow`), ``data``,
``train`` and top-level ``seed`` / ``device``. Unknown keys and wrongly typed values are rejected with
a message naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowood.atomic import atomic_write_text
from flowood.errors import ConfigError
from flowood.flows.architectures import available_flows, flow_options
from flowood.perf import LR_SCALINGS, PRECISIONS, exact_settings

VECTOR_TRANSFORMS = ("none", "log", "l2")
"""Values of ``data.transform`` (see :class:`flowood.train.data.Standardizer`)."""


@dataclass
class ModelConfig:
    """The flow architecture: ``name`` and its options (see ``flowood.flow_options(name)``)."""

    name: str = "realnvp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """What to train on and what to evaluate against.

    Attributes:
        dataset: in-distribution dataset name (``flowood datasets`` lists them).
        ood: OOD dataset names evaluated by ``flowood evaluate`` by default.
        root: data root searched first.
        limit: use at most this many training samples (deterministic subset).
        test_limit: at most this many test samples for per-epoch evaluation and scoring.
        classes: keep only these labels (one-class protocols).
        options: dataset options passed to ``load_dataset`` for ``dataset`` (and for an OOD set of the same
            name), e.g. ``{in_class: 1}`` for the one-class MINIBOONE/HEPMASS protocol.
        ood_classes: labels of ``dataset`` that form the OOD set when an OOD name equals ``dataset``.
        standardize: vector data only, standardise with training-split statistics (also applied to test and
            OOD vectors; see :class:`flowood.train.data.Standardizer`).
        transform: vector data, before standardising: ``none``, ``log`` (``log(max(x,0) + log_offset)``
            elementwise, for non-negative heavy-tailed features such as pooled CNN activations) or ``l2`` (each
            vector divided by its norm; with ``pca_dim``). See :class:`flowood.train.data.Standardizer`.
        log_offset: the offset of ``transform: log`` (in the features' units).
        drop_constant: vector data, drop features that are constant on the training split.
        pca_dim: vector data, whiten with the top ``pca_dim`` principal components only.
        whiten: vector data, PCA-whiten with all components (the identity flow is then the best Gaussian).
        negative_dataset: OOD training set for negative training (paper appendix B), or ``None``.
        negative_threshold: OOD log-likelihood (nats) above which OOD samples are pushed down.
    """

    dataset: str = "fashionmnist-mini"
    ood: list[str] = field(default_factory=list)
    root: str | None = None
    limit: int | None = None
    test_limit: int | None = None
    classes: list[int] | None = None
    ood_classes: list[int] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    standardize: bool = True
    transform: str = "none"
    log_offset: float = 0.01
    drop_constant: bool = True
    pca_dim: int | None = None
    whiten: bool = False
    negative_dataset: str | None = None
    negative_threshold: float = -30000.0
    negative_weight: float = 1.0


@dataclass
class TrainConfig:
    """Optimisation settings (defaults follow the original RealNVP FashionMNIST command)."""

    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 5e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = 100.0
    # What the minimised loss is, and so the scale grad_clip and weight_decay act on: the mean over the batch
    # of bits/dim (flowood's former and CPU presets' choice) or of the NLL in nats per sample (the original's;
    # D·ln 2 times larger: 543× on 28×28, 2,129× on 32×32×3).
    loss_scale: str = "bits_per_dim"
    # grad_clip on the norm of all gradients together (global) or of each optimizer group on its own
    # (per_group, the original's utils.clip_grad_norm; the weight-norm gains are their own group).
    grad_clip_scope: str = "global"
    # Which parameters weight_decay acts on: weight-norm gains only (gains; the original RealNVP) or all
    # (all; the original Glow's and RealNVPTabular's optimizer over net.parameters(), one group).
    weight_decay_scope: str = "gains"
    warmup_steps: int = 0
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    ema_decay: float | None = None
    nonfinite: str = "skip"
    max_nonfinite: int = 50
    rollback_lr_factor: float = 0.5
    checkpoint_every: int = 0
    sample_every: int = 1
    num_samples: int = 64
    sample_temperature: float = 0.7  # of the samples/epoch_XXX.png grids (base std × T)
    max_steps: int | None = None
    max_minutes: float | None = None
    init_from: str | None = None
    num_workers: int = 0
    # Vector data: std of Gaussian noise added to each standardised training batch (0 = off); it keeps the
    # density from collapsing onto near-degenerate directions of embeddings (see docs/embeddings.md).
    input_noise: float = 0.0
    # Performance (see flowood.perf and the README's "Performance" section). None means "auto":
    # on for CUDA, off on the CPU. `exact: true` (`flowood train --exact`) ignores the five settings below and
    # trains on flowood.perf's reference path: fp32, contiguous, eager, unfused, TF32 and cuDNN autotuning off.
    exact: bool = False
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool | None = None
    compile_mode: str = "default"
    fused_optimizer: bool | None = None
    # Learning rate for the global batch: lr × f(batch_size / reference_batch_size), f from lr_scaling.
    lr_scaling: str = "none"
    reference_batch_size: int | None = None
    # Data-parallel (torchrun) only: synchronise batch-norm statistics across GPUs.
    sync_batchnorm: bool = False
    # Early stopping on a validation split held out of the training split: {patience, val_fraction, min_delta}
    # (see EarlyStopping); None = off. The weights with the best validation bits/dim are the run's weights.
    early_stopping: dict[str, Any] | None = None


@dataclass
class RunConfig:
    """Everything needed to reproduce a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        model = d.pop("model")
        d["model"] = {"name": model["name"], **model["options"]}
        return d

    def save(self, path: Path) -> None:
        import yaml  # imported where used: the package imports without PyYAML (e.g. on a bare GPU box)

        # Written beside and renamed over: a crash mid-write must not leave a run without its config.
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


@dataclass(frozen=True)
class EarlyStopping:
    """Validated ``train.early_stopping`` settings.

    Attributes:
        patience: stop after this many epochs without a validation improvement (>= 1).
        val_fraction: share of the training split held out for validation, in (0, 0.5]; the held-out
            samples are a seeded random subset (``seed``) and are never trained on; vector standardisation is
            fitted on the remaining training samples only.
        min_delta: an epoch improves when its validation bits/dim is lower than the best by more than this.
    """

    patience: int = 5
    val_fraction: float = 0.1
    min_delta: float = 0.0


def early_stopping_settings(train: TrainConfig) -> EarlyStopping | None:
    """``train.early_stopping`` as :class:`EarlyStopping` (``None`` when off), with one-line errors."""
    raw = train.early_stopping
    if raw is None:
        return None
    valid = {f.name for f in dataclasses.fields(EarlyStopping)}
    unknown = sorted(set(raw) - valid)
    if unknown:
        names = ", ".join(f"train.early_stopping.{k}" for k in unknown)
        raise ConfigError(f"unknown key(s) {names}; valid: {', '.join(sorted(valid))}")
    hints = typing.get_type_hints(EarlyStopping)
    es = EarlyStopping(**{k: _check_type(f"train.early_stopping.{k}", v, hints[k]) for k, v in raw.items()})
    if es.patience < 1:
        raise ConfigError(f"train.early_stopping.patience must be >= 1 epoch, got {es.patience}")
    if not 0 < es.val_fraction <= 0.5:
        raise ConfigError(f"train.early_stopping.val_fraction must be in (0, 0.5], got {es.val_fraction}")
    if es.min_delta < 0:
        raise ConfigError(f"train.early_stopping.min_delta must be >= 0 (bits/dim), got {es.min_delta}")
    return es


OPTIMIZERS = ("adam", "adamw", "rmsprop")
LOSS_SCALES = ("bits_per_dim", "nats")
GRAD_CLIP_SCOPES = ("global", "per_group")
WEIGHT_DECAY_SCOPES = ("gains", "all")
NONFINITE_POLICIES = ("skip", "rollback", "raise")


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(key, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, section: str, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; valid: {', '.join(sorted(names))}"
        )
    return cls(**{k: _check_type(f"{section}.{k}", v, hints[k]) for k, v in values.items()})


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict (e.g. parsed YAML or a preset) into a :class:`RunConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a run config must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    for ignored in ("description", "paper", "name", "parameters", "input_shape"):
        raw.pop(ignored, None)
    unknown = sorted(set(raw) - {"model", "data", "train", "seed", "device"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; valid: model, data, train, seed, device")
    model_section = raw.get("model") or {}
    if isinstance(model_section, str):  # `model: realnvp` means the flow's defaults
        model_section = {"name": model_section}
    if not isinstance(model_section, dict):
        raise ConfigError(
            f"model must be a flow name or a mapping such as {{name: realnvp, num_scales: 2}}, got {model_section!r}"
        )
    model_raw = dict(model_section)
    name = model_raw.pop("name", "realnvp")
    if name not in available_flows():
        raise ConfigError(f"model.name: unknown flow {name!r}; available: {', '.join(available_flows())}")
    allowed = flow_options(name)
    bad = sorted(set(model_raw) - set(allowed))
    if bad:
        raise ConfigError(f"model.{bad[0]}: not an option of {name}; options: {', '.join(allowed)}")
    cfg = RunConfig(
        model=ModelConfig(name=name, options=model_raw),
        data=_build(DataConfig, "data", raw.get("data") or {}),
        train=_build(TrainConfig, "train", raw.get("train") or {}),
        seed=_check_type("seed", raw.get("seed", 0), int),
        device=_check_type("device", raw.get("device", "auto"), str),
    )
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Range checks that types alone cannot express."""
    t = cfg.train
    if t.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: {t.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    for key, choices in (
        ("loss_scale", LOSS_SCALES),
        ("grad_clip_scope", GRAD_CLIP_SCOPES),
        ("weight_decay_scope", WEIGHT_DECAY_SCOPES),
    ):
        if getattr(t, key) not in choices:
            raise ConfigError(f"train.{key}: {getattr(t, key)!r} is not one of {', '.join(choices)}")
    if t.nonfinite not in NONFINITE_POLICIES:
        raise ConfigError(f"train.nonfinite: {t.nonfinite!r} is not one of {', '.join(NONFINITE_POLICIES)}")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(t, key)}")
    if not t.lr > 0:
        raise ConfigError(f"train.lr must be > 0, got {t.lr}")
    if t.max_steps is not None and t.max_steps < 1:
        raise ConfigError(f"train.max_steps must be >= 1 (or null for no cap), got {t.max_steps}")
    if t.max_minutes is not None and not t.max_minutes > 0:
        raise ConfigError(f"train.max_minutes must be > 0 (or null for no cap), got {t.max_minutes}")
    if t.weight_decay < 0:
        raise ConfigError(f"train.weight_decay must be >= 0, got {t.weight_decay}")
    if t.ema_decay is not None and not 0 < t.ema_decay < 1:
        raise ConfigError(f"train.ema_decay must be in (0, 1), got {t.ema_decay}")
    if t.precision not in PRECISIONS:
        raise ConfigError(f"train.precision: {t.precision!r} is not one of {', '.join(PRECISIONS)}")
    if t.lr_scaling not in LR_SCALINGS:
        raise ConfigError(f"train.lr_scaling: {t.lr_scaling!r} is not one of {', '.join(LR_SCALINGS)}")
    if t.reference_batch_size is not None and t.reference_batch_size < 1:
        raise ConfigError(f"train.reference_batch_size must be >= 1, got {t.reference_batch_size}")
    if t.lr_scaling != "none" and t.reference_batch_size is None:
        raise ConfigError(
            f"train.lr_scaling={t.lr_scaling} needs train.reference_batch_size (the batch size train.lr was tuned for)"
        )
    if t.input_noise < 0:
        raise ConfigError(f"train.input_noise must be >= 0, got {t.input_noise}")
    early_stopping_settings(t)
    d = cfg.data
    if d.transform not in VECTOR_TRANSFORMS:
        raise ConfigError(f"data.transform: {d.transform!r} is not one of {', '.join(VECTOR_TRANSFORMS)}")
    if not d.log_offset > 0:
        raise ConfigError(f"data.log_offset must be > 0, got {d.log_offset}")
    if d.pca_dim is not None and d.pca_dim < 1:
        raise ConfigError(f"data.pca_dim must be >= 1, got {d.pca_dim}")
    for key in ("limit", "test_limit"):
        if getattr(d, key) is not None and getattr(d, key) < 1:
            raise ConfigError(f"data.{key} must be >= 1 sample (or null for all), got {getattr(d, key)}")
    if len(t.betas) != 2:
        raise ConfigError(f"train.betas must have two values, got {t.betas}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")


EXACT_OVERRIDES = ["train.exact=true"] + [
    f"train.{key}={str(value).lower()}" for key, value in exact_settings().items()
]
"""What ``--exact`` sets: ``train.exact`` (the trainer then resolves its fast path with
``resolve_fast_path(exact=True)``, so TF32 and cuDNN autotuning are off too) and, so that ``config.yaml``
reads as what ran, the config fields of :func:`flowood.perf.exact_settings`."""


def parse_override(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` → ``(["train", "lr"], 0.0001)``; values are parsed as YAML scalars/lists.

    ``flag`` is the option the text came from, named in the errors."""
    if "=" not in text:
        raise ConfigError(f"{flag} expects key=value, got {text!r}")
    import yaml

    key, value = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"{flag} expects key=value, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"{flag} {key}: cannot parse value {value!r}: {err}") from None
    # YAML reads 5e-5 as a string; accept the usual float spellings.
    if isinstance(parsed, str):
        with contextlib.suppress(ValueError):
            parsed = float(parsed) if any(c in parsed for c in "eE.") else parsed
    return path, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a nested dict (returns a new dict)."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: {part} is not a section")
        node[path[-1]] = value
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with errors that name the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{p}: invalid YAML{where}: {what}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return raw
