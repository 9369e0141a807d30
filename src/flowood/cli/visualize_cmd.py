"""``flowood visualize``: latent, coupling-layer, sample and histogram figures of a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from flowood.cli.options import check_data_root, split_names


def visualize_command(
    run_dir: Path = typer.Argument(..., help="Run directory (from `flowood train` or `flowood demo`)."),
    dataset: str | None = typer.Option(None, "--dataset", help="In-distribution dataset (default: data.dataset)."),
    ood: list[str] = typer.Option([], "--ood", help="OOD dataset(s), repeat or a,b (default: config data.ood)."),
    num_examples: int = typer.Option(4, "--num-examples", min=1, help="Images per dataset in the latent figure."),
    layers: str | None = typer.Option(
        None, "--layers", help="Coupling layers to show, e.g. 0,1,2 (default: first three checkerboard ones)."
    ),
    data_root: str | None = typer.Option(None, "--data-root", help="Where to look for datasets first."),
    num_stats: int = typer.Option(256, "--num-stats", min=1, help="Images per dataset for the coupling measurement."),
    num_scores: int = typer.Option(
        512, "--num-scores", min=1, help="Images per dataset for histograms not in scores.npz."
    ),
    num_samples: int = typer.Option(16, "--num-samples", min=1, help="Samples per temperature in samples.png."),
    seed: int = typer.Option(0, "--seed", help="Seed of subsets, dequantisation noise and samples."),
) -> None:
    """Write figures into RUN_DIR/figures/ and the coupling measurement into figures/coupling_stats.json."""
    check_data_root(data_root)
    from flowood.experiments.visualize import parse_layers, visualize_run

    names = split_names(ood, "--ood", "dataset")
    result = visualize_run(
        run_dir,
        dataset=dataset,
        ood=names or None,
        num_examples=num_examples,
        layers=parse_layers(layers),
        data_root=data_root,
        num_stats=num_stats,
        num_scores=num_scores,
        num_samples=num_samples,
        seed=seed,
    )
    for path in result.figures:
        typer.echo(f"wrote {path}")
    if result.coupling_stats:
        typer.echo("coupling layers: r(-t, x) = correlation of -t with the entries they transform")
        for row in result.coupling_stats:
            r = row["corr_neg_t_x"]
            typer.echo(
                f"  layer {row['layer']:>2} {row['mask_type']:<12} {row['dataset']:<20} r = {r:.3f}"
                f"  mean|s| = {row['mean_abs_s']:.3f}"
            )
    for reason in result.skipped:
        typer.echo(f"skipped: {reason}")


def register(app: typer.Typer) -> None:
    app.command("visualize")(visualize_command)
