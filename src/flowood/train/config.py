"""Typed, validated run configuration (YAML in, YAML out).

A run configuration has four parts: ``model`` (arguments of :func:`flowood.build_flow`), ``data``,
``train`` and top-level ``seed`` / ``device``. Unknown keys and wrongly typed values are rejected with
a message naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowood.atomic import atomic_write_text
from flowood.errors import ConfigError, FieldError
from flowood.flows.architectures import available_flows, flow_options
from flowood.flows.invert import DEFAULT_TOLERANCE, MEMORY_MODES
from flowood.perf import LR_SCALINGS, PRECISIONS, exact_settings
from flowood.settings import as_config_error, build, check, coerce, setting

VECTOR_TRANSFORMS = ("none", "log", "l2")
"""Values of ``data.transform`` (see :class:`flowood.train.data.Standardizer`)."""

OPTIMIZERS = ("adam", "adamw", "rmsprop")
LOSS_SCALES = ("bits_per_dim", "nats")
GRAD_CLIP_SCOPES = ("global", "per_group")
WEIGHT_DECAY_SCOPES = ("gains", "all")
NONFINITE_POLICIES = ("skip", "rollback", "raise")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
        negative_weight: weight of the OOD term of negative training (1: the paper's ``0.5·(in − ood)``).
    """

    dataset: str = "fashionmnist-mini"
    ood: list[str] = field(default_factory=list)
    root: str | None = None
    limit: int | None = setting(None, ge=1, doc="training samples (a seeded subset)")
    test_limit: int | None = setting(None, ge=1, doc="test samples evaluated")
    classes: list[int] | None = setting(None, ge=0, doc="labels kept")
    ood_classes: list[int] | None = setting(None, ge=0, doc="labels that form the OOD set")
    options: dict[str, Any] = field(default_factory=dict)
    standardize: bool = True
    transform: str = setting("none", choices=VECTOR_TRANSFORMS)
    log_offset: float = setting(0.01, gt=0, doc="offset of transform: log, in the features' units")
    drop_constant: bool = True
    pca_dim: int | None = setting(None, ge=1, doc="principal components kept")
    whiten: bool = False
    negative_dataset: str | None = None
    negative_threshold: float = setting(-30000.0, unbounded=True, doc="nats; any log-likelihood")
    negative_weight: float = setting(1.0, ge=0, doc="weight of the OOD term (0: ordinary training)")

    def __post_init__(self) -> None:
        check(self)


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

    patience: int = setting(5, ge=1, doc="epochs")
    val_fraction: float = setting(0.1, gt=0, le=0.5)
    min_delta: float = setting(0.0, ge=0, doc="bits/dim")

    def __post_init__(self) -> None:
        check(self)


@dataclass
class TrainConfig:
    """Optimisation settings (defaults follow the original RealNVP FashionMNIST command)."""

    epochs: int = setting(10, ge=1)
    batch_size: int = setting(32, ge=1, doc="the global batch (split across torchrun ranks)")
    eval_batch_size: int = setting(256, ge=1)
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    lr: float = setting(5e-5, gt=0)
    weight_decay: float = setting(0.0, ge=0)
    betas: list[float] = setting(default_factory=lambda: [0.9, 0.999], ge=0, lt=1)
    # 0 or null: no clipping. A negative value would multiply every gradient by a negative coefficient.
    grad_clip: float | None = setting(100.0, ge=0, doc="max gradient norm (0 or null: off)")
    # What the minimised loss is, and so the scale grad_clip and weight_decay act on: the mean over the batch
    # of bits/dim (flowood's former and CPU presets' choice) or of the NLL in nats per sample (the original's;
    # D·ln 2 times larger: 543× on 28×28, 2,129× on 32×32×3).
    loss_scale: str = setting("bits_per_dim", choices=LOSS_SCALES)
    # grad_clip on the norm of all gradients together (global) or of each optimizer group on its own
    # (per_group, the original's utils.clip_grad_norm; the weight-norm gains are their own group).
    grad_clip_scope: str = setting("global", choices=GRAD_CLIP_SCOPES)
    # Which parameters weight_decay acts on: weight-norm gains only (gains; the original RealNVP) or all
    # (all; the original Glow's and RealNVPTabular's optimizer over net.parameters(), one group).
    weight_decay_scope: str = setting("gains", choices=WEIGHT_DECAY_SCOPES)
    warmup_steps: int = setting(0, ge=0)
    lr_milestones: list[int] = setting(default_factory=list, ge=1, doc="epochs")
    lr_gamma: float = setting(0.1, gt=0)
    ema_decay: float | None = setting(None, gt=0, lt=1)
    nonfinite: str = setting("skip", choices=NONFINITE_POLICIES)
    max_nonfinite: int = setting(50, ge=0, doc="consecutive non-finite steps tolerated")
    rollback_lr_factor: float = setting(0.5, gt=0, le=1)
    checkpoint_every: int = setting(0, ge=0, doc="steps (0: at epoch ends only)")
    sample_every: int = setting(1, ge=0, doc="epochs (0: never)")
    num_samples: int = setting(64, ge=1)
    sample_temperature: float = setting(0.7, gt=0)  # of the samples/epoch_XXX.png grids (base std × T)
    max_steps: int | None = setting(None, ge=1)
    max_minutes: float | None = setting(None, gt=0)
    init_from: str | None = None
    num_workers: int = setting(0, ge=0)
    # Vector data: std of Gaussian noise added to each standardised training batch (0 = off); it keeps the
    # density from collapsing onto near-degenerate directions of embeddings (see docs/embeddings.md).
    input_noise: float = setting(0.0, ge=0)
    # Performance (see flowood.perf and the README's "Performance" section). None means "auto":
    # on for CUDA, off on the CPU. `exact: true` (`flowood train --exact`) ignores the five settings below and
    # trains on flowood.perf's reference path: fp32, contiguous, eager, unfused, TF32 and cuDNN autotuning off.
    exact: bool = False
    precision: str = setting("auto", choices=PRECISIONS)
    channels_last: bool | None = None
    compile: bool | None = None
    compile_mode: str = setting("default", choices=COMPILE_MODES)
    fused_optimizer: bool | None = None
    # Learning rate for the global batch: lr × f(batch_size / reference_batch_size), f from lr_scaling.
    lr_scaling: str = setting("none", choices=LR_SCALINGS)
    reference_batch_size: int | None = setting(None, ge=1)
    # What the backward pass keeps: store (autograd keeps every activation) or invert (each invertible block keeps
    # none: its input is rebuilt from its output by its inverse and the block recomputed, so activation memory does
    # not grow with depth; flowood.flows.invert, docs/memory.md).
    memory: str = setting("store", choices=MEMORY_MODES)
    # train.memory=invert: bound on a reconstruction error relative to the tensor's scale (max|a-b| / max(max|b|, 1));
    # a block above it keeps storing, with a warning.
    invert_tolerance: float = setting(DEFAULT_TOLERANCE, gt=0, lt=1, doc="relative reconstruction error bound")
    # Data-parallel (torchrun) only: synchronise batch-norm statistics across GPUs.
    sync_batchnorm: bool = False
    # Early stopping on a validation split held out of the training split: {patience, val_fraction, min_delta}
    # (see EarlyStopping); None = off. The weights with the best validation bits/dim are the run's weights.
    early_stopping: EarlyStopping | None = None

    def __post_init__(self) -> None:
        check(self)


