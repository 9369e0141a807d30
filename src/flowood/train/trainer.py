"""The training loop: exact likelihood training of a flow, robust to divergence, exactly resumable.

This module holds the loop itself (:class:`Trainer`: the epoch loop, the end-of-epoch evaluation, limits and
signals) and the public entry points :func:`train` and :func:`resume`. Each job it delegates has its module:

* :mod:`~flowood.train.setup` builds data, model, optimiser, schedule, scaler, EMA and DDP (writes nothing);
* :mod:`~flowood.train.step` is one step's arithmetic and its single device→host read;
* :mod:`~flowood.train.objective` the loss (bits/dim or nats; negative training) and the evaluation;
* :mod:`~flowood.train.nonfinite` the non-finite policy (``train.nonfinite``: skip, rollback, raise);
* :mod:`~flowood.train.writer` every file of the run directory (rank 0 only under ``torchrun``);
* :mod:`~flowood.train.resume` the resume settings and checks, the RNG states a checkpoint keeps;
* :mod:`~flowood.train.early_stopping` ``train.early_stopping``.

Performance (``flowood.perf``): the forward pass runs under the configured autocast precision with
log-dets and losses in fp32, on channels-last weights, through a compiled transform, with a fused
optimiser; under ``torchrun`` the model is wrapped in DistributedDataParallel
(``flowood.train.distributed``) and only rank 0 writes files.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowood.devices import resolve_device
from flowood.errors import FlowoodError, TrainingInterruptedError
from flowood.flows import NormalizingFlow
from flowood.perf import eager_stance
from flowood.runs import RunDir
from flowood.train import compile_fallback, step
from flowood.train.checkpoint import load_checkpoint
from flowood.train.compile_fallback import failure_reason
from flowood.train.config import RunConfig
from flowood.train.distributed import cleanup, env_dist_info
from flowood.train.interrupts import StopSignals
from flowood.train.nonfinite import NonfiniteGuard
from flowood.train.objective import evaluate_bpd
from flowood.train.resume import (
    check_resumable,
    resumed_config,
    rng_state,
    set_rng_state,
)
from flowood.train.setup import build_training, fall_back_to_eager
from flowood.train.writer import RunWriter

__all__ = ["TrainResult", "Trainer", "resume", "train"]


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


class Trainer:
    """Owns the state of one run; :meth:`run` trains to the configured number of epochs.

    The parts built by :func:`flowood.train.setup.build_training` are attributes (``flow``, ``model``,
    ``optimizer``, ``scheduler``, ``scaler``, ``ema``, ``fast``, ``train_data``, ``test_data``, ``val_data``,
    ``ood_data``, ``dequant_gen``, ``ood_gen``, ``standardizer``, ``stopper``...), and so are the counters a
    checkpoint keeps (``epoch``, ``step_in_epoch``, ``global_step``, ``nonfinite_steps``, ``lr_scale``,
    ``elapsed`` in seconds).
    """

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
        --out`` without ``--force``); with True its files are removed (see :class:`flowood.runs.RunDir`), once
        the config, data and model have been built: a replacement that cannot start removes nothing.
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
        s = build_training(cfg, self.dist, device or resolve_device(cfg.device), resume=resume)
        if not resume and self.is_main and self.rundir.has_run_files():
            # --force: the config, the data and the model were all built above, so a replacement that cannot
            # work fails before the old run is removed.
            self.rundir.clear()
        self.device, self.kind, self.input_shape, self.standardizer = s.device, s.kind, s.input_shape, s.standardizer
        self.train_data, self.test_data, self.val_data, self.ood_data = (
            s.train_data,
            s.test_data,
            s.val_data,
            s.ood_data,
        )
        self.steps_per_epoch, self.stopper, self.fast = s.steps_per_epoch, s.stopper, s.fast
        self.flow, self.model, self.optimizer, self.scheduler = s.flow, s.model, s.optimizer, s.scheduler
        self.scaler, self.ema, self.dequant_gen, self.ood_gen = s.scaler, s.ema, s.dequant_gen, s.ood_gen
        for warning in s.warnings:
            self._note(warning, prefix="warning")
        self._compile_unproven = self.fast.compile  # until the first compiled step has succeeded
        self.guard = NonfiniteGuard(cfg.train)
        self._time_up = False
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.nonfinite_steps = 0
        self.lr_scale = 1.0
        self.elapsed = 0.0
        self.last_train_bpd = float("nan")
        self.last_ood_train_bpd: float | None = None
        self._step_ood_bpd: float | None = None
        self.last_test_bpd = float("nan")
        if resume:
            # Read everything before writing anything: a resume that fails leaves the run as it was.
            self._restore(load_checkpoint(self.ckpt_path, map_location=self.device))
        self.writer = RunWriter(self.rundir, cfg, self.input_shape, enabled=self.is_main)
        self.writer.start(resume=resume, epoch=self.epoch, class_names=s.class_names, standardizer=self.standardizer)

    @property
    def ckpt_path(self) -> Path:
        return self.rundir.checkpoint

    def state(self) -> dict[str, Any]:
        """The checkpoint: everything an exact resume needs (tensors, numbers and plain containers only)."""
        return {
            "model": self.flow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,  # read by training_summary (the planned steps), not by resume
            "global_step": self.global_step,
            "nonfinite_steps": self.nonfinite_steps,
            "lr_scale": self.lr_scale,
            "elapsed": self.elapsed,
            "dequant_gen": self.dequant_gen.get_state(),
            "ood_gen": self.ood_gen.get_state(),
            "rng": rng_state(),
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
        set_rng_state(state["rng"])
        if self.stopper is not None and state.get("early_stopping") is not None:
            self.stopper.load(state["early_stopping"])
        # Checkpoints of flowood 0.1 lack the running sums: the resumed epoch's mean then restarts.
        self._sums = list(state.get("epoch_sums", [0.0, 0, 0.0, 0]))

    def save(self) -> None:
        """Write the checkpoint and weights (rank 0 only under data-parallel training)."""
        if self.is_main:
            ema = self.ema.module.state_dict() if self.ema is not None else None
            self.writer.checkpoint(self.state(), self.flow.state_dict(), ema)

    def train_step(self, batch: Tensor, ood_batch: Tensor | None) -> float:
        """One optimisation step; returns the training bits/dim of the (global) batch (NaN if skipped)."""
        step.set_learning_rate(self.optimizer, self.scheduler, self.global_step, self.lr_scale)
        reading = step.measure(
            self.model, self.optimizer, self.scaler, self.fast, self.cfg, batch, ood_batch,
            kind=self.kind, dequant_gen=self.dequant_gen, dist=self.dist, time_up=self._time_up,
            signal=self._signals.flag(self.device) if self.dist.enabled and self._signals is not None else None,
        )  # fmt: skip
        if reading.time_up is not None:
            self._time_up = reading.time_up
        if reading.signal is not None and self._signals is not None:
            self._signals.agreed = reading.signal
        self._step_ood_bpd = reading.ood_train_bpd
        self._check_inversion(reading.inversion_residual)
        if not reading.ok and self.scaler is not None and reading.loss_finite:
            # fp16 loss-scale overflow: the scaler lowers its scale (its update below); not a divergence.
            self.optimizer.zero_grad(set_to_none=True)
        elif not reading.ok:
            self.nonfinite_steps += 1
            rolled_back_to = self.guard.nonfinite(
                self.flow, self.optimizer, global_step=self.global_step, epoch=self.epoch,
                nonfinite_steps=self.nonfinite_steps, checkpoint=self.ckpt_path,
            )  # fmt: skip
            if rolled_back_to is not None:
                self.lr_scale *= self.cfg.train.rollback_lr_factor
                self._log(
                    f"non-finite step {self.global_step}: rolled back to step {rolled_back_to}, "
                    f"learning rate ×{self.lr_scale:g}"
                )
        else:
            self.guard.finite()
            step.update(self.optimizer, self.scaler, self.ema, self.flow)
        if self.scaler is not None:
            self.scaler.update()
        step.advance_schedule(self.scheduler)
        self.global_step += 1
        return reading.train_bpd if reading.ok else float("nan")

    def _check_inversion(self, residual: float | None) -> None:
        """``train.memory=invert``: blocks whose reconstruction went past ``train.invert_tolerance`` keep storing
        from the next step; every fallback (also those of the first step's check) is reported once."""
        inversion = self.flow.inversion
        if inversion is None:
            return
        if residual is not None and residual > inversion.tolerance:
            inversion.fall_back()
        for warning in inversion.take_warnings():
            self._note(warning, prefix="warning")

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

    def _first_step_guarded(self, batch: Tensor, ood_batch: Tensor | None) -> float:
        """The first compiled step; if compiling or running it fails, the same step again eagerly."""
        rng = (self.dequant_gen.get_state(), self.ood_gen.get_state(), torch.get_rng_state())
        try:
            value = self.train_step(batch, ood_batch)
        except (FlowoodError, KeyboardInterrupt):
            raise
        except Exception as err:
            self.fast = fall_back_to_eager(self.flow, self.fast)
            self._note(compile_fallback.WARNING.format(reason=failure_reason(err)), prefix="warning")
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

    def _signalled(self) -> bool:
        """A signal was received here, or (under torchrun) by any rank as agreed in the last step."""
        return self._signals is not None and self._signals.should_stop(self.dist.enabled)

    def _run(self) -> TrainResult:
        """The epoch loop: epochs until a limit, a signal or early stopping ends the run."""
        tcfg = self.cfg.train
        self.writer.open_tensorboard()
        # Training time counts from here (plus a resumed run's); the deadline clock is self._start, which the
        # constructor's work counts against too.
        self._clock = self._start = time.monotonic() - self.elapsed
        stop, stopped_by = False, "epochs"
        if self.stopper is not None and self.stopper.best_epoch is None:
            self._validate()  # the initial weights are a candidate (e.g. a whitened Gaussian start)
        after_epoch = False  # an epoch ended (and was saved) in this call
        try:
            while self.epoch < tcfg.epochs and not stop:
                if self._signalled():
                    self._interrupt()
                if after_epoch and not self.dist.enabled and self._past_deadline():
                    # The last end-of-epoch evaluation used up train.max_minutes (its checkpoint is written).
                    stopped_by = "train.max_minutes"
                    break
                after_epoch = True
                limit = self._train_epoch()
                if limit is not None:
                    stop, stopped_by = True, limit
                sums = self._sums
                self.last_train_bpd = sums[0] / sums[1] if sums[1] else float("nan")
                self.last_ood_train_bpd = sums[2] / sums[3] if sums[3] else None
                self._end_epoch(partial=stop and self.step_in_epoch < self.steps_per_epoch)
                if self.dist.enabled and self._signals is not None and self._signals.agree(self.dist, self.device):
                    self._interrupt()  # a signal during rank 0's evaluation (or to another rank): all stop here
                if self.stopper is not None and self.stopper.should_stop:
                    stop, stopped_by = True, "train.early_stopping"
        finally:
            self.writer.close()
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

    def _train_epoch(self) -> str | None:
        """The steps of the current epoch (from ``step_in_epoch`` on a resume); the limit that cut it, if any."""
        from tqdm import tqdm  # tqdm's import is slow; only when training

        tcfg = self.cfg.train
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
        self._last_heartbeat = None  # rates exclude the evaluation between epochs
        self.flow.set_dequantization_rng(self.dequant_gen, self.shard if self.dist.enabled else None)
        limit: str | None = None
        for batch in bar:
            ood_batch = (
                self.ood_data.random_batch(tcfg.batch_size, self.ood_gen, shard=self.shard)
                if self.ood_data is not None
                else None
            )
            self.guard.before_step(self.flow, self.optimizer, self.global_step)
            value = self._first_step_guarded(batch, ood_batch) if self._compile_unproven else None
            if value is None:
                value = self.train_step(batch, ood_batch)
            self.step_in_epoch += 1
            self._count(value, ood_batch is not None)
            bar.set_postfix(bpd=f"{value:.3f}", nonfinite=self.nonfinite_steps)
            limit = self._after_step(value)
            if limit is not None:
                break
        bar.close()
        self.flow.set_dequantization_rng(None)
        return limit

    def _count(self, value: float, with_ood: bool) -> None:
        """Add a step's finite bits/dim (and its OOD batch's) to the epoch's running sums."""
        sums = self._sums
        if math.isfinite(value):
            sums[0] += value
            sums[1] += 1
        if with_ood and self._step_ood_bpd is not None and math.isfinite(self._step_ood_bpd):
            sums[2] += self._step_ood_bpd
            sums[3] += 1

    def _after_step(self, value: float) -> str | None:
        """Heartbeat, TensorBoard, periodic checkpoint, signals; the limit (``train.max_*``) reached, if any."""
        tcfg = self.cfg.train
        self._heartbeat(value)
        self.writer.step_scalar(value, self.global_step)
        self.elapsed = time.monotonic() - self._clock
        if tcfg.checkpoint_every and self.global_step % tcfg.checkpoint_every == 0:
            self.save()
        if self._signalled():
            self._interrupt()
        time_up = tcfg.max_minutes is not None and self.elapsed > tcfg.max_minutes * 60
        if self.dist.enabled:
            # Ranks must stop at the same step: this rank's clock is folded into the next
            # step's all-reduce, and the agreed flag from this step's is used here.
            time_up, self._time_up = self._time_up, time_up
        if time_up:
            return "train.max_minutes"
        if tcfg.max_steps is not None and self.global_step >= tcfg.max_steps:
            return "train.max_steps"
        return None

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
        weights = self.flow.state_dict()
        self.writer.weights(weights, weights if self.ema is not None else None)
        self._log(
            f"early stopping: kept the weights of epoch {self.stopper.best_epoch} (validation "
            f"{self.stopper.best:.4f} bits/dim, test {self.last_test_bpd:.4f} bits/dim)"
        )

    def _eval_model(self) -> NormalizingFlow:
        return self.ema.module if self.ema is not None else self.flow  # type: ignore[return-value]

    def _end_epoch(self, partial: bool) -> None:
        """Evaluate (rank 0), log, write the epoch's row, samples and checkpoint; advance the epoch counter."""
        if not self.is_main:
            # Other ranks only advance the counters; rank 0 evaluates, logs and writes.
            if not partial:
                self.epoch += 1
                self.step_in_epoch = 0
            return
        try:
            test_bpd = self._monitor_test_bpd()
        except _EvaluationCutBySignalError:
            return  # under torchrun the ranks agree to stop right after _end_epoch; it runs again on resume
        self.last_test_bpd = float("nan") if test_bpd is None else test_bpd
        val_bpd = self._validate() if self.stopper is not None and not partial else None
        lr = self.optimizer.param_groups[0]["lr"]
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
            self.writer.samples(self._eval_model(), self.epoch + 1)
        self.writer.epoch_row(
            epoch=self.epoch + 1,
            global_step=self.global_step,
            train_bpd=self.last_train_bpd,
            test_bpd=test_bpd,
            ood_train_bpd=self.last_ood_train_bpd,
            val_bpd=val_bpd,
            lr=lr,
            nonfinite_steps=self.nonfinite_steps,
            seconds=self.elapsed,
            partial=partial,
        )
        if not partial:
            self.epoch += 1
            self.step_in_epoch = 0
        self.save()

    def _monitor_test_bpd(self) -> float | None:
        """The end-of-epoch test bits/dim, or None when ``train.max_minutes`` or a signal cut it (noted)."""
        if self._past_deadline():
            self._note(
                f"epoch {self.epoch + 1}: test bits/dim not evaluated, train.max_minutes reached "
                "(score the run with `flowood evaluate`)"
            )
            return None
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 2)
        # Monitoring evaluation runs eagerly: compiling a second (eval-mode) graph would cost more than it saves.
        # It stops early for a signal or for train.max_minutes, which bounds the whole run.
        with self.fast.autocast(), eager_stance():
            test_bpd = evaluate_bpd(
                self._eval_model(), self.test_data, self.cfg.train.eval_batch_size, gen, self._stop_evaluation
            )
        if test_bpd is None and self._signals and self.dist.enabled:
            raise _EvaluationCutBySignalError  # rank 0 must not stop alone (see interrupts.py)
        if test_bpd is None and self._signals:
            self._interrupt()  # the epoch's steps are kept; its evaluation runs again on resume
        if test_bpd is None:
            self._note(f"epoch {self.epoch + 1}: test evaluation cut short by train.max_minutes (not logged)")
        return test_bpd


