"""The training loop: exact likelihood training of a flow, robust to divergence, exactly resumable.

Loss: mean negative log-likelihood in bits per dimension (discrete 8-bit likelihood for images,
continuous density for vectors). Non-finite losses or gradients are detected with a single
device→host transfer per step (the gradient norm that clipping computes anyway), never per layer,
and handled as ``train.nonfinite`` says: ``skip`` the update, ``rollback`` to the last good state
with a lower learning rate, or ``raise``.

Performance (``flowood.perf``): the forward pass runs under the configured autocast precision with
log-dets and losses in fp32, on channels-last weights, through a compiled transform, with a fused
optimiser; under ``torchrun`` the model is wrapped in DistributedDataParallel
(``flowood.train.distributed``) and only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from flowood.data import pick_split
from flowood.devices import resolve_device
from flowood.errors import CheckpointError, ConfigError, FlowoodError, RunWriteError, TrainingInterruptedError
from flowood.flows import NormalizingFlow
from flowood.flows.normalization import ActNorm
from flowood.perf import eager_stance, resolve_fast_path
from flowood.runs import RunDir
from flowood.train import compile_fallback
from flowood.train.build import build_run_flow
from flowood.train.checkpoint import load_checkpoint, save_checkpoint, save_weights, write_errors
from flowood.train.compile_fallback import failure_reason, uncompile
from flowood.train.config import (
    EarlyStopping,
    RunConfig,
    apply_overrides,
    config_from_dict,
    early_stopping_settings,
    load_config,
)
from flowood.train.data import Standardizer, TensorBatches, load_split, split_validation
from flowood.train.distributed import all_reduce_sum, cleanup, env_dist_info, per_rank_batch, setup
from flowood.train.interrupts import StopSignals
from flowood.train.metrics_log import MetricsLog
from flowood.train.optim import build_ema, build_optimizer, clip_gradients, lr_factor_fn

LN2 = math.log(2.0)


class TrainingDivergedError(FlowoodError):
    """Too many consecutive non-finite steps."""


@dataclass
class TrainResult:
    """Summary of a finished (or stopped) run."""

    run_dir: Path
    epochs_completed: int
    steps: int
    train_bpd: float
    test_bpd: float
    nonfinite_steps: int
    seconds: float
    stopped_by: str = "epochs"
    """What ended the run: ``"epochs"`` (all of ``train.epochs``), ``"train.max_steps"``, ``"train.max_minutes"``
    or ``"train.early_stopping"``."""
    best_epoch: int | None = None
    """With ``train.early_stopping``: the epoch whose weights the run kept (0 = the initial weights)."""
    val_bpd: float | None = None
    """With ``train.early_stopping``: the kept weights' validation bits/dim."""
    partial_steps: int = 0
    """Steps done in an epoch that a limit cut short (0: the run ended on an epoch boundary)."""
    notes: tuple[str, ...] = ()
    """What the run skipped or cut, e.g. an end-of-epoch evaluation that ``train.max_minutes`` left no time for."""