@dataclass
class RunConfig:
    """Everything needed to reproduce a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = setting(0, ge=0, doc="seeds initialisation, data order and subsets (NumPy needs >= 0)")
    device: str = "auto"

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        model = d.pop("model")
        d["model"] = {"name": model["name"], **model["options"]}
        return d

    def save(self, path: Path) -> None:
        import yaml  # imported where used: the package imports without PyYAML (e.g. on a bare GPU box)

        # Written beside and renamed over: a crash mid-write must not leave a run without its config.
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def early_stopping_settings(train: TrainConfig) -> EarlyStopping | None:
    """``train.early_stopping`` (``None`` when off); validated when the config was built."""
    return train.early_stopping


def _section(cls: type, section: str, values: Any) -> Any:
    """One config section from its mapping: unknown keys and bad values as one line naming ``section.key``."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section}' must be a mapping, got {values!r}")
    try:
        return build(cls, values, section)
    except FieldError as err:
        raise as_config_error(err) from None


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
    data = _section(DataConfig, "data", raw.get("data") or {})
    train = _section(TrainConfig, "train", raw.get("train") or {})
    try:
        cfg = RunConfig(
            model=ModelConfig(name=name, options=model_raw),
            data=data,
            train=train,
            seed=coerce("seed", raw.get("seed", 0), int),
            device=coerce("device", raw.get("device", "auto"), str),
        )
    except FieldError as err:
        raise as_config_error(err) from None
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """The rules between fields (each field's own range is declared where it is, see :mod:`flowood.settings`)."""
    t = cfg.train
    if t.lr_scaling != "none" and t.reference_batch_size is None:
        raise ConfigError(
            f"train.lr_scaling={t.lr_scaling} needs train.reference_batch_size (the batch size train.lr was tuned for)"
        )
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
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot be read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{p}: invalid YAML{where}: {what}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return raw


def check_ood_names(
    ood: Sequence[str], dataset: str, ood_classes: Sequence[int] | None, *, flag: str = "--ood"
) -> None:
    """Refuse OOD names that cannot give a meaningful result, before anything is loaded.

    Raises:
        ConfigError: an empty name, a name given twice, or the run's own in-distribution set (its test split
            against itself: AUROC 0.5 by construction), unless the run holds classes out (``data.ood_classes``).
    """
    seen: set[str] = set()
    for name in ood:
        if not name.strip():
            raise ConfigError(f"{flag}: an empty dataset name; give NAME[,NAME] (see `flowood datasets`)")
        if name in seen:
            raise ConfigError(f"{flag} {name} is given twice; name each OOD set once")
        seen.add(name)
        if name == dataset and not ood_classes:
            raise ConfigError(
                f"{flag} {name} is the run's in-distribution set (data.dataset): scoring its test split against "
                "itself measures nothing; give another set, or train with data.classes / data.ood_classes to hold "
                "classes out"
            )
