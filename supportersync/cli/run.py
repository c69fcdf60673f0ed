"""`supportersync run ENTITY [--incremental|--full]`: one sync, for cron or by hand."""

from __future__ import annotations

import logging
from enum import Enum

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from supportersync.cli import EPILOG, app
from supportersync.cli.common import CONFIG_OPTION, ORG_OPTION, handle_errors, is_terminal, open_context, stderr
from supportersync.engine import RunOutcome, run_sync
from supportersync.jobs import Counts
from supportersync.logs import setup_logging
from supportersync.plugins import make_plugin_manager


class EntityChoice(str, Enum):
    supporters = "supporters"
    transactions = "transactions"
    recurring_plans = "recurring-plans"
    campaigns = "campaigns"
    all = "all"

    @property
    def key(self) -> str:
        return self.value.replace("-", "_")


class LogFormat(str, Enum):
    text = "text"
    json = "json"


def log_level(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


@app.command("run", epilog=EPILOG)
@handle_errors
def run_command(
    entity: EntityChoice = typer.Argument(..., help="What to sync; `all` runs campaigns, supporters, "
                                          "recurring plans and transactions, in that order."),
    incremental: bool = typer.Option(True, "--incremental/--full",
                                     help="Incremental (default: what changed since the cursor) or full "
                                     "(everything, and marks records gone at the source as deleted). The first "
                                     "run of an entity is always full."),
    org: str | None = ORG_OPTION,
    config: str | None = CONFIG_OPTION,
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log lines on stderr (-vv: debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    log_format: LogFormat | None = typer.Option(None, "--log-format",
                                                help="text or json log lines (env SUPPORTERSYNC_LOG_FORMAT)."),
) -> None:
    """Run one sync and record it in sync_jobs, then let plugins react.

    Without a terminal (cron) a successful run prints nothing; a failure prints a short
    explanation to stderr. The exit code says what happened.
    """
    ctx = open_context(config)
    fmt = log_format.value if log_format else ctx.settings.log_format
    setup_logging(fmt, log_level(verbose, quiet))
    organization = ctx.org(org)
    plugins = make_plugin_manager(ctx.settings.load_plugins)  # logs any plugin that fails to load
    mode = "incremental" if incremental else "full"
    terminal = is_terminal() and not quiet
    try:
        if terminal:
            with _progress() as (callback):
                outcome = run_sync(ctx.settings, organization, ctx.engine, entity.key, mode, plugins=plugins,
                                   progress=callback)
        else:
            outcome = run_sync(ctx.settings, organization, ctx.engine, entity.key, mode, plugins=plugins)
    finally:
        ctx.engine.dispose()
    if terminal:
        _summary(outcome)
    elif outcome.exit_code and fmt == "json":
        # JSON lines only, so a log collector never meets a stray line of text.
        logging.getLogger("supportersync.run").error(_explain(outcome), extra={"job_id": outcome.job_id})
    elif outcome.exit_code:
        stderr.print(_explain(outcome), highlight=False, markup=False)
    raise typer.Exit(int(outcome.exit_code))


class _progress:
    """A rich progress display on stderr, one bar per entity."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.display = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=stderr, transient=True)
        self.tasks: dict[str, int] = {}
        self.display.__enter__()
        return self.update

    def update(self, entity: str, counts: Counts, total: int | None) -> None:
        if entity not in self.tasks:
            self.tasks[entity] = self.display.add_task(entity, total=total)
        self.display.update(self.tasks[entity], completed=counts.fetched, total=total or None)

    def __exit__(self, *exc: object) -> None:
        self.display.__exit__(None, None, None)


def _summary(outcome: RunOutcome) -> None:
    table = Table(title=f"job {outcome.job_id}: {outcome.status}", title_justify="left")
    for column in ("entity", "mode", "fetched", "inserted", "updated", "unchanged", "deleted", "failed"):
        table.add_column(column, justify="right" if column not in ("entity", "mode") else "left")
    for r in outcome.entities:
        c = r.counts
        table.add_row(r.entity, r.mode, *(str(v) for v in (c.fetched, c.inserted, c.updated, c.unchanged,
                                                            c.deleted, c.failed)))
    stderr.print(table)
    if outcome.stats_changed_ids:
        stderr.print(f"statistics changed for {len(outcome.stats_changed_ids)} supporter(s)")
    for p in outcome.plugins:
        stderr.print(f"plugin {p.name}: {p.status}" + (f" - {p.error}" if p.error else ""), highlight=False,
                     markup=False)
    if outcome.exit_code:
        stderr.print(_explain(outcome), highlight=False, markup=False)


def _explain(outcome: RunOutcome) -> str:
    if outcome.status == "skipped":
        return f"skipped (job {outcome.job_id}): {outcome.error}"
    lines = [f"job {outcome.job_id} {outcome.status}: {outcome.error}" if outcome.error
             else f"job {outcome.job_id} {outcome.status}"]
    lines += [f"plugin {p.name} failed: {p.error}" for p in outcome.plugins if p.status == "failed"]
    return "\n".join(lines)