def nll_bpd(flow: NormalizingFlow, batch: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample ``(log-likelihood nats, bits/dim)`` of a batch (images in [0,1] or vectors)."""
    ll = flow.log_likelihood(batch)
    return ll, -ll / (flow.num_dims * LN2)


class LikelihoodObjective(nn.Module):
    """Per-sample log-likelihoods of the training batch and the optional OOD batch in *one* forward
    call, the unit that DistributedDataParallel wraps (it needs exactly one forward per backward)."""

    def __init__(self, flow: NormalizingFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, batch: Tensor, ood_batch: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        ll = self.flow.log_likelihood(batch)
        return ll, (self.flow.log_likelihood(ood_batch) if ood_batch is not None else None)


def unwrap_flow(model: nn.Module) -> NormalizingFlow:
    """The :class:`NormalizingFlow` inside a DDP / :class:`LikelihoodObjective` wrapper."""
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if isinstance(model, LikelihoodObjective):
        model = model.flow
    assert isinstance(model, NormalizingFlow)
    return model


def compute_loss(flow: nn.Module, batch: Tensor, ood_batch: Tensor | None, cfg: RunConfig) -> tuple[Tensor, dict]:
    """Training objective and the quantities to log (``train_bpd``: bits/dim whatever the loss scale).

    The loss is the batch mean of bits/dim or, with ``train.loss_scale: nats``, of the NLL in nats per
    sample (the original's; D·ln 2 times larger, which is what ``grad_clip`` and ``weight_decay`` then act on).
    ``flow`` is a :class:`NormalizingFlow` or a (DDP-wrapped) :class:`LikelihoodObjective`.
    With an OOD batch (negative training, paper appendix B):
    ``loss = 0.5 · (mean NLL_in − w · mean NLL_ood)``, the OOD mean taken over samples whose
    log-likelihood is still above ``data.negative_threshold`` (nats). Log-likelihoods are fp32 (also
    under autocast), so the loss is accumulated in fp32.
    """
    if isinstance(flow, NormalizingFlow):
        ll_in = flow.log_likelihood(batch)
        ll_ood = flow.log_likelihood(ood_batch) if ood_batch is not None else None
    else:
        ll_in, ll_ood = flow(batch, ood_batch)
    scale = unwrap_flow(flow).num_dims * LN2
    unit = scale if cfg.train.loss_scale == "bits_per_dim" else 1.0
    loss_in = (-ll_in / unit).mean()
    train_bpd = loss_in.detach() * (unit / scale)
    if ood_batch is None or ll_ood is None:
        return loss_in, {"train_bpd": train_bpd}
    nll_ood = -ll_ood / unit
    active = (ll_ood.detach() > cfg.data.negative_threshold).to(nll_ood.dtype)
    ood_term = (nll_ood * active).sum() / active.sum().clamp_min(1.0)
    loss = 0.5 * (loss_in - cfg.data.negative_weight * ood_term)
    return loss, {"train_bpd": train_bpd, "ood_train_bpd": (-ll_ood / scale).detach().mean()}


def _rng_state() -> dict[str, Any]:
    """Global RNG states as tensors, numbers and lists only, so checkpoints load with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    else:  # a flowood 0.1 checkpoint: numpy's own tuple
        np.random.set_state(npy)
    py = state["python"]
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    else:
        random.setstate(py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@torch.no_grad()
def evaluate_bpd(
    flow: NormalizingFlow,
    batches: TensorBatches,
    batch_size: int,
    generator: torch.Generator,
    stop: Callable[[], bool] | None = None,
) -> float | None:
    """Mean bits/dim over a dataset in eval mode (finite values only; NaN if none).

    ``stop`` is asked before each batch; when it says True the evaluation is abandoned and None returned
    (an interrupt, or ``train.max_minutes`` reached).
    """
    was_training = flow.training
    flow.eval()
    flow.set_dequantization_rng(generator)
    total, count = 0.0, 0
    for batch in batches.sequential(batch_size):
        if stop is not None and stop():
            flow.set_dequantization_rng(None)
            flow.train(was_training)
            return None
        _, bpd = nll_bpd(flow, batch)
        finite = torch.isfinite(bpd)
        total += float(bpd[finite].sum())
        count += int(finite.sum())
    flow.set_dequantization_rng(None)
    flow.train(was_training)
    return total / count if count else float("nan")


def _save_samples(flow: NormalizingFlow, path: Path, n: int, seed: int, temperature: float = 0.7) -> None:
    from torchvision.utils import save_image

    was_training = flow.training
    flow.eval()
    device = next(flow.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    images = flow.sample_images(n, temperature=temperature, generator=gen)
    flow.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().cpu(), str(path), nrow=int(math.sqrt(n)) or 1)


class Trainer:
    """Owns the state of one run; :meth:`run` trains to the configured number of epochs."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        quiet: bool = False,
        device: torch.device | None = None,
        overwrite: bool = True,
    ) -> None:
        """Prepare a run in ``run_dir`` (or continue it with ``resume=True``).

        The writing process holds the run directory's lock from here until :meth:`run` returns (or
        :meth:`close`). ``overwrite=False`` refuses a directory that already holds a run (``flowood train
        --out`` without ``--force``); with True its files are removed first (see :class:`flowood.runs.RunDir`).
        """
        self.cfg = cfg
        self.rundir = RunDir(run_dir)
        self.run_dir = self.rundir.path
        self.dist = env_dist_info()
        self.is_main = self.dist.is_main
        self._signals: StopSignals | None = None
        self._sums: list[float] = [0.0, 0, 0.0, 0]  # running epoch sums: train bpd, steps, OOD bpd, OOD steps
        self.notes: list[str] = []
        self._start = time.monotonic()
        if self.is_main:
            self.rundir.claim(new=not resume, force=overwrite)
        try:
            self._setup(resume, quiet, device)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run directory's lock (done by :meth:`run` when it returns)."""
        self.rundir.release()

    def _setup(self, resume: bool, quiet: bool, device: torch.device | None) -> None:
        cfg = self.cfg
        self.shard = (self.dist.rank, self.dist.world_size)
        self.quiet = quiet or not self.is_main
        self.interactive = sys.stderr.isatty()
        self.heartbeat_seconds = 60.0
        self._last_heartbeat: tuple[float, int] | None = None
        self.device = setup(self.dist, device or resolve_device(cfg.device))
        per_rank_batch(cfg.train.batch_size, self.dist)  # validates divisibility
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

        d = cfg.data
        train_ds = load_split(d, "train", limit=d.limit, classes=d.classes, seed=cfg.seed)
        test_ds = load_split(d, "test", limit=d.test_limit, classes=d.classes, seed=cfg.seed)
        self.kind = train_ds.kind
        if train_ds.class_names and self.is_main:
            # String labels were mapped to codes 0..K-1; keep the mapping with the run.
            with write_errors(self.rundir.labels):
                self.rundir.labels.write_text(json.dumps({"class_names": train_ds.class_names}, indent=1))
        self.input_shape = tuple(train_ds.shape)
        train_x, test_x = train_ds.data, test_ds.data
        self.stopper = _EarlyStopper(es) if (es := early_stopping_settings(cfg.train)) is not None else None
        val_x: Tensor | None = None
        if self.stopper is not None:
            if self.dist.enabled:
                raise ConfigError("train.early_stopping is single-process only; unset it under torchrun")
            train_x, val_x = split_validation(train_x, self.stopper.settings.val_fraction, cfg.seed)
        self.standardizer: Standardizer | None = None
        if self.kind == "vector" and d.standardize:
            self.standardizer = Standardizer.from_config(d, train_x.float())
            train_x, test_x = self.standardizer(train_x.float()), self.standardizer(test_x.float())
            val_x = self.standardizer(val_x.float()) if val_x is not None else None
            self.input_shape = (self.standardizer.out_dim,)
            if self.is_main:
                with write_errors(self.rundir.standardize):
                    self.standardizer.save(self.rundir.standardize)
        self.train_data = TensorBatches(train_x, self.kind, self.device)
        self.test_data = TensorBatches(test_x, self.kind, self.device)
        self.val_data = TensorBatches(val_x, self.kind, self.device) if val_x is not None else None
        self.ood_data: TensorBatches | None = None
        if d.negative_dataset:
            ood = load_split(
                d,
                pick_split(d.negative_dataset, "train"),
                name=d.negative_dataset,
                classes=d.ood_classes,
                seed=cfg.seed,
                like_shape=self.input_shape,
            )
            ood_x = self.standardizer(ood.data.float()) if self.standardizer else ood.data
            self.ood_data = TensorBatches(ood_x, ood.kind, self.device)
        self.steps_per_epoch = self.train_data.num_batches(cfg.train.batch_size)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"train.batch_size={cfg.train.batch_size} is larger than the training set "
                f"({len(self.train_data)} samples)"
            )

        t = cfg.train
        self.fast = resolve_fast_path(
            self.device,
            precision=t.precision,
            channels_last=t.channels_last,
            compile=t.compile,
            compile_mode=t.compile_mode,
            fused_optimizer=t.fused_optimizer,
            optimizer=t.optimizer,
        )
        self.flow = build_run_flow(cfg, self.input_shape).to(self.device)
        if t.init_from and not resume:
            _load_initial_weights(self.flow, Path(t.init_from))
        if t.sync_batchnorm and self.dist.enabled:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_batchnorm needs CUDA devices (torch.nn.SyncBatchNorm); set it to false")
            self.flow = nn.SyncBatchNorm.convert_sync_batchnorm(self.flow)
        if self.fast.channels_last:
            self.flow.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.flow, t, fused=self.fast.fused_optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor_fn(t, self.steps_per_epoch))
        self.scaler = torch.amp.GradScaler(self.device.type) if self.fast.precision == "fp16" else None
        self.dequant_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        if not resume:
            self._init_data_dependent()
        self.ema = build_ema(self.flow, t.ema_decay) if t.ema_decay else None
        self._compile_unproven = self.fast.compile  # until the first compiled step has succeeded
        try:
            self.fast.prepare_model(self.flow)  # compiles the transform in place (lazily, on first call)
        except Exception as err:
            if not self.fast.compile:
                raise
            self._fall_back_to_eager(err)
        self.model: nn.Module = self.flow
        if self.dist.enabled:
            self.model = DistributedDataParallel(
                LikelihoodObjective(self.flow),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self._time_up = False
        self.ood_gen = torch.Generator().manual_seed(cfg.seed + 3)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.nonfinite_steps = 0
        self.consecutive_nonfinite = 0
        self.lr_scale = 1.0
        self.elapsed = 0.0
        self.last_train_bpd = float("nan")
        self.last_ood_train_bpd: float | None = None
        self._step_ood_bpd: float | None = None
        self.last_test_bpd = float("nan")
        self.metrics: MetricsLog | None = None
        if resume:
            # Read everything before writing anything: a resume that fails leaves the run as it was.
            self._restore(load_checkpoint(self.ckpt_path, map_location=self.device))
        if self.is_main:
            self.metrics = MetricsLog(self.rundir.metrics, resume)
            if resume:
                self.metrics.keep_through(self.epoch)
            with write_errors(self.rundir.config):
                cfg.save(self.rundir.config)
        self._good_state: dict[str, Any] | None = None

    def _init_data_dependent(self) -> None:
        """Run ActNorm's data-dependent initialisation eagerly, before compilation and DDP.

        Uses the first global batch of epoch 0 with a copy of the dequantisation generator, i.e.
        exactly the inputs the first training step sees, so the result equals the in-step
        initialisation of a plain single-process run; every rank computes the same values. Batch-norm
        running statistics touched by this pass are restored.
        """
        if not any(isinstance(m, ActNorm) and not m._initialized for m in self.flow.modules()):
            return
        batch = next(self.train_data.epoch(self.cfg.train.batch_size, self.cfg.seed, 0))
        gen = torch.Generator(device=self.device)
        gen.set_state(self.dequant_gen.get_state())
        norms = [m for m in self.flow.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
        noise = float(getattr(self.cfg.train, "input_noise", 0.0) or 0.0)
        if self.kind == "vector" and noise > 0:  # the same augmentation train_step applies
            batch = batch + noise * torch.randn(batch.shape, generator=gen, device=batch.device, dtype=batch.dtype)
        self.flow.set_dequantization_rng(gen)
        self.flow.train()
        with torch.no_grad():
            self.flow.log_likelihood(batch)
        self.flow.set_dequantization_rng(None)
        for m, state in zip(norms, saved, strict=True):
            m.load_state_dict(state)

    @property
    def ckpt_path(self) -> Path:
        return self.rundir.checkpoint

    def state(self) -> dict[str, Any]:
        return {
            "model": self.flow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "nonfinite_steps": self.nonfinite_steps,
            "lr_scale": self.lr_scale,
            "elapsed": self.elapsed,
            "dequant_gen": self.dequant_gen.get_state(),
            "ood_gen": self.ood_gen.get_state(),
            "rng": _rng_state(),
            "epoch_sums": list(self._sums),
            "config": self.cfg.to_dict(),
            "input_shape": list(self.input_shape),
            "early_stopping": self.stopper.state() if self.stopper is not None else None,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.flow.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.nonfinite_steps = state["nonfinite_steps"]
        self.lr_scale = state["lr_scale"]
        self.elapsed = state["elapsed"]
        self.dequant_gen.set_state(state["dequant_gen"])
        self.ood_gen.set_state(state["ood_gen"])
        _set_rng_state(state["rng"])
        if self.stopper is not None and state.get("early_stopping") is not None:
            self.stopper.load(state["early_stopping"])
        # Checkpoints of flowood 0.1 lack the running sums: the resumed epoch's mean then restarts.
        self._sums = list(state.get("epoch_sums", [0.0, 0, 0.0, 0]))

    def save(self) -> None:
        """Write the checkpoint and weights (rank 0 only under data-parallel training)."""
        if not self.is_main:
            return
        had_checkpoint = self.ckpt_path.is_file()
        try:
            save_checkpoint(self.ckpt_path, self.state())
            meta = {"config": str(self.cfg.to_dict()), "input_shape": ",".join(map(str, self.input_shape))}
            save_weights(self.rundir.model, self.flow.state_dict(), meta)
            if self.ema is not None:
                save_weights(self.rundir.model_ema, self.ema.module.state_dict(), meta)
        except RunWriteError as err:
            then = (
                f"the last checkpoint is kept; free space and continue with: flowood train --resume {self.run_dir}"
                if had_checkpoint or self.ckpt_path.is_file()
                else "free space and start the run again"
            )
            raise RunWriteError(f"{err}; {then}") from None

    def _apply_lr_scale(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=False):
            group["lr"] = base * self.scheduler.lr_lambdas[0](self.global_step) * self.lr_scale

    def _handle_nonfinite(self) -> None:
        self.nonfinite_steps += 1
        self.consecutive_nonfinite += 1
        policy = self.cfg.train.nonfinite
        if policy == "raise" or self.consecutive_nonfinite > self.cfg.train.max_nonfinite:
            raise TrainingDivergedError(
                f"non-finite loss or gradients at step {self.global_step} (epoch {self.epoch}); "
                f"{self.nonfinite_steps} non-finite steps so far. Lower train.lr, set train.grad_clip, "
                f"or use --set train.nonfinite=rollback. Last checkpoint: {self.ckpt_path}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if policy == "rollback" and self._good_state is not None:
            good = self._good_state
            self.flow.load_state_dict(good["model"])
            self.optimizer.load_state_dict(good["optimizer"])
            self.lr_scale *= self.cfg.train.rollback_lr_factor
            self._log(
                f"non-finite step {self.global_step}: rolled back to step {good['global_step']}, "
                f"learning rate ×{self.lr_scale:g}"
            )

    def _heartbeat(self, bpd: float) -> None:
        """Without a terminal, log one plain progress line every ``heartbeat_seconds`` of training."""
        if self.quiet or self.interactive:
            return
        now = time.monotonic()
        if self._last_heartbeat is None:
            self._last_heartbeat = (now, self.global_step)
            return
        since, step0 = self._last_heartbeat
        if now - since < self.heartbeat_seconds:
            return
        rate = (self.global_step - step0) / (now - since)
        self._log(
            f"epoch {self.epoch + 1}/{self.cfg.train.epochs} step {self.step_in_epoch}/{self.steps_per_epoch}: "
            f"bpd {bpd:.3f}, {rate:.2f} steps/s, {self.nonfinite_steps} non-finite"
        )
        self._last_heartbeat = (now, self.global_step)

    def _fall_back_to_eager(self, err: BaseException) -> None:
        uncompile(self.flow)
        self.fast = dataclasses.replace(self.fast, compile=False)
        self._compile_unproven = False
        self._note(compile_fallback.WARNING.format(reason=failure_reason(err)), prefix="warning")

    def _first_step_guarded(self, batch: Tensor, ood_batch: Tensor | None) -> float:
        """The first compiled step; if compiling or running it fails, the same step again eagerly."""
        rng = (self.dequant_gen.get_state(), self.ood_gen.get_state(), torch.get_rng_state())
        try:
            value = self.train_step(batch, ood_batch)
        except (FlowoodError, KeyboardInterrupt):
            raise
        except Exception as err:
            self._fall_back_to_eager(err)
            self.dequant_gen.set_state(rng[0])
            self.ood_gen.set_state(rng[1])
            torch.set_rng_state(rng[2])
            self.optimizer.zero_grad(set_to_none=True)
            value = self.train_step(batch, ood_batch)
        self._compile_unproven = False
        return value

    def _note(self, msg: str, prefix: str = "note") -> None:
        """Something the run skipped, cut or changed: printed (also with --quiet) and kept in
        :attr:`TrainResult.notes`."""
        self.notes.append(f"{prefix}: {msg}" if prefix != "note" else msg)
        if self.is_main:
            from tqdm import tqdm

            tqdm.write(f"{prefix}: {msg}")

    def _stop_evaluation(self) -> bool:
        return bool(self._signals) or self._past_deadline()

    def _log(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(msg)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().clone() for k, v in self.flow.state_dict().items()},
            "optimizer": _clone_state(self.optimizer.state_dict()),
            "global_step": self.global_step,
        }

    def train_step(self, batch: Tensor, ood_batch: Tensor | None) -> float:
        """One optimisation step; returns the training bits/dim of the (global) batch (NaN if skipped)."""
        self._apply_lr_scale()
        if self.kind == "vector" and self.cfg.train.input_noise > 0:
            # The dequantisation generator is unused for vectors; it is checkpointed, so resume stays exact.
            noise = torch.randn(batch.shape, generator=self.dequant_gen, device=batch.device, dtype=batch.dtype)
            batch = batch + self.cfg.train.input_noise * noise
        batch = self.fast.prepare_input(batch)
        if ood_batch is not None:
            ood_batch = self.fast.prepare_input(ood_batch)
        with self.fast.autocast():
            loss, logs = compute_loss(self.model, batch, ood_batch, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.train.grad_clip if self.cfg.train.grad_clip else float("inf")
        grad_norm = clip_gradients(self.optimizer, max_norm, self.cfg.train.grad_clip_scope)
        loss_value, train_bpd = loss.detach().float(), logs["train_bpd"].float()
        wanted: dict[str, Tensor] = {}
        if self.dist.enabled:
            # One small all-reduce: the global mean loss and bits/dim, and whether any rank ran out of time.
            # Gradients are already averaged by DDP, so grad_norm agrees on all ranks.
            reduced = all_reduce_sum(
                torch.stack(
                    [loss_value, train_bpd, torch.tensor(float(self._time_up), device=loss.device)]
                    + ([self._signals.flag(loss.device)] if self._signals is not None else [])
                ),
                self.dist,
            )
            loss_value, train_bpd = reduced[0] / self.dist.world_size, reduced[1] / self.dist.world_size
            wanted["time_up"] = reduced[2] > 0
            if self._signals is not None:
                wanted["signal"] = reduced[3] > 0  # any rank's SIGINT/SIGTERM: all stop after this step
        loss_finite = torch.isfinite(loss_value)
        wanted.update(ok=loss_finite & torch.isfinite(grad_norm), loss_finite=loss_finite, train_bpd=train_bpd)
        if "ood_train_bpd" in logs:
            wanted["ood_train_bpd"] = logs["ood_train_bpd"]
        # The only host sync of the step: every value the host needs from it, read together.
        host = dict(zip(wanted, torch.stack([v.float() for v in wanted.values()]).tolist(), strict=True))
        if self.dist.enabled:
            self._time_up = bool(host["time_up"])
            if self._signals is not None:
                self._signals.agreed = bool(host["signal"])
        self._step_ood_bpd = host.get("ood_train_bpd")
        ok = bool(host["ok"])
        if not ok and self.scaler is not None and host["loss_finite"]:
            # fp16 loss-scale overflow: the scaler lowers its scale; not a divergence.
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self._advance_schedule()
            self.global_step += 1
            return float("nan")
        if not ok:
            self._handle_nonfinite()
        else:
            self.consecutive_nonfinite = 0
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.flow)
        if self.scaler is not None:
            self.scaler.update()
        self._advance_schedule()
        self.global_step += 1
        return host["train_bpd"] if ok else float("nan")

    def _advance_schedule(self) -> None:
        # The learning rate is set from global_step by _apply_lr_scale; the scheduler only counts steps.
        # A skipped (non-finite) first step would otherwise trigger torch's "scheduler before optimizer" warning.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()

    def run(self) -> TrainResult:
        """Train until ``train.epochs`` (or ``max_steps`` / ``max_minutes``), checkpointing as configured.

        Raises:
            TrainingInterruptedError: SIGINT/SIGTERM arrived; the step in flight was finished and a
                checkpoint written; the message says how to resume.
        """
        try:
            with self.fast.backends(), StopSignals() as signals:
                self._signals = signals
                return self._run()
        finally:
            self._signals = None
            self.close()

    def _past_deadline(self) -> bool:
        """True once ``train.max_minutes`` of the run's time (training and evaluation) are used."""
        minutes = self.cfg.train.max_minutes
        return minutes is not None and time.monotonic() - self._start > minutes * 60

    def _interrupt(self) -> None:
        """Save and stop after a signal (see :mod:`flowood.train.interrupts`)."""
        assert self._signals is not None
        self.save()
        cleanup(self.dist)  # the other ranks wait here until rank 0's checkpoint is written
        saved = f"checkpoint saved to {self.ckpt_path}" if self.is_main else "rank 0 saved the checkpoint"
        who = self._signals.received or "a signal to another rank"
        who = who if self.is_main else f"rank {self.dist.rank}: {who}"
        raise TrainingInterruptedError(
            f"{who} at step {self.global_step} (epoch {self.epoch + 1}, "
            f"{self.step_in_epoch}/{self.steps_per_epoch} steps); {saved}; "
            f"continue with: flowood train --resume {self.run_dir}"
        )

    def _run(self) -> TrainResult:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        tcfg = self.cfg.train
        writer = SummaryWriter(str(self.rundir.tensorboard)) if self.is_main else None
        start = self._start = time.monotonic() - self.elapsed
        stop = False
        stopped_by = "epochs"
        if self.stopper is not None and self.stopper.best_epoch is None:
            self._validate()  # the initial weights are a candidate (e.g. a whitened Gaussian start)
        after_epoch = False  # an epoch ended (and was saved) in this call
        try:
            while self.epoch < tcfg.epochs and not stop:
                if self._signals is not None and self._signals.should_stop(self.dist.enabled):
                    self._interrupt()
                if after_epoch and not self.dist.enabled and self._past_deadline():
                    # The last end-of-epoch evaluation used up train.max_minutes (its checkpoint is written).
                    stopped_by = "train.max_minutes"
                    break
                after_epoch = True
                self.flow.train()
                skip = self.step_in_epoch
                batches = self.train_data.epoch(tcfg.batch_size, self.cfg.seed, self.epoch, skip=skip, shard=self.shard)
                bar = tqdm(
                    batches,
                    total=self.steps_per_epoch,
                    initial=skip,
                    # A redirected stderr (nohup, SLURM, a pipe) gets plain heartbeat lines instead of
                    # carriage-return redraws; see _heartbeat.
                    disable=self.quiet or not self.interactive,
                    desc=f"epoch {self.epoch + 1}/{tcfg.epochs}",
                    leave=False,
                    dynamic_ncols=True,
                )
                if skip == 0:
                    self._sums = [0.0, 0, 0.0, 0]  # a resumed epoch continues the checkpoint's sums
                sums = self._sums
                self._last_heartbeat = None  # rates exclude the evaluation between epochs
                self.flow.set_dequantization_rng(self.dequant_gen, self.shard if self.dist.enabled else None)
                for batch in bar:
                    ood_batch = (
                        self.ood_data.random_batch(tcfg.batch_size, self.ood_gen, shard=self.shard)
                        if self.ood_data is not None
                        else None
                    )
                    if (
                        self.cfg.train.nonfinite == "rollback"
                        and self.consecutive_nonfinite == 0
                        and (self._good_state is None or self.global_step % 50 == 0)
                    ):
                        self._good_state = self._snapshot()
                    value = self._first_step_guarded(batch, ood_batch) if self._compile_unproven else None
                    if value is None:
                        value = self.train_step(batch, ood_batch)
                    self.step_in_epoch += 1
                    if math.isfinite(value):
                        sums[0] += value
                        sums[1] += 1
                    if ood_batch is not None and self._step_ood_bpd is not None and math.isfinite(self._step_ood_bpd):
                        sums[2] += self._step_ood_bpd
                        sums[3] += 1
                    bar.set_postfix(bpd=f"{value:.3f}", nonfinite=self.nonfinite_steps)
                    self._heartbeat(value)
                    if writer is not None and self.global_step % 10 == 0:
                        writer.add_scalar("train/bpd_step", value, self.global_step)
                    self.elapsed = time.monotonic() - start
                    if tcfg.checkpoint_every and self.global_step % tcfg.checkpoint_every == 0:
                        self.save()
                    if self._signals is not None and self._signals.should_stop(self.dist.enabled):
                        self._interrupt()
                    time_up = tcfg.max_minutes is not None and self.elapsed > tcfg.max_minutes * 60
                    if self.dist.enabled:
                        # Ranks must stop at the same step: this rank's clock is folded into the next
                        # step's all-reduce, and the agreed flag from this step's is used here.
                        time_up, self._time_up = self._time_up, time_up
                    if (tcfg.max_steps is not None and self.global_step >= tcfg.max_steps) or time_up:
                        stop = True
                        stopped_by = "train.max_minutes" if time_up else "train.max_steps"
                        break
                bar.close()
                self.flow.set_dequantization_rng(None)
                self.last_train_bpd = sums[0] / sums[1] if sums[1] else float("nan")
                self.last_ood_train_bpd = sums[2] / sums[3] if sums[3] else None
                self._end_epoch(writer, partial=stop and self.step_in_epoch < self.steps_per_epoch)
                if self.dist.enabled and self._signals is not None and self._signals.agree(self.dist, self.device):
                    self._interrupt()  # a signal during rank 0's evaluation (or to another rank): all stop here
                if self.stopper is not None and self.stopper.should_stop:
                    stop, stopped_by = True, "train.early_stopping"
        finally:
            if writer is not None:
                writer.close()
        cleanup(self.dist)
        if self.epoch >= tcfg.epochs and stopped_by != "train.early_stopping":
            stopped_by = "epochs"  # a limit reached on the last step of the last epoch cut nothing short
        if self.stopper is not None:
            self._keep_best()
        return TrainResult(
            self.run_dir,
            self.epoch,
            self.global_step,
            self.last_train_bpd,
            self.last_test_bpd,
            self.nonfinite_steps,
            self.elapsed,
            stopped_by,
            self.stopper.best_epoch if self.stopper is not None else None,
            self.stopper.best if self.stopper is not None else None,
            self.step_in_epoch if self.epoch < tcfg.epochs else 0,
            tuple(self.notes),
        )

    def _validate(self) -> float:
        """Validation bits/dim of the current (evaluation) weights; records them if they are the best."""
        assert self.stopper is not None and self.val_data is not None
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 4)
        model = self._eval_model()
        with self.fast.autocast(), eager_stance():
            val_bpd = evaluate_bpd(model, self.val_data, self.cfg.train.eval_batch_size, gen)
        assert val_bpd is not None  # without a stop callback the evaluation is never cut short
        # Epoch counter: the end-of-epoch call runs before self.epoch advances; 0 = before any training.
        epoch = self.epoch + 1 if self.global_step > 0 else 0
        self.stopper.record(epoch, val_bpd, model)
        return val_bpd

    def _keep_best(self) -> None:
        """Make the best-validation weights the run's weights (``model.safetensors`` and the flow in memory).

        The checkpoint keeps the last training state, so ``resume`` still continues the run exactly.
        """
        assert self.stopper is not None
        if self.stopper.best_state is None:
            return
        self._eval_model().load_state_dict(self.stopper.best_state)
        if self.ema is not None:
            self.flow.load_state_dict(self.stopper.best_state)
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 2)
        with self.fast.autocast(), eager_stance():
            test_bpd = evaluate_bpd(self.flow, self.test_data, self.cfg.train.eval_batch_size, gen)
        assert test_bpd is not None  # without a stop callback the evaluation is never cut short
        self.last_test_bpd = test_bpd
        if self.is_main:
            meta = {"config": str(self.cfg.to_dict()), "input_shape": ",".join(map(str, self.input_shape))}
            save_weights(self.rundir.model, self.flow.state_dict(), meta)
            if self.ema is not None:
                save_weights(self.rundir.model_ema, self.flow.state_dict(), meta)
        self._log(
            f"early stopping: kept the weights of epoch {self.stopper.best_epoch} (validation "
            f"{self.stopper.best:.4f} bits/dim, test {self.last_test_bpd:.4f} bits/dim)"
        )

    def _eval_model(self) -> NormalizingFlow:
        return self.ema.module if self.ema is not None else self.flow  # type: ignore[return-value]

    def _end_epoch(self, writer: Any, partial: bool) -> None:
        if not self.is_main:
            # Other ranks only advance the counters; rank 0 evaluates, logs and writes.
            if not partial:
                self.epoch += 1
                self.step_in_epoch = 0
            return
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 2)
        test_bpd: float | None = None
        if self._past_deadline():
            self._note(
                f"epoch {self.epoch + 1}: test bits/dim not evaluated, train.max_minutes reached "
                "(score the run with `flowood evaluate`)"
            )
        else:
            # Monitoring evaluation runs eagerly: compiling a second (eval-mode) graph would cost more than it saves.
            # It stops early for a signal or for train.max_minutes, which bounds the whole run.
            with self.fast.autocast(), eager_stance():
                test_bpd = evaluate_bpd(
                    self._eval_model(), self.test_data, self.cfg.train.eval_batch_size, gen, self._stop_evaluation
                )
            if test_bpd is None and self._signals and self.dist.enabled:
                return  # the ranks agree to stop right after _end_epoch (see interrupts.py)
            if test_bpd is None and self._signals:
                self._interrupt()  # the epoch's steps are kept; its evaluation runs again on resume
            if test_bpd is None:
                self._note(f"epoch {self.epoch + 1}: test evaluation cut short by train.max_minutes (not logged)")
        self.last_test_bpd = float("nan") if test_bpd is None else test_bpd
        val_bpd = self._validate() if self.stopper is not None and not partial else None
        lr = self.optimizer.param_groups[0]["lr"]
        row = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "train_bpd": f"{self.last_train_bpd:.6f}",
            "test_bpd": "" if test_bpd is None else f"{test_bpd:.6f}",
            "ood_train_bpd": "" if self.last_ood_train_bpd is None else f"{self.last_ood_train_bpd:.6f}",
            "lr": f"{lr:.3e}",
            "nonfinite_steps": self.nonfinite_steps,
            "seconds": f"{self.elapsed:.2f}",
            "val_bpd": "" if val_bpd is None else f"{val_bpd:.6f}",
            "partial": int(partial),
        }
        writer.add_scalar("train/bpd", self.last_train_bpd, self.epoch + 1)
        if test_bpd is not None:
            writer.add_scalar("test/bpd", test_bpd, self.epoch + 1)
        writer.add_scalar("train/nonfinite_steps", self.nonfinite_steps, self.epoch + 1)
        writer.add_scalar("train/lr", lr, self.epoch + 1)
        label = f"epoch {self.epoch + 1}"
        if partial:
            label += f" (partial: {self.step_in_epoch}/{self.steps_per_epoch} steps)"
        test_text = "not evaluated" if test_bpd is None else f"{test_bpd:.4f} bits/dim"
        self._log(
            f"{label}: train {self.last_train_bpd:.4f} bits/dim, test {test_text}, "
            f"{self.nonfinite_steps} non-finite steps, {self.elapsed:.0f}s"
        )
        sample_now = self.cfg.train.sample_every and (self.epoch + 1) % self.cfg.train.sample_every == 0
        if self.kind == "image" and sample_now and not self._past_deadline() and not self._signals:
            with write_errors(self.rundir.sample_path(self.epoch + 1)):
                _save_samples(
                    self._eval_model(),
                    self.rundir.sample_path(self.epoch + 1),
                    self.cfg.train.num_samples,
                    self.cfg.seed,
                    self.cfg.train.sample_temperature,
                )
        if self.metrics is not None:
            self.metrics.append(row)
        if not partial:
            self.epoch += 1
            self.step_in_epoch = 0
        self.save()