class _EvaluationCutBySignalError(Exception):
    """Rank 0's end-of-epoch evaluation was cut by a signal under torchrun: the epoch is left open."""


def train(cfg: RunConfig, out: Path, *, quiet: bool = False, overwrite: bool = True) -> TrainResult:
    """Train a new run into directory ``out``.

    ``overwrite=False`` refuses an ``out`` that already holds a run (the CLI's default, lifted by
    ``--force``); with True (the library default) the old run's files are removed first.
    """
    return Trainer(cfg, out, quiet=quiet, overwrite=overwrite).run()


def resume(
    run_dir: Path, *, quiet: bool = False, epochs: int | None = None, overrides: Sequence[str] = ()
) -> TrainResult:
    """Continue the run in ``run_dir`` exactly where its last checkpoint left it.

    ``epochs`` and ``overrides`` (``key=value`` for the keys in :data:`RESUME_OVERRIDABLE`) extend or cap
    the run; the changed settings are saved in its ``config.yaml``. ``train.max_minutes`` and
    ``train.max_steps`` count the run's whole training, not this continuation.

    Raises:
        RunFinishedError: the run's limits have already ended it (the message names the setting to lift).
    """
    run_dir = Path(run_dir)
    trainer = Trainer(resumed_config(run_dir, epochs, overrides), run_dir, resume=True, quiet=quiet)
    try:
        check_resumable(
            trainer.run_dir, trainer.cfg.train, epoch=trainer.epoch, global_step=trainer.global_step,
            elapsed=trainer.elapsed,
        )  # fmt: skip
    except BaseException:
        trainer.close()
        raise
    return trainer.run()
