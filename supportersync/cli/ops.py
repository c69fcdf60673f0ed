"""`supportersync status` and `supportersync cron`: monitoring and scheduling."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table

from supportersync.cli import app
from supportersync.cli.common import (
    CONFIG_OPTION,
    JSON_OPTION,
    ORG_OPTION,
    fail,
    handle_errors,
    open_context,
    print_json,
    settings_from,
    stderr,
    stdout,
)
from supportersync.cronfile import find_executable, render_crontab
from supportersync.errors import ExitCode
from supportersync.status import Health, check_health, format_age
from supportersync.timeutil import parse_duration, utcnow

STATUS_EPILOG = (
    "Exit codes: 0 healthy; 1 a problem (data older than --max-age or never synced, the last run failed or "
    "stopped without finishing, a plugin failed in its last run); 2 usage or configuration error."
)


@app.command("status", epilog=STATUS_EPILOG)
@handle_errors
def status_command(
    max_age: str | None = typer.Option(None, "--max-age", help="Report a problem when an entity's last successful "
                                       "sync finished longer ago than this (e.g. 45m, 2h, 1d)."),
    org: str | None = ORG_OPTION,
    as_json: bool = JSON_OPTION,
    config: str | None = CONFIG_OPTION,
) -> None:
    """How fresh the data is, per organization and entity, and whether the last runs worked.

    Reads sync_jobs only (no call to Classy, nothing written), so monitoring (Nagios,
    healthchecks.io, a cron `|| alert`) can run it as often as it likes. The first line
    says OK or PROBLEM.
    """
    limit: timedelta | None = None
    if max_age is not None:
        try:
            limit = parse_duration(max_age)
        except ValueError as exc:
            raise fail(f"--max-age: {exc}.", ExitCode.USAGE) from None
    ctx = open_context(config)
    configured = {o.classy.organization_id: name for name, o in ctx.settings.organizations.items()
                  if o.classy.organization_id}
    only = ctx.org(org).organization_id if org else None
    try:
        with ctx.engine.connect() as conn:
            health = check_health(conn, now=utcnow(), configured=configured, max_age=limit, only=only,
                                  stale_after=timedelta(seconds=ctx.settings.sync.stale_after_seconds))
    finally:
        ctx.engine.dispose()
    if as_json:
        print_json(health.as_json())
    else:
        _render(health)
    raise typer.Exit(int(ExitCode.OK if health.healthy else ExitCode.FAILED))


def _render(health: Health) -> None:
    oldest = health.oldest()
    scope = f"{len(health.organizations)} organization(s)"
    limit = f" (max {format_age(health.max_age)})" if health.max_age is not None else ""
    if health.healthy:
        stdout.print(f"OK: {scope}, oldest data {format_age(oldest) if oldest is not None else '-'}{limit}",
                     highlight=False, markup=False)
    else:
        stdout.print(f"PROBLEM: {health.problems[0]}" + (f" (+{len(health.problems) - 1} more)"
                                                         if len(health.problems) > 1 else ""),
                     highlight=False, markup=False)
    if not health.organizations:
        stdout.print("No organization is configured and no run is recorded yet.", highlight=False)
    for org in health.organizations:
        table = Table(title=f"{org.org_name} (organization {org.organization_id})", title_justify="left")
        for column in ("entity", "last success", "age", "last run", "last failure (UTC)", "last full sync (UTC)",
                       "state"):
            table.add_column(column, overflow="fold")
        for e in org.entities.values():
            success = e.last_success
            last = e.last_run
            failure = e.last_failure
            state = "running (job %d)" % e.running.id if e.running else ("ok" if not e.problems else "PROBLEM")
            table.add_row(
                e.entity,
                f"job {success.id} {success.mode}" if success else "never",
                format_age(e.age) if e.age is not None else "-",
                f"job {last.id} {last.status}" if last else "-",
                f"job {failure.id} {failure.status} {_when(failure.finished_at or failure.started_at)}"
                if failure else "-",
                _when(e.last_full_sync_at) if e.last_full_sync_at else "-",
                state,
            )
        stdout.print(table)
        if org.plugins:
            stdout.print("plugins: " + "; ".join(
                f"{p.name} {p.status} (job {p.job_id})" + (f": {p.error}" if p.error else "")
                for p in org.plugins.values()), highlight=False, markup=False)
    for problem in health.problems:
        stdout.print(f"problem: {problem}", highlight=False, markup=False)


def _when(moment: object) -> str:
    return moment.strftime("%m-%d %H:%M") if hasattr(moment, "strftime") else "-"  # type: ignore[union-attr]


@app.command("cron")
@handle_errors
def cron_command(
    log_file: Path | None = typer.Option(None, "--log-file", help="Append every job's output to this file "
                                         "(default: cron mails it to MAILTO)."),
    config: str | None = CONFIG_OPTION,
) -> None:
    """Print a crontab for this installation: absolute paths, the settings cron needs, the schedule.

    An incremental sync every 15 minutes, a daily full sync and statistics recompute, a
    weekly `jobs prune --older-than 90d`. Install it with `crontab FILE` or paste it into
    `crontab -e`. Nothing is installed by this command.
    """
    settings = settings_from(config)
    plan = render_crontab(settings, env=os.environ, executable=find_executable(),
                          user=getpass.getuser(), host=socket.gethostname(),
                          log_file=log_file.expanduser().absolute() if log_file else None)
    typer.echo(plan.text, nl=False)
    for warning in plan.warnings:
        stderr.print(f"warning: {warning}", highlight=False, markup=False)
