"""``flowood convert``: a checkpoint of the original flows_ood scripts → a flowood run directory."""

from __future__ import annotations

from pathlib import Path

import typer


def convert_command(
    checkpoint: Path = typer.Argument(..., help="Original checkpoint ({'net': state_dict, 'epoch': N}, .pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    flow: str = typer.Option(
        "RealNVP",
        "--flow",
        help="Original --flow: RealNVP, Glow, RealNVPCycleMask, RealNVPMaskHorizontal, RealNVPTabular.",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Original --dataset (FashionMNIST, MNIST, CIFAR10, SVHN, CelebA): the image shape."
    ),
    img_shape: str | None = typer.Option(None, "--img_shape", help="C,H,W instead of --dataset."),
    num_scales: int = typer.Option(2, "--num_scales"),
    num_blocks: int = typer.Option(8, "--num_blocks"),
    num_mid_channels: int = typer.Option(64, "--num_mid_channels"),
    st_type: str = typer.Option("resnet", "--st_type", help="resnet, resnet_ae or highway."),
    latent_dim: int = typer.Option(100, "--latent_dim", help="Bottleneck width of --st_type resnet_ae."),
    num_coupling_layers_per_scale: int = typer.Option(8, "--num_coupling_layers_per_scale"),
    no_batchnorm: bool = typer.Option(False, "--no_batchnorm"),
    in_dim: int = typer.Option(1792, "--in_dim", help="RealNVPTabular input dimension."),
    dropout: bool = typer.Option(False, "--dropout", help="RealNVPTabular trained with --dropout."),
    data: str | None = typer.Option(
        None, "--data", help="flowood dataset the run evaluates on (default: the one named by --dataset)."
    ),
    ood: list[str] = typer.Option([], "--ood", help="OOD dataset(s) for `flowood evaluate`, repeat or a,b."),
) -> None:
    """Load an original checkpoint (weights only, no code runs), check it against the flags, write RUN.

    Flags and their defaults are the original train_unsup.py's; the run directory is read by
    `flowood evaluate`, `visualize`, `report` and `benchmark` like one from `flowood train`.
    """
    from flowood.convert import OriginalArchitecture, from_flows_ood, write_run
    from flowood.data import dataset_info
    from flowood.errors import ConfigError

    shape = None
    if img_shape is not None:
        try:
            shape = tuple(int(s) for s in img_shape.split(","))
        except ValueError:
            raise ConfigError(f"--img_shape expects C,H,W (e.g. 1,28,28), got {img_shape!r}") from None
    arch = OriginalArchitecture(
        flow=flow,
        dataset=dataset,
        img_shape=shape,
        num_scales=num_scales,
        num_blocks=num_blocks,
        num_mid_channels=num_mid_channels,
        st_type=st_type,
        latent_dim=latent_dim,
        num_coupling_layers_per_scale=num_coupling_layers_per_scale,
        no_batchnorm=no_batchnorm,
        in_dim=in_dim,
        dropout=dropout,
    )
    target = data or arch.flowood_dataset()
    if target is None and dataset is not None:
        arch.input_shape()  # an unknown --dataset: say so rather than ask for a --dataset
    if target is None:
        raise ConfigError("give --data DATASET (the flowood dataset to evaluate on) or an original --dataset")
    names = [n for item in ood for n in item.split(",") if n]
    for name in [target, *names]:
        dataset_info(name)  # an unknown name fails now, not at the first `flowood evaluate`
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not empty; choose a new directory for the run")
    model, epoch = from_flows_ood(checkpoint, arch)
    provenance = {"converted_from": str(checkpoint), "original_epoch": str(epoch)}
    write_run(model, out, dataset=target, ood=names, provenance=provenance)
    params = sum(p.numel() for p in model.parameters())
    typer.echo(f"converted {checkpoint} (epoch {epoch}, {params:,} parameters) → {out} ({model.name})")
    if not dataset_info(target).available_now:
        # Say it now, not at the first `flowood evaluate` (which would need the full dataset's files).
        mini = f"{target}-mini"
        offline = f"convert with --data {mini} to evaluate on the embedded bundle, or " if _known(mini) else ""
        typer.echo(
            f"note: {target} is not on this machine: `flowood evaluate {out}` needs its files; {offline}put them "
            "under --data-root (`flowood datasets` says where they are looked for)"
        )


def _known(name: str) -> bool:
    from flowood.data import dataset_info
    from flowood.errors import DatasetError

    try:
        dataset_info(name)
    except DatasetError:
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