class _EarlyStopper:
    """Best validation bits/dim so far, its weights, and the epochs since it improved."""

    def __init__(self, settings: EarlyStopping) -> None:
        self.settings = settings
        self.best = float("inf")
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.bad_epochs = 0

    def record(self, epoch: int, val_bpd: float, model: nn.Module) -> None:
        if math.isfinite(val_bpd) and val_bpd < self.best - self.settings.min_delta:
            self.best, self.best_epoch, self.bad_epochs = val_bpd, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.settings.patience

    def state(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), state["best_epoch"]
        self.best_state, self.bad_epochs = state["best_state"], int(state["bad_epochs"])


def _clone_state(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_state(v) for v in obj]
    return obj


def train(cfg: RunConfig, out: Path, *, quiet: bool = False, overwrite: bool = True) -> TrainResult:
    """Train a new run into directory ``out``.

    ``overwrite=False`` refuses an ``out`` that already holds a run (the CLI's default, lifted by
    ``--force``); with True (the library default) the old run's files are removed first.
    """
    return Trainer(cfg, out, quiet=quiet, overwrite=overwrite).run()


RESUME_OVERRIDABLE = (
    "train.epochs",
    "train.max_steps",
    "train.max_minutes",
    "train.checkpoint_every",
    "train.sample_every",
)
"""Settings ``resume`` may change: when to stop and how often to write. Anything else would make the
continued run differ from an uninterrupted one."""


