"""The `supportersync` command line: thin commands that parse, call the domain, render.

Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 finished with
record-level failures, 4 sync ok but a plugin failed, 5 skipped (another run holds the lock).
"""

from __future__ import annotations

import typer

from supportersync import __version__

EPILOG = (
    "Exit codes: 0 ok; 1 failed; 2 usage or configuration error; 3 finished with record-level "
    "failures; 4 sync ok but a plugin failed; 5 skipped because another run holds the lock."
)

app = typer.Typer(
    name="supportersync",
    help="Keep a SQL copy of your Classy (GoFundMe Pro) data current, and let plugins such as "
    "Mailchimp react to every sync.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"supportersync {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Keep a SQL copy of your Classy (GoFundMe Pro) data current."""


def _register() -> None:
    # Each command group lives in its own module; importing registers it on `app`.
    import importlib

    for name in ("run", "jobs", "db", "stats", "plugins", "ops", "config", "demo"):
        importlib.import_module(f"supportersync.cli.{name}")


_register()


def main() -> None:
    app()
