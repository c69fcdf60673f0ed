"""What every command shares: loading settings, opening the database, error mapping, output.

Output discipline: logs and diagnostics go to stderr; `--json` prints exactly one JSON
document to stdout; rich tables and progress only on a terminal.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from supportersync.config import OrgSettings, Settings, load_settings
from supportersync.db.engine import first_line, open_engine, require_current_schema
from supportersync.errors import ExitCode, SupportersyncError

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

ORG_OPTION = typer.Option(None, "--org", help="Organization to work on ([organizations.NAME] in the config file).")
CONFIG_OPTION = typer.Option(None, "--config", help="Config file (default: $SUPPORTERSYNC_CONFIG, else ~/.config/supportersync/config.toml).")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document to stdout.")


@dataclass
class Context:
    settings: Settings
    engine: Engine

    def org(self, name: str | None) -> OrgSettings:
        return self.settings.org(name)


def settings_from(config: str | None) -> Settings:
    return load_settings(config_path=config)


def open_context(config: str | None, *, check_schema: bool = True) -> Context:
    """Settings validated, database opened and (by default) at the current migration."""
    settings = settings_from(config)
    engine = open_engine(settings.database_url)
    if check_schema:
        try:
            require_current_schema(engine)
        except Exception:
            engine.dispose()
            raise
    return Context(settings, engine)


def fail(message: str, code: ExitCode) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(int(code))


def handle_errors(func: F) -> F:
    """Map our exception tree to a message on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SupportersyncError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except SQLAlchemyError as exc:
            # The database went away mid-command: say so plainly; committed work stays committed.
            raise fail(f"database error: {first_line(exc)} Committed work is kept; run the command again "
                       "once the database is reachable.", ExitCode.FAILED) from None

    return wrapper  # type: ignore[return-value]


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def is_terminal() -> bool:
    return sys.stderr.isatty()
