"""``flowood train``: train a flow from a preset or a YAML config."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from flowood.errors import ConfigError


def train_command(
    preset: str | None = typer.Option(None, "--preset", "-p", help="Preset name (see `flowood presets`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override: key=value, e.g. train.lr=1e-4 (repeat)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory to create."),
    force: bool = typer.Option(
        False, "--force", help="Replace the run already in --out (its flowood files are removed first)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this directory exactly (--epochs / --set train.max_* extend it)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Shortcut for --set train.epochs=N."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    exact: bool = typer.Option(
        False, "--exact", help="fp32, eager, contiguous, unfused optimiser (disable the fast path)."
    ),
) -> None:
    """Train a normalizing flow; writes config, metrics.csv, TensorBoard logs, checkpoints and samples.

    Multi-GPU: ``torchrun --nproc_per_node=N -m flowood train ...`` (train.batch_size is the global batch).
    """
    from flowood.train.config import EXACT_OVERRIDES, apply_overrides, config_from_dict, load_config
    from flowood.train.presets import get_preset
    from flowood.train.trainer import resume as resume_run
    from flowood.train.trainer import train

    if resume is not None:
        if preset or config or exact or force:
            raise ConfigError(
                "--resume continues a run with its saved config; do not combine it with "
                "--preset/--config/--exact/--force "
                "(extend it with --epochs N, or --set train.max_steps=N / train.max_minutes=M)"
            )
        result = resume_run(resume, quiet=quiet, epochs=epochs, overrides=overrides)
    else:
        if out is None:
            raise ConfigError("--out DIR is required for a new run")
        if preset and config:
            raise ConfigError("give either --preset or --config, not both")
        if preset:
            raw = get_preset(preset)
        elif config:
            raw = load_config(config)
        else:
            raise ConfigError("give --preset NAME (see `flowood presets`) or --config FILE.yaml")
        extra = list(overrides)
        if epochs is not None:
            extra.append(f"train.epochs={epochs}")
        if device is not None:
            extra.append(f"device={device}")
        if exact:
            extra += EXACT_OVERRIDES
        try:
            cfg = config_from_dict(apply_overrides(raw, extra))
        except ValueError as err:
            raise ConfigError(str(err)) from None
        result = train(cfg, out, quiet=quiet, overwrite=force)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    partial = f" + {result.partial_steps} steps of the next (partial)" if result.partial_steps else ""
    test = "not evaluated" if result.test_bpd != result.test_bpd else f"{result.test_bpd:.4f} bits/dim"
    typer.echo(
        f"done: {result.epochs_completed} epochs{partial}, {result.steps} steps, train {result.train_bpd:.4f} "
        f"bits/dim, test {test}, {result.nonfinite_steps} non-finite steps, {result.seconds:.0f}s -> {result.run_dir}"
    )
    if result.best_epoch is not None and result.val_bpd is not None:
        typer.echo(
            f"early stopping: kept the weights of epoch {result.best_epoch} (validation {result.val_bpd:.4f} "
            f"bits/dim){'; no improvement in the last epochs' if result.stopped_by == 'train.early_stopping' else ''}"
        )
    if result.stopped_by not in ("epochs", "train.early_stopping"):
        typer.echo(
            f"stopped by {result.stopped_by}; continue with: flowood train --resume {result.run_dir} "
            f"--set {result.stopped_by}={'M' if result.stopped_by.endswith('minutes') else 'N'}"
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