def resume(
    run_dir: Path, *, quiet: bool = False, epochs: int | None = None, overrides: Sequence[str] = ()
) -> TrainResult:
    """Continue the run in ``run_dir`` exactly where its last checkpoint left it.

    ``epochs`` and ``overrides`` (``key=value`` for the keys in :data:`RESUME_OVERRIDABLE`) extend or cap
    the run; the changed settings are saved in its ``config.yaml``. ``train.max_minutes`` and
    ``train.max_steps`` count the run's whole training, not this continuation.
    """
    run_dir = Path(run_dir)
    cfg_path = RunDir(run_dir).require_run().config
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in RESUME_OVERRIDABLE:
            raise ConfigError(
                f"--set {text}: a resumed run can only change {', '.join(RESUME_OVERRIDABLE)} "
                "(anything else would not continue the same run; start a new one with --out)"
            )
    raw = apply_overrides(load_config(cfg_path), list(overrides))
    if epochs is not None:
        raw.setdefault("train", {})["epochs"] = epochs
    try:
        cfg = config_from_dict(raw)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    trainer = Trainer(cfg, run_dir, resume=True, quiet=quiet)
    try:
        _check_resumable(trainer)
    except BaseException:
        trainer.close()
        raise
    return trainer.run()


class RunFinishedError(ConfigError):
    """``resume`` of a run that its own limits (epochs, ``max_steps``, ``max_minutes``) already ended."""


