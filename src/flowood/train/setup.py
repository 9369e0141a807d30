"""Everything a run needs before its first step, built from its config; writes nothing.

:func:`build_training` seeds the three global RNGs, loads (and standardises) the data, builds the flow, the
optimiser, the schedule, the fp16 scaler, the EMA copy and the DistributedDataParallel wrapper, and
resolves the fast path (:func:`flowood.perf.resolve_fast_path`; ``train.exact`` gives the reference path).
The order of these steps is part of the run's reproducibility (they draw from the seeded global RNG).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from flowood.data import dataset_info, pick_split
from flowood.errors import CheckpointError, ConfigError
from flowood.flows import NormalizingFlow
from flowood.flows.normalization import ActNorm
from flowood.perf import FastPath, resolve_fast_path
from flowood.runs import RunDir
from flowood.train import compile_fallback
from flowood.train.build import build_run_flow
from flowood.train.checkpoint import load_checkpoint
from flowood.train.compile_fallback import failure_reason, uncompile
from flowood.train.config import RunConfig, TrainConfig, check_ood_names, early_stopping_settings
from flowood.train.data import Standardizer, TensorBatches, load_split, split_validation
from flowood.train.distributed import DistInfo, per_rank_batch, setup
from flowood.train.early_stopping import EarlyStopper
from flowood.train.objective import LikelihoodObjective
from flowood.train.optim import build_ema, build_optimizer, lr_factor_fn


@dataclass
class TrainingSetup:
    """What :func:`build_training` returns (see :class:`flowood.train.trainer.Trainer` for each part's use)."""

    device: torch.device
    kind: str
    input_shape: tuple[int, ...]
    class_names: list[str] | None
    standardizer: Standardizer | None
    train_data: TensorBatches
    test_data: TensorBatches
    val_data: TensorBatches | None
    ood_data: TensorBatches | None
    steps_per_epoch: int
    stopper: EarlyStopper | None
    fast: FastPath
    flow: NormalizingFlow
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    ema: torch.optim.swa_utils.AveragedModel | None
    dequant_gen: torch.Generator
    ood_gen: torch.Generator
    warnings: list[str]
    """E.g. that compiling failed and training runs eagerly (the trainer prints and keeps them)."""


def resolve_train_fast_path(t: TrainConfig, device: torch.device) -> FastPath:
    """The fast path of ``train.*`` on ``device``; ``train.exact`` selects the reference path (TF32 off too)."""
    return resolve_fast_path(
        device,
        precision=t.precision,
        channels_last=t.channels_last,
        compile=t.compile,
        compile_mode=t.compile_mode,
        fused_optimizer=t.fused_optimizer,
        optimizer=t.optimizer,
        exact=t.exact,
    )


def training_part(cfg: RunConfig, train_x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The training split as a run of ``cfg`` fits it: ``(train, None)``, or with early stopping ``(fit, val)``
    (:func:`~flowood.train.data.split_validation`'s seeded carve)."""
    es = early_stopping_settings(cfg.train)
    if es is None:
        return train_x, None
    return split_validation(train_x, es.val_fraction, cfg.seed)


def vector_standardizer(cfg: RunConfig, train_x: Tensor) -> Standardizer | None:
    """The standardiser a vector run of ``cfg`` fits on the training part ``train_x`` (:func:`training_part`), or
    ``None`` when ``data.standardize`` is off: the coordinates its flow models."""
    if not cfg.data.standardize:
        return None
    return Standardizer.from_config(cfg.data, train_x.float())


def build_training(cfg: RunConfig, dist: DistInfo, device: torch.device, *, resume: bool) -> TrainingSetup:
    """Build a run's data, model and optimiser (see the module docstring); ``resume`` skips what the
    checkpoint will overwrite (``train.init_from``, ActNorm's data-dependent initialisation).

    Raises:
        ConfigError: settings that do not fit the data, the device or the job.
    """
    device = setup(dist, device)
    per_rank_batch(cfg.train.batch_size, dist)  # validates divisibility
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)

    d, t = cfg.data, cfg.train
    check_ood_names(d.ood, d.dataset, d.ood_classes, flag="data.ood")  # not after training, at `flowood evaluate`
    for name in d.ood:
        dataset_info(name, d.root)  # an unknown OOD name fails now, not at `flowood evaluate` after training
    train_ds = load_split(d, "train", limit=d.limit, classes=d.classes, seed=cfg.seed)
    test_ds = load_split(d, "test", limit=d.test_limit, classes=d.classes, seed=cfg.seed)
    kind, input_shape = train_ds.kind, tuple(train_ds.shape)
    for name in d.ood:
        info = dataset_info(name, d.root)
        other = name != d.dataset  # held-out classes of the run's own set have its features by construction
        if (
            other
            and kind == "vector"
            and info.kind == "vector"
            and info.shape is not None
            and info.shape != input_shape
        ):
            # Typically a preset's OOD set kept after data.dataset was set to the user's own table.
            raise ConfigError(
                f"data.ood: {name} has {info.shape[0]} features but {d.dataset} has {input_shape[0]}; give OOD "
                "sets of the same features (--set 'data.ood=[table:OTHER.csv]'), or none (--set data.ood=[])"
            )
    train_x, test_x = train_ds.data, test_ds.data
    stopper = EarlyStopper(es) if (es := early_stopping_settings(t)) is not None else None
    if stopper is not None and dist.enabled:
        raise ConfigError("train.early_stopping is single-process only; unset it under torchrun")
    train_x, val_x = training_part(cfg, train_x)
    standardizer = vector_standardizer(cfg, train_x) if kind == "vector" else None
    if standardizer is not None:
        train_x, test_x = standardizer(train_x.float()), standardizer(test_x.float())
        val_x = standardizer(val_x.float()) if val_x is not None else None
        input_shape = (standardizer.out_dim,)
    train_data = TensorBatches(train_x, kind, device)
    ood_data: TensorBatches | None = None
    if d.negative_dataset:
        ood = load_split(
            d,
            pick_split(d.negative_dataset, "train"),
            name=d.negative_dataset,
            classes=d.ood_classes,
            seed=cfg.seed,
            like_shape=input_shape,
        )
        ood_x = standardizer(ood.data.float()) if standardizer else ood.data
        ood_data = TensorBatches(ood_x, ood.kind, device)
    steps_per_epoch = train_data.num_batches(t.batch_size)
    if len(train_data) == 0:
        raise ConfigError(f"data.dataset {d.dataset}: the training split has no samples (check data.classes)")
    if steps_per_epoch == 0:
        raise ConfigError(
            f"train.batch_size={t.batch_size} is larger than the training set ({len(train_data)} samples)"
        )

    fast = resolve_train_fast_path(t, device)
    flow = build_run_flow(cfg, input_shape).to(device)
    if t.init_from and not resume:
        load_initial_weights(flow, Path(t.init_from))
    if t.sync_batchnorm and dist.enabled:
        if device.type != "cuda":
            raise ConfigError("train.sync_batchnorm needs CUDA devices (torch.nn.SyncBatchNorm); set it to false")
        flow = nn.SyncBatchNorm.convert_sync_batchnorm(flow)
    if fast.channels_last:
        flow.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(flow, t, fused=fast.fused_optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(t, steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type) if fast.precision == "fp16" else None
    dequant_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    if not resume:
        init_data_dependent(flow, train_data, cfg, kind, dequant_gen)
    ema = build_ema(flow, t.ema_decay) if t.ema_decay else None
    # After the EMA copy: evaluation runs without gradients, where inversion changes nothing.
    flow.set_memory(t.memory, t.invert_tolerance)
    warnings: list[str] = []
    try:
        # Compiles the transform in place (lazily, on first call); under train.memory=invert also each block,
        # which the training forward calls one by one.
        fast.prepare_model(flow, also=flow.inversion.recomputed if flow.inversion is not None else ())
    except Exception as err:
        if not fast.compile:
            raise
        fast = fall_back_to_eager(flow, fast)
        warnings.append(compile_fallback.WARNING.format(reason=failure_reason(err)))
    model: nn.Module = flow
    if dist.enabled:
        model = DistributedDataParallel(
            LikelihoodObjective(flow), device_ids=[device.index] if device.type == "cuda" else None
        )
    return TrainingSetup(
        device=device,
        kind=kind,
        input_shape=input_shape,
        class_names=train_ds.class_names or None,
        standardizer=standardizer,
        train_data=train_data,
        test_data=TensorBatches(test_x, kind, device),
        val_data=TensorBatches(val_x, kind, device) if val_x is not None else None,
        ood_data=ood_data,
        steps_per_epoch=steps_per_epoch,
        stopper=stopper,
        fast=fast,
        flow=flow,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        dequant_gen=dequant_gen,
        ood_gen=torch.Generator().manual_seed(cfg.seed + 3),
        warnings=warnings,
    )


def fall_back_to_eager(flow: NormalizingFlow, fast: FastPath) -> FastPath:
    """Undo ``torch.compile`` on ``flow``; the same fast path without compiling."""
    uncompile(flow)
    return dataclasses.replace(fast, compile=False)


def init_data_dependent(
    flow: NormalizingFlow, train_data: TensorBatches, cfg: RunConfig, kind: str, dequant_gen: torch.Generator
) -> None:
    """Run ActNorm's data-dependent initialisation eagerly, before compilation and DDP.

    Uses the first global batch of epoch 0 with a copy of the dequantisation generator, i.e.
    exactly the inputs the first training step sees, so the result equals the in-step
    initialisation of a plain single-process run; every rank computes the same values. Batch-norm
    running statistics touched by this pass are restored.
    """
    if not any(isinstance(m, ActNorm) and not m._initialized for m in flow.modules()):
        return
    batch = next(train_data.epoch(cfg.train.batch_size, cfg.seed, 0))
    gen = torch.Generator(device=dequant_gen.device)
    gen.set_state(dequant_gen.get_state())
    norms = [m for m in flow.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    noise = float(getattr(cfg.train, "input_noise", 0.0) or 0.0)
    if kind == "vector" and noise > 0:  # the same augmentation the training step applies
        batch = batch + noise * torch.randn(batch.shape, generator=gen, device=batch.device, dtype=batch.dtype)
    flow.set_dequantization_rng(gen)
    flow.train()
    with torch.no_grad():
        flow.log_likelihood(batch)
    flow.set_dequantization_rng(None)
    for m, state in zip(norms, saved, strict=True):
        m.load_state_dict(state)


def load_initial_weights(flow: NormalizingFlow, source: Path) -> None:
    """Initialise ``flow`` from a run directory (its ``model.safetensors``, else its checkpoint), a
    ``.safetensors`` file or a flowood checkpoint ``.pt`` (read without unpickling code): fine-tuning, e.g.
    negative training that starts from a trained flow. Architectures must match."""
    path = source
    if source.is_dir():
        path = RunDir(source).model
        if not path.is_file() and RunDir(source).checkpoint.is_file():
            path = RunDir(source).checkpoint
    if not path.is_file():
        raise ConfigError(f"train.init_from: no weights at {path} (give a run directory or a .safetensors file)")
    if path.suffix in (".pt", ".pth"):
        try:
            state = load_checkpoint(path)["model"]
        except CheckpointError as err:
            raise ConfigError(f"train.init_from: {err}") from None
    else:
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise ConfigError(
                f"train.init_from: {path} is not a readable .safetensors file ({err}); give a run directory, "
                "a .safetensors file or a flowood checkpoint .pt"
            ) from None
    try:
        flow.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"train.init_from: weights in {path} do not fit this model ({str(err)[:300]})") from None
