"""Entry point of the ``flowood`` command: one Typer app, commands registered from small modules."""

from __future__ import annotations

import sys

import typer

from flowood.version import __version__

app = typer.Typer(
    name="flowood",
    help="Normalizing flows and likelihood-based out-of-distribution detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flowood {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """flowood: train flows, score datasets by exact likelihood, evaluate OOD detection."""


def _register() -> None:
    # Each command module exposes register(app); importing them here keeps `flowood --help` complete.
    from flowood.cli import (
        benchmark_cmd,
        convert_cmd,
        datasets_cmd,
        demo_cmd,
        embed_cmd,
        evaluate_cmd,
        presets_cmd,
        report_cmd,
        reproduce_cmd,
        train_cmd,
        visualize_cmd,
    )

    for module in (
        presets_cmd,
        datasets_cmd,
        train_cmd,
        evaluate_cmd,
        demo_cmd,
        embed_cmd,
        visualize_cmd,
        report_cmd,
        reproduce_cmd,
        convert_cmd,
        benchmark_cmd,
    ):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    from flowood.errors import FlowoodError, TrainingInterruptedError
    from flowood.host_allocator import tune_host_allocator

    tune_host_allocator()  # this process is ours: reuse freed activation memory (see flowood.host_allocator)
    try:
        # Standalone mode: Typer reports usage errors itself and exits through SystemExit.
        app(args=argv, prog_name="flowood")
    except TrainingInterruptedError as err:
        typer.secho(f"interrupted: {err}", fg=typer.colors.YELLOW, err=True)
        return TrainingInterruptedError.exit_code
    except FlowoodError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        _interrupted()
        return 130
    except SystemExit as err:
        if err.code == 130:  # Typer turns a KeyboardInterrupt into Exit(130) without a word
            _interrupted()
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    return 0


def _interrupted() -> None:
    # Outside a training loop (loading data, scoring, plotting) every file is written whole or not at all, and
    # a training inside a command saved its checkpoint: a rerun continues from there.
    typer.secho(
        "interrupted: nothing was left half-written; run the command again (a training continues from its last "
        "checkpoint with `flowood train --resume RUN`)",
        fg=typer.colors.YELLOW,
        err=True,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