def _check_resumable(trainer: Trainer) -> None:
    """Refuse to resume a run that its limits have already stopped, naming the setting to lift."""
    run_dir, t = trainer.run_dir, trainer.cfg.train
    if trainer.epoch >= t.epochs:
        raise RunFinishedError(
            f"{run_dir} has finished its {t.epochs} epochs; continue it with --epochs N (N > {t.epochs})"
        )
    if t.max_steps is not None and trainer.global_step >= t.max_steps:
        raise RunFinishedError(
            f"{run_dir} stopped at train.max_steps={t.max_steps}; continue it with --set train.max_steps=N "
            "(N larger, or null for no limit)"
        )
    if t.max_minutes is not None and trainer.elapsed >= t.max_minutes * 60:
        raise RunFinishedError(
            f"{run_dir} has used its train.max_minutes={t.max_minutes:g} ({trainer.elapsed / 60:.1f} min of training); "
            "continue it with --set train.max_minutes=M (the run's total, M larger) or train.max_minutes=null"
        )


def _load_initial_weights(flow: NormalizingFlow, source: Path) -> None:
    """Initialise ``flow`` from a run directory (its ``model.safetensors``, else its checkpoint), a
    ``.safetensors`` file or a flowood checkpoint ``.pt`` (read without unpickling code): fine-tuning, e.g.
    negative training that starts from a trained flow. Architectures must match."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
