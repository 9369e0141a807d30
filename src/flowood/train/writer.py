"""All of a training run's output in one writer: ``config.yaml``, the standardizer, ``labels.json``,
``metrics.csv`` rows, weights, checkpoints, sample grids and TensorBoard.

File names come from :class:`flowood.runs.RunDir`. Under ``torchrun`` only rank 0 writes: on the other ranks
every method returns without touching the disk. Writes are atomic (:mod:`flowood.train.checkpoint`), and a
failed one raises a one-line :class:`flowood.errors.RunWriteError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowood.atomic import atomic_write_text
from flowood.errors import RunWriteError
from flowood.flows import NormalizingFlow
from flowood.runs import RunDir
from flowood.train.checkpoint import save_checkpoint, save_weights, write_errors
from flowood.train.config import RunConfig
from flowood.train.data import Standardizer
from flowood.train.metrics_log import MetricsLog


def _save_samples(flow: NormalizingFlow, path: Path, n: int, seed: int, temperature: float = 0.7) -> None:
    from torchvision.utils import save_image  # torchvision only where image grids are written

    was_training = flow.training
    flow.eval()
    device = next(flow.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    images = flow.sample_images(n, temperature=temperature, generator=gen)
    flow.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().cpu(), str(path), nrow=int(math.sqrt(n)) or 1)


def _field(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


class RunWriter:
    """Writes one run directory (rank 0 only; see the module docstring).

    Args:
        rundir: the run directory's paths.
        cfg: the run's config (``config.yaml`` and the weights' metadata).
        input_shape: the flow's input shape (weights' metadata).
        enabled: False on ranks other than 0: nothing is written.
    """

    def __init__(self, rundir: RunDir, cfg: RunConfig, input_shape: tuple[int, ...], enabled: bool) -> None:
        self.rundir, self.cfg, self.input_shape, self.enabled = rundir, cfg, input_shape, enabled
        self.metrics: MetricsLog | None = None
        self.tensorboard: Any = None

    def start(
        self, *, resume: bool, epoch: int, class_names: list[str] | None, standardizer: Standardizer | None
    ) -> None:
        """The run's fixed files and its metrics log; with ``resume``, rows after ``epoch`` go at the next row."""
        if not self.enabled:
            return
        if class_names:
            # String labels were mapped to codes 0..K-1; keep the mapping with the run.
            with write_errors(self.rundir.labels):
                atomic_write_text(self.rundir.labels, json.dumps({"class_names": class_names}, indent=1))
        if standardizer is not None:
            with write_errors(self.rundir.standardize):
                standardizer.save(self.rundir.standardize)
        self.metrics = MetricsLog(self.rundir.metrics, resume)
        if resume:
            self.metrics.keep_through(epoch)
        with write_errors(self.rundir.config):
            self.cfg.save(self.rundir.config)

    def open_tensorboard(self) -> None:
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter  # TensorBoard's import is slow; only when training

            self.tensorboard = SummaryWriter(str(self.rundir.tensorboard))

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def step_scalar(self, value: float, global_step: int) -> None:
        """Every 10th step's training bits/dim in TensorBoard."""
        if self.tensorboard is not None and global_step % 10 == 0:
            self.tensorboard.add_scalar("train/bpd_step", value, global_step)

    def epoch_row(
        self,
        *,
        epoch: int,
        global_step: int,
        train_bpd: float,
        test_bpd: float | None,
        ood_train_bpd: float | None,
        val_bpd: float | None,
        lr: float,
        nonfinite_steps: int,
        seconds: float,
        partial: bool,
    ) -> None:
        """Epoch ``epoch``'s (1-based) TensorBoard scalars and ``metrics.csv`` row (bits/dim; None = not evaluated)."""
        if not self.enabled:
            return
        tb = self.tensorboard
        if tb is not None:
            tb.add_scalar("train/bpd", train_bpd, epoch)
            if test_bpd is not None:
                tb.add_scalar("test/bpd", test_bpd, epoch)
            tb.add_scalar("train/nonfinite_steps", nonfinite_steps, epoch)
            tb.add_scalar("train/lr", lr, epoch)
        assert self.metrics is not None, "RunWriter.start() first"
        self.metrics.append(
            {
                "epoch": epoch,
                "step": global_step,
                "train_bpd": f"{train_bpd:.6f}",
                "test_bpd": _field(test_bpd),
                "ood_train_bpd": _field(ood_train_bpd),
                "lr": f"{lr:.3e}",
                "nonfinite_steps": nonfinite_steps,
                "seconds": f"{seconds:.2f}",
                "val_bpd": _field(val_bpd),
                "partial": int(partial),
            }
        )

    def samples(self, flow: NormalizingFlow, epoch: int) -> None:
        """``samples/epoch_XXX.png``: a grid of ``train.num_samples`` samples at ``train.sample_temperature``."""
        if not self.enabled:
            return
        t, path = self.cfg.train, self.rundir.sample_path(epoch)
        with write_errors(path):
            _save_samples(flow, path, t.num_samples, self.cfg.seed, t.sample_temperature)

    def weights(self, model: dict[str, Tensor], ema: dict[str, Tensor] | None) -> None:
        """``model.safetensors`` (and ``model_ema.safetensors`` when ``ema`` is given), with the config as metadata."""
        if not self.enabled:
            return
        meta = {"config": str(self.cfg.to_dict()), "input_shape": ",".join(map(str, self.input_shape))}
        save_weights(self.rundir.model, model, meta)
        if ema is not None:
            save_weights(self.rundir.model_ema, ema, meta)

    def checkpoint(self, state: dict[str, Any], model: dict[str, Tensor], ema: dict[str, Tensor] | None) -> None:
        """The resumable checkpoint, then the weights; a failed write says what is kept and how to go on."""
        if not self.enabled:
            return
        ckpt = self.rundir.checkpoint
        had_checkpoint = ckpt.is_file()
        try:
            save_checkpoint(ckpt, state)
            self.weights(model, ema)
        except RunWriteError as err:
            then = (
                f"the last checkpoint is kept; free space and continue with: flowood train --resume {self.rundir.path}"
                if had_checkpoint or ckpt.is_file()
                else "free space and start the run again"
            )
            raise RunWriteError(f"{err}; {then}") from None
