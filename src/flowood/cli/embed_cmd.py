"""``flowood embed``: pooled features of a pretrained image classifier for every split of a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from flowood.cli.options import check_data_root, print_table
from flowood.errors import ConfigError


def embed(
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Dataset name, e.g. fashionmnist-mini."),
    extractor: str = typer.Option("efficientnet-lite0", "--extractor", "-e", help="Feature extractor name."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .npz file."),
    splits: str = typer.Option("train,test", "--splits", help="Comma-separated splits; the first is 'embeddings'."),
    size: int | None = typer.Option(
        None,
        "--size",
        help="Input resolution in pixels (default: the extractor's native size, 224 for efficientnet-lite0).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many images per split."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root directory."),
    seed: int = typer.Option(0, "--seed", help="Subsampling seed for --limit."),
    weights: str | None = typer.Option(
        None, "--weights", help="torchvision: weights name (IMAGENET1K_V2) or local file; lite0: local file."
    ),
    download: bool = typer.Option(
        False, "--download", help="Let torchvision download missing weights into the torch hub cache."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute features even if cached."),
    force: bool = typer.Option(False, "--force", help="Replace the file already at --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    list_extractors: bool = typer.Option(False, "--list-extractors", help="List extractors and exit."),
) -> None:
    """Embed a dataset with a pretrained classifier into one .npz (pooled features per split).

    Preprocessing: grey images repeated to RGB, resized to --size, normalised as the extractor expects.

    Output: <split>_embeddings (N, F) float32 and <split>_labels (N,) int64 per split, plus
    embeddings/labels (first split) and metadata.

    Features are cached by content in $FLOWOOD_CACHE/features (default ~/.cache/flowood/features).
    """
    check_data_root(data_root)
    from flowood.features import EXTRACTORS, embed_dataset, read_embeddings

    if list_extractors:
        from rich.table import Table

        table = Table(title="flowood feature extractors")
        for col in ("name", "features", "size", "description"):
            table.add_column(col)
        for spec in EXTRACTORS.values():
            table.add_row(spec.name, str(spec.feature_dim), str(spec.default_size), spec.description)
        print_table(table, wrap=("description",))
        return
    if dataset is None or out is None:
        raise ConfigError("flowood embed needs --dataset NAME and --out FILE.npz (or --list-extractors)")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be positive, got {limit}")
    target = out.expanduser()
    if target.is_dir():
        raise ConfigError(f"--out {out} is a directory; give the .npz file to write, e.g. {out / 'embeddings.npz'}")
    if target.exists() and not force:
        raise ConfigError(f"--out {out} already exists; replace it with --force, or choose another --out")
    path = embed_dataset(
        dataset,
        extractor,
        splits,
        out,
        size=size,
        batch_size=batch_size,
        device=device,
        limit=limit,
        data_root=data_root,
        seed=seed,
        weights=weights,
        download=download,
        progress=progress,
        cache=not no_cache,
    )
    bundle = read_embeddings(path)
    shapes = ", ".join(f"{s} {tuple(bundle.embeddings[s].shape)}" for s in bundle.splits)
    meta = bundle.metadata
    typer.echo(f"wrote {path}: {shapes} [{meta.get('extractor')} @ {meta.get('size')} px, {meta.get('seconds')} s]")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
