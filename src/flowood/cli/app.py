"""Entry point of the ``flowood`` command: one Typer app, commands registered from small modules."""

from __future__ import annotations

import sys

import typer

from flowood import __version__

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
    from flowood.cli import presets_cmd

    for module in (presets_cmd,):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    from flowood.errors import FlowoodError

    try:
        app(args=argv, standalone_mode=False)
    except FlowoodError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        return 2
    except (typer.Exit, SystemExit) as err:
        code = getattr(err, "exit_code", getattr(err, "code", 0))
        return int(code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return err.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
