"""`supportersync db upgrade|current`: the database schema."""

from __future__ import annotations

import typer

from supportersync.cli import app
from supportersync.cli.common import CONFIG_OPTION, handle_errors, open_context, stdout
from supportersync.db.engine import current_revision, head_revision, upgrade

db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handle_errors
def upgrade_command(config: str | None = CONFIG_OPTION) -> None:
    """Apply the migrations this version ships (safe to run again)."""
    ctx = open_context(config, check_schema=False)
    try:
        before, after = upgrade(ctx.engine)
    finally:
        ctx.engine.dispose()
    if before == after:
        stdout.print(f"database already at {after} ({ctx.settings.redacted_database_url})", highlight=False)
    else:
        stdout.print(f"database upgraded from {before or 'empty'} to {after} ({ctx.settings.redacted_database_url})",
                     highlight=False)


@db_app.command("current")
@handle_errors
def current_command(config: str | None = CONFIG_OPTION) -> None:
    """Show the database's migration and the one this version needs."""
    ctx = open_context(config, check_schema=False)
    try:
        current = current_revision(ctx.engine)
    finally:
        ctx.engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "behind: run `supportersync db upgrade`"
    stdout.print(f"database: {current or 'empty'}; this version needs {head} ({state})", highlight=False)
