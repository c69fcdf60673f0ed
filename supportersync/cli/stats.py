"""`supportersync stats`: recompute supporter statistics, and look at the segments.

    stats recompute          supporters whose stats are missing, from an earlier UTC day,
                             or older than a transaction or plan a sync wrote since
    stats recompute --all    everyone (daily from cron: engagement changes with time alone)
    stats summary [--json]   counts per segment and totals
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from supportersync.cli import app
from supportersync.cli.common import (
    CONFIG_OPTION,
    JSON_OPTION,
    ORG_OPTION,
    handle_errors,
    is_terminal,
    open_context,
    print_json,
    stderr,
    stdout,
)
from supportersync.stats import load_segments, recompute, recompute_stale, summary
from supportersync.timeutil import utcnow

stats_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None)
app.add_typer(
    stats_app,
    name="stats",
    help="Supporter statistics and segments: recompute them, or summarise them.",
)

KIND_TITLES = {"value_tiers": "Value tier", "engagement": "Engagement", "frequency": "Frequency"}


@stats_app.command("recompute")
@handle_errors
def recompute_command(
    everyone: bool = typer.Option(False, "--all", help="Recompute every supporter (run daily from cron)."),
    org: str | None = ORG_OPTION,
    config: str | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recompute supporter statistics and segments.

    Without --all: only supporters whose stats are missing, were computed on an earlier
    (UTC) day, or are older than one of their transactions or plans. Prints nothing under
    cron unless --json.
    """
    ctx = open_context(config)
    try:
        organization_id = ctx.org(org).organization_id
        segments = load_segments(ctx.settings.segments)
        now = utcnow()
        with ctx.engine.begin() as conn:
            if everyone:
                result = recompute(conn, organization_id, None, segments=segments, now=now)
            else:
                result = recompute_stale(conn, organization_id, segments=segments, now=now)
    finally:
        ctx.engine.dispose()
    if as_json:
        print_json({"organization_id": organization_id, "scope": "all" if everyone else "stale",
                    "computed": result.computed, "changed": len(result.changed_ids), "removed": result.removed})
    elif is_terminal():
        stderr.print(f"Recomputed {result.computed:,} supporters: {len(result.changed_ids):,} changed, "
                     f"{result.removed:,} removed.", highlight=False)


@stats_app.command("summary")
@handle_errors
def summary_command(
    org: str | None = ORG_OPTION,
    config: str | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Supporters per segment, and totals, as last computed."""
    ctx = open_context(config)
    try:
        organization_id = ctx.org(org).organization_id
        segments = load_segments(ctx.settings.segments)
        with ctx.engine.connect() as conn:
            document = summary(conn, organization_id, segments=segments)
    finally:
        ctx.engine.dispose()
    if as_json:
        print_json(document)
    else:
        _render(document)


def _render(document: dict[str, Any]) -> None:
    totals = document["totals"]
    stamp = document["computed_at"]
    overview = Table(title=f"Organization {document['organization_id']}", show_header=False, title_justify="left")
    overview.add_column("what")
    overview.add_column("value", justify="right")
    for name, value in (
        ("Supporters", f"{document['supporters']:,}"),
        ("Donors (at least one gift)", f"{document['donors']:,}"),
        ("Lifetime amount", f"{totals['lifetime_amount']:,}"),
        ("Gifts", f"{totals['lifetime_count']:,}"),
        ("Last 12 months: amount", f"{totals['last_12_months_amount']:,}"),
        ("Last 12 months: gifts", f"{totals['last_12_months_count']:,}"),
        ("Active recurring plans", f"{totals['active_plans_count']:,}"),
        ("Monthly recurring amount", f"{totals['monthly_recurring_amount']:,}"),
        ("Oldest computation", stamp["oldest"] or "-"),
        ("Newest computation", stamp["newest"] or "-"),
    ):
        overview.add_row(name, value)
    stdout.print(overview)
    if totals["active_plans_with_unknown_frequency"]:
        stderr.print(f"Active plans with a frequency supportersync does not know: "
                     f"{totals['active_plans_with_unknown_frequency']:,}. They add nothing to the monthly amount "
                     "(see docs/segments.md).", highlight=False)
    for kind, rows in document["segments"].items():
        table = Table(title=KIND_TITLES.get(kind, kind), title_justify="left")
        table.add_column("Segment")
        table.add_column("Supporters", justify="right")
        table.add_column("Lifetime amount", justify="right")
        for row in rows:
            table.add_row(row["label"], f"{row['supporters']:,}", f"{row['lifetime_amount']:,}")
        stdout.print(table)
