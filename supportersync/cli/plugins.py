"""`supportersync plugins list|test|run`: see, check and run the installed plugins.

Each command loads the plugins (`SUPPORTERSYNC_LOAD_PLUGINS` / `load_plugins` limit
which), calls one hook of one plugin and renders what it returned. Unknown plugin:
exit 2.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from supportersync.cli import EPILOG, app
from supportersync.cli.common import (
    CONFIG_OPTION,
    JSON_OPTION,
    ORG_OPTION,
    fail,
    handle_errors,
    open_context,
    print_json,
    settings_from,
    stdout,
)
from supportersync.config import Settings
from supportersync.db.engine import open_engine
from supportersync.errors import ExitCode, SupportersyncError
from supportersync.hookspecs import PluginCheck, PluginContext, PluginStatus
from supportersync.logs import setup_logging
from supportersync.plugins import Plugins, PluginRun, call_isolated, make_plugin_manager

plugins_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, epilog=EPILOG)
app.add_typer(plugins_app, name="plugins",
              help="List the installed plugins, check one's settings and credentials, or run one on demand.")

DETAIL_LINES = 20


def _plugins(settings: Settings) -> Plugins:
    return make_plugin_manager(settings.load_plugins)


def _require(plugins: Plugins, name: str) -> None:
    if name in plugins.names():
        return
    if name in plugins.load_errors:
        raise fail(f"Plugin {name!r} could not be loaded: {plugins.load_errors[name]}", ExitCode.FAILED)
    known = ", ".join(plugins.names()) or "none"
    raise fail(f"There is no plugin named {name!r}; installed: {known}. See `supportersync plugins list`.",
               ExitCode.USAGE)


def _lazy_engine(settings: Settings) -> Engine:
    # Listing and checking need no database; the engine connects only if a plugin uses it.
    return open_engine(settings.database_url, check=False, create_dirs=False)


@plugins_app.command("list", epilog=EPILOG)
@handle_errors
def list_command(org: str | None = ORG_OPTION, config: str | None = CONFIG_OPTION,
                 as_json: bool = JSON_OPTION) -> None:
    """List the installed plugins: name, version, hooks, and whether each is configured."""
    settings = settings_from(config)
    organization = settings.org(org)
    plugins = _plugins(settings)
    engine = _lazy_engine(settings)
    context = PluginContext(settings=settings, org=organization, engine=engine)
    rows: list[dict[str, Any]] = []
    try:
        for info in plugins.info():
            status = _status(plugins, info.name, context)
            rows.append({"name": info.name, "version": info.version, "hooks": info.hooks,
                         "configured": status.configured, "detail": status.detail, "module": info.module})
    finally:
        engine.dispose()
    for name, problem in sorted(plugins.load_errors.items()):
        rows.append({"name": name, "version": None, "hooks": [], "configured": False,
                     "detail": f"not loaded: {problem}", "module": None})
    if as_json:
        print_json(rows)
        return
    if not rows:
        stdout.print("No plugins installed.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "version", "configured", "hooks", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["version"] or "-", "yes" if row["configured"] else "no",
                      ", ".join(row["hooks"]) or "-", row["detail"])
    stdout.print(table, highlight=False, markup=False)


def _status(plugins: Plugins, name: str, context: PluginContext) -> PluginStatus:
    impl = plugins.implementation(name, "plugin_status")
    if impl is None:
        return PluginStatus(True, "")
    try:
        status = impl(context=context)
    except Exception as exc:  # one plugin's bug must not break the listing
        return PluginStatus(False, f"plugin_status failed: {_describe(exc)}")
    return status if isinstance(status, PluginStatus) else PluginStatus(True, "")


@plugins_app.command("test", epilog=EPILOG)
@handle_errors
def test_command(name: str = typer.Argument(..., help="The plugin to check, e.g. mailchimp."),
                 org: str | None = ORG_OPTION, config: str | None = CONFIG_OPTION,
                 as_json: bool = JSON_OPTION) -> None:
    """Check a plugin's settings and credentials without changing anything.

    Exit 0 when the plugin is usable, 1 with the exact problem otherwise, 2 for an
    unknown plugin.
    """
    settings = settings_from(config)
    organization = settings.org(org)
    plugins = _plugins(settings)
    _require(plugins, name)
    impl = plugins.implementation(name, "check_plugin")
    if impl is None:
        report = PluginCheck(True, problem=None)
    else:
        engine = _lazy_engine(settings)
        try:
            report = impl(context=PluginContext(settings=settings, org=organization, engine=engine))
        except Exception as exc:
            report = PluginCheck(False, problem=f"the check itself failed: {_describe(exc)}")
        finally:
            engine.dispose()
        if not isinstance(report, PluginCheck):
            report = PluginCheck(True)
    if as_json:
        print_json({"name": name, "ok": report.ok, "problem": report.problem,
                    "items": [{"name": i.name, "ok": i.ok, "detail": i.detail} for i in report.items]})
    else:
        if impl is None:
            stdout.print(f"{name} has no checks.", highlight=False, markup=False)
        for item in report.items:
            stdout.print(f"  {'ok ' if item.ok else 'FAIL'} {item.name}: {item.detail}", highlight=False,
                         markup=False)
        if report.ok:
            stdout.print(f"{name}: usable", highlight=False, markup=False)
    if not report.ok:
        raise fail(f"{name}: {report.problem or 'not usable'}", ExitCode.FAILED)


@plugins_app.command("run", epilog=EPILOG)
@handle_errors
def run_command(name: str = typer.Argument(..., help="The plugin to run, e.g. mailchimp."),
                full: bool = typer.Option(False, "--full", help="Reconsider everything, not only what changed "
                                          "since the plugin's last run."),
                dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; send nothing, change "
                                             "nothing."),
                org: str | None = ORG_OPTION, config: str | None = CONFIG_OPTION,
                as_json: bool = JSON_OPTION,
                quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing unless it fails.")) -> None:
    """Run a plugin on demand (it catches up on everything it missed), and print what it did.

    Exit 0 when it succeeded (or partly: refused items are listed), 1 when it failed.
    """
    ctx = open_context(config)
    setup_logging(ctx.settings.log_format, logging.ERROR if quiet else logging.WARNING)
    try:
        organization = ctx.org(org)
        plugins = _plugins(ctx.settings)
        _require(plugins, name)
        if plugins.implementation(name, "run_plugin") is None:
            raise fail(f"Plugin {name!r} cannot be run on demand (it has no run_plugin hook).", ExitCode.USAGE)
        context = PluginContext(settings=ctx.settings, org=organization, engine=ctx.engine)
        runs = call_isolated(plugins, "run_plugin", only=name, context=context, full=full, dry_run=dry_run)
    finally:
        ctx.engine.dispose()
    run = runs[0]
    if as_json:
        print_json({**run.as_record(), "details": list(run.details), "full": full, "dry_run": dry_run})
    elif not quiet:
        _render(run)
    if run.status == "failed":
        raise fail(f"{run.name} failed: {run.error or 'no reason given'}", ExitCode.FAILED)


def _render(run: PluginRun) -> None:
    out = stdout
    out.print(f"{run.name}: {run.status} ({run.duration_ms / 1000:.1f} s)", highlight=False, markup=False)
    counts = {key: value for key, value in run.counts.items() if value}
    if counts:
        out.print("  " + ", ".join(f"{key} {value}" for key, value in counts.items()), highlight=False,
                  markup=False)
    message = run.message
    if message and message != run.error:
        for line in message.splitlines():
            out.print(f"  {line}", highlight=False, markup=False)
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in run.details:
        groups.setdefault(str(item.get("kind", "details")), []).append(item)
    for kind, items in groups.items():
        out.print(f"  {kind.replace('_', ' ')} ({len(items)}):", highlight=False, markup=False)
        for item in items[:DETAIL_LINES]:
            fields = ", ".join(f"{k}: {_text(v)}" for k, v in item.items() if k != "kind")
            out.print(f"    {fields}", highlight=False, markup=False)
        if len(items) > DETAIL_LINES:
            out.print(f"    ... and {len(items) - DETAIL_LINES} more (--json shows all)", highlight=False,
                      markup=False)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SupportersyncError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
