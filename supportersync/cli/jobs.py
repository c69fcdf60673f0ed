"""`supportersync jobs list|show|prune`: the run history in sync_jobs."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table

from supportersync.cli import app
from supportersync.cli.common import CONFIG_OPTION, JSON_OPTION, fail, handle_errors, open_context, print_json, stdout
from supportersync.errors import ExitCode
from supportersync.jobs import STATUSES, get_job, list_jobs, prune_jobs
from supportersync.timeutil import parse_duration, utcnow

jobs_app = typer.Typer(help="Show and prune the run history (the sync_jobs table).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

ENTITY_NAMES = ("supporters", "transactions", "recurring_plans", "recurring-plans", "campaigns", "all")


@jobs_app.command("list")
@handle_errors
def list_command(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many jobs, newest first."),
    entity: str | None = typer.Option(None, "--entity", help="Only this entity (supporters, transactions, "
                                      "recurring-plans, campaigns, all)."),
    status: str | None = typer.Option(None, "--status", help=f"Only this status ({', '.join(STATUSES)})."),
    as_json: bool = JSON_OPTION,
    config: str | None = CONFIG_OPTION,
) -> None:
    """List recent jobs, newest first."""
    if entity is not None and entity not in ENTITY_NAMES:
        raise fail(f"--entity must be one of supporters, transactions, recurring-plans, campaigns, all; not {entity!r}.",
                   ExitCode.USAGE)
    if status is not None and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}; not {status!r}.", ExitCode.USAGE)
    ctx = open_context(config)
    stale = timedelta(seconds=ctx.settings.sync.stale_after_seconds)
    try:
        with ctx.engine.connect() as conn:
            views = list_jobs(conn, limit=limit, entity=entity.replace("-", "_") if entity else None, status=status)
    finally:
        ctx.engine.dispose()
    docs = [v.as_json(stale_after=stale) for v in views]
    if as_json:
        print_json(docs)
        return
    if not docs:
        stdout.print("no jobs recorded yet: run `supportersync run all`", highlight=False)
        return
    # Only the columns that say something, so the table fits a terminal.
    columns = ["id"]
    columns += ["org"] if len({d["org_name"] for d in docs}) > 1 else []
    columns += ["entity", "mode", "status", "started UTC", "secs", "changes"]
    columns += ["plugins"] if any(d["plugins"] for d in docs) else []
    columns += ["error"] if any(d["error"] for d in docs) else []
    table = Table(caption="changes: +inserted ~updated -deleted !failed", caption_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column not in ("error", "plugins", "changes"), overflow="fold")
    for d in docs:
        r = d["records"]
        cells = {
            "id": str(d["id"]),
            "org": d["org_name"],
            "entity": d["entity"],
            "mode": d["mode"],
            "status": d["status"] + (" (stale)" if d.get("stale") else ""),
            "started UTC": (d["started_at"] or "")[5:16].replace("T", " "),
            "secs": "" if d["duration_seconds"] is None else f"{d['duration_seconds']:.1f}",
            "changes": f"+{r['inserted']} ~{r['updated']} -{r['deleted']}" + (f" !{r['failed']}" if r["failed"] else ""),
            "plugins": ", ".join(f"{p['name']}:{p['status']}" for p in d["plugins"]),
            "error": (d["error"] or "")[:200],
        }
        table.add_row(*(cells[c] for c in columns))
    stdout.print(table)


@jobs_app.command("show")
@handle_errors
def show_command(
    job_id: int = typer.Argument(..., help="The job id (from `jobs list`)."),
    as_json: bool = JSON_OPTION,
    config: str | None = CONFIG_OPTION,
) -> None:
    """Show one job with its record-level errors and plugin outcomes."""
    ctx = open_context(config)
    try:
        with ctx.engine.connect() as conn:
            view = get_job(conn, job_id)
    finally:
        ctx.engine.dispose()
    if view is None:
        raise fail(f"There is no job {job_id}; see `supportersync jobs list`.", ExitCode.USAGE)
    doc = view.as_json(stale_after=timedelta(seconds=ctx.settings.sync.stale_after_seconds))
    doc["details"] = view.row["details"]
    doc["record_errors"] = {
        "total": view.error_count,
        "items": [{"entity": e["entity"], "source_id": e["source_id"], "reason": e["reason"], "raw": e["raw"]}
                  for e in view.errors],
    }
    doc["plugins"] = view.row["plugins"] or []
    if as_json:
        print_json(doc)
        return
    stdout.print(f"[bold]job {doc['id']}[/]: {doc['entity']} {doc['mode']} for {doc['org_name']} "
                 f"(organization {doc['organization_id']}) - [bold]{doc['status']}[/]")
    stdout.print(f"started {doc['started_at']}, finished {doc['finished_at'] or '-'}, "
                 f"on {doc['hostname']} pid {doc['pid']}", highlight=False)
    stdout.print("records: " + ", ".join(f"{k} {v}" for k, v in doc["records"].items()), highlight=False)
    stdout.print(f"requests {doc['requests']}, retries {doc['retries']}", highlight=False)
    stdout.print(f"cursor: {doc['cursor_before']} -> {doc['cursor_after']}", highlight=False, markup=False)
    if doc["error"]:
        stdout.print(f"error: {doc['error']}", highlight=False, markup=False)
    for p in doc["plugins"]:
        line = f"plugin {p.get('name')}: {p.get('status')}"
        if p.get("counts"):
            line += " (" + ", ".join(f"{k} {v}" for k, v in p["counts"].items()) + ")"
        if p.get("error"):
            line += f" - {p['error']}"
        stdout.print(line, highlight=False, markup=False)
        for item in (p.get("details") or [])[:20]:
            stdout.print("    " + ", ".join(f"{k}: {v}" for k, v in item.items()), highlight=False, markup=False)
    if view.error_count:
        stdout.print(f"record errors ({view.error_count}):")
        for e in doc["record_errors"]["items"]:
            stdout.print(f"  {e['entity']} {e['source_id'] or '(no id)'}: {e['reason']}", highlight=False,
                         markup=False)


@jobs_app.command("prune")
@handle_errors
def prune_command(
    older_than: str = typer.Option("90d", "--older-than", help="Delete finished jobs that started longer ago "
                                   "than this (e.g. 90d, 12w, 36h)."),
    config: str | None = CONFIG_OPTION,
) -> None:
    """Delete old finished jobs and their record errors, keeping the history bounded."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise fail(f"--older-than: {exc}.", ExitCode.USAGE) from None
    ctx = open_context(config)
    try:
        removed = prune_jobs(ctx.engine, utcnow() - age)
    finally:
        ctx.engine.dispose()
    stdout.print(f"pruned {removed} job(s) older than {older_than}", highlight=False)
