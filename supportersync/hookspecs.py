"""The plugin contract.

Plugins are modules or objects registered under the entry-point group
``supportersync`` (the entry-point name is the plugin's name) and implement any of
the hooks below, decorated with :data:`supportersync.hookimpl`.

Lifecycle:

1. ``plugin_status`` — asked by ``supportersync plugins list``: is the plugin configured?
2. ``check_plugin`` — ``supportersync plugins test NAME``: check settings and credentials.
3. ``on_sync_completed`` — after every sync whose data is committed.
4. ``run_plugin`` — ``supportersync plugins run NAME [--full] [--dry-run]``: on demand.

Hooks receive frozen dataclasses, so fields can be added later without breaking
plugins. A plugin keeps its own progress (in its own tables): if it fails, or the
process dies before the hooks run, the next call must catch up on what it missed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from supportersync.config import OrgSettings, Settings

PROJECT = "supportersync"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class SyncResult:
    """What a completed sync did; handed to ``on_sync_completed``."""

    job_id: int
    organization_id: int
    org_name: str
    entity: str
    """supporters, transactions, recurring_plans, campaigns, or all."""
    mode: str
    """incremental or full."""
    status: str
    """succeeded or partial (record-level failures); failed syncs call no hooks."""
    counts: dict[str, int]
    """fetched, inserted, updated, unchanged, deleted, failed."""
    supporters_inserted: frozenset[int] = frozenset()
    supporters_updated: frozenset[int] = frozenset()
    supporters_deleted: frozenset[int] = frozenset()
    stats_changed: frozenset[int] = frozenset()
    """Supporters whose giving statistics or segment labels changed in this run."""
    window_start: datetime | None = None
    """The source `updated_at` the run started from (None for a full sync)."""
    window_end: datetime | None = None
    """Everything changed at the source before this instant is stored."""

    @property
    def supporters_changed(self) -> frozenset[int]:
        """Every supporter a plugin may want to push again."""
        return self.supporters_inserted | self.supporters_updated | self.supporters_deleted | self.stats_changed


@dataclass(frozen=True)
class PluginContext:
    """What a plugin may use: settings, the organization, the database."""

    settings: Settings
    org: OrgSettings
    engine: Engine
    job_id: int | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("supportersync.plugins"))


@dataclass(frozen=True)
class PluginOutcome:
    """What one plugin call did; recorded with the job."""

    status: str
    """succeeded, partial (some items rejected, recorded), failed, or skipped (not configured)."""
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    details: tuple[dict[str, Any], ...] = ()
    """Items worth showing (e.g. rejected members with the reason); kept short."""


@dataclass(frozen=True)
class PluginCheckItem:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class PluginCheck:
    """The report of ``plugins test``: usable or not, and each check's verdict."""

    ok: bool
    items: tuple[PluginCheckItem, ...] = ()
    problem: str | None = None
    """The exact problem when not ok (never containing a secret)."""


@dataclass(frozen=True)
class PluginStatus:
    configured: bool
    detail: str = ""


@hookspec(firstresult=True)
def plugin_status(context: PluginContext) -> PluginStatus | None:
    """Say whether the plugin is configured for this organization.

    :param context: settings, organization and database.
    :return: the status; ``None`` counts as configured.
    """


@hookspec(firstresult=True)
def check_plugin(context: PluginContext) -> PluginCheck | None:
    """Check configuration and credentials without changing anything (``plugins test``).

    :param context: settings, organization and database.
    :return: the report.
    """


@hookspec
def on_sync_completed(result: SyncResult, context: PluginContext) -> PluginOutcome | None:
    """React to a completed sync; its data is committed before this runs.

    An exception is recorded as the plugin's failure and never stops other plugins
    or undoes the sync.

    :param result: what the sync did.
    :param context: settings, organization and database.
    :return: the outcome to record with the job (``None``: nothing to report).
    """


@hookspec(firstresult=True)
def run_plugin(context: PluginContext, full: bool, dry_run: bool) -> PluginOutcome | None:
    """Run the plugin on demand (``plugins run NAME``).

    :param context: settings, organization and database.
    :param full: reconsider everything, not only what changed since the last run.
    :param dry_run: compute and report the plan, send nothing, change nothing.
    :return: the outcome (with the plan in ``details`` for a dry run).
    """
