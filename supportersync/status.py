"""Health from the run history: how old is the data, did the last run fail, how are the plugins.

Read from `sync_jobs` (and `sync_cursors`) only; nothing is written, Classy is not called.
Per organization and entity:

- *data age*: now minus `finished_at` of the last successful run (status `succeeded` or
  `partial`) of that entity; a run of `all` counts for each of the four entities.
- *last run*: the newest run that is not `skipped` (another run held the lock) and not
  still `running` with a fresh heartbeat. `failed` or `abandoned` is a problem, and so is
  a `running` job whose heartbeat is older than `sync.stale_after_seconds`.
- *stale data*: with a maximum age, data older than it (or never synced) is a problem.

Per plugin, the outcome recorded with the newest job that ran plugins; `failed` is a
problem (`partial` means some members were refused and recorded, not a failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from supportersync.db.schema import sync_cursors, sync_jobs
from supportersync.timeutil import isoformat

ENTITIES = ("campaigns", "supporters", "recurring_plans", "transactions")
SUCCESS = ("succeeded", "partial")
FAILURE = ("failed", "abandoned")
PLUGIN_LOOKBACK = 50
"""How many of the newest jobs with plugin outcomes are searched for each plugin's latest."""


@dataclass(frozen=True)
class JobRef:
    id: int
    entity: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: str | None

    @classmethod
    def from_row(cls, row: Any) -> JobRef:
        m = row._mapping
        return cls(m["id"], m["entity"], m["mode"], m["status"], m["started_at"], m["finished_at"],
                   m["heartbeat_at"], m["error"])

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "entity": self.entity, "mode": self.mode, "status": self.status,
                "started_at": isoformat(self.started_at), "finished_at": isoformat(self.finished_at),
                "error": self.error}


@dataclass
class EntityHealth:
    entity: str
    last_success: JobRef | None = None
    age: timedelta | None = None
    last_run: JobRef | None = None
    last_failure: JobRef | None = None
    running: JobRef | None = None
    """A run in progress (fresh heartbeat)."""
    last_full_sync_at: datetime | None = None
    cursor: Any = None
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": not self.problems,
            "age_seconds": None if self.age is None else round(self.age.total_seconds(), 1),
            "last_success": self.last_success.as_json() if self.last_success else None,
            "last_run": self.last_run.as_json() if self.last_run else None,
            "last_failure": self.last_failure.as_json() if self.last_failure else None,
            "running": self.running.as_json() if self.running else None,
            "last_full_sync_at": isoformat(self.last_full_sync_at),
            "cursor": self.cursor,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class PluginHealth:
    name: str
    status: str
    job_id: int
    at: datetime | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "job_id": self.job_id, "at": isoformat(self.at), "error": self.error}


@dataclass
class OrgHealth:
    organization_id: int
    org_name: str
    entities: dict[str, EntityHealth]
    plugins: dict[str, PluginHealth] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = [f"{self.org_name}/{e.entity}: {p}" for e in self.entities.values() for p in e.problems]
        out += [f"{self.org_name}: plugin {p.name} failed in job {p.job_id}" + (f": {p.error}" if p.error else "")
                for p in self.plugins.values() if p.status == "failed"]
        return out

    def as_json(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id, "org_name": self.org_name,
                "healthy": not self.problems,
                "entities": {name: e.as_json() for name, e in self.entities.items()},
                "plugins": {name: p.as_json() for name, p in self.plugins.items()}}


@dataclass
class Health:
    checked_at: datetime
    max_age: timedelta | None
    organizations: list[OrgHealth]

    @property
    def problems(self) -> list[str]:
        out = [p for org in self.organizations for p in org.problems]
        if not self.organizations and self.max_age is not None:
            out.append("no organization is configured and no run is recorded: nothing has been synced")
        return out

    @property
    def healthy(self) -> bool:
        return not self.problems

    def oldest(self) -> timedelta | None:
        ages = [e.age for o in self.organizations for e in o.entities.values() if e.age is not None]
        return max(ages) if ages else None

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checked_at": isoformat(self.checked_at),
            "max_age_seconds": None if self.max_age is None else int(self.max_age.total_seconds()),
            "problems": self.problems,
            "organizations": [o.as_json() for o in self.organizations],
        }


def check_health(conn: Connection, *, now: datetime, configured: Mapping[int, str],
                 max_age: timedelta | None = None, stale_after: timedelta = timedelta(seconds=900),
                 only: int | None = None) -> Health:
    """The health of every configured organization and every one with recorded runs.

    :param configured: organization id -> name, from the settings.
    :param only: report this organization id alone (`--org`).
    """
    names = dict(_recorded_organizations(conn))
    names.update(configured)
    ids = [only] if only is not None else sorted(names)
    organizations = []
    for organization_id in ids:
        entities = {entity: _entity_health(conn, organization_id, entity, now=now, max_age=max_age,
                                           stale_after=stale_after) for entity in ENTITIES}
        organizations.append(OrgHealth(organization_id, names.get(organization_id, str(organization_id)), entities,
                                       _plugin_health(conn, organization_id)))
    return Health(now, max_age, organizations)


def _recorded_organizations(conn: Connection) -> Iterable[tuple[int, str]]:
    newest = sa.select(sync_jobs.c.organization_id, sa.func.max(sync_jobs.c.id).label("id")).group_by(
        sync_jobs.c.organization_id).subquery()
    query = sa.select(sync_jobs.c.organization_id, sync_jobs.c.org_name).join(newest, newest.c.id == sync_jobs.c.id)
    return [(row.organization_id, row.org_name) for row in conn.execute(query)]


def _newest(conn: Connection, organization_id: int, entity: str, condition: Any) -> JobRef | None:
    row = conn.execute(
        sa.select(sync_jobs).where(sync_jobs.c.organization_id == organization_id,
                                   sync_jobs.c.entity.in_((entity, "all")), condition)
        .order_by(sync_jobs.c.started_at.desc(), sync_jobs.c.id.desc()).limit(1)
    ).first()
    return JobRef.from_row(row) if row is not None else None


def _entity_health(conn: Connection, organization_id: int, entity: str, *, now: datetime,
                   max_age: timedelta | None, stale_after: timedelta) -> EntityHealth:
    health = EntityHealth(entity)
    health.last_success = _newest(conn, organization_id, entity, sync_jobs.c.status.in_(SUCCESS))
    health.last_failure = _newest(conn, organization_id, entity, sync_jobs.c.status.in_(FAILURE))
    fresh_beat = now - stale_after
    running = _newest(conn, organization_id, entity, sa.and_(sync_jobs.c.status == "running",
                                                               sync_jobs.c.heartbeat_at >= fresh_beat))
    health.running = running
    # The newest run that has an outcome, or has stopped beating (killed without a trace).
    health.last_run = _newest(conn, organization_id, entity, sa.or_(
        sync_jobs.c.status.in_(SUCCESS + FAILURE),
        sa.and_(sync_jobs.c.status == "running", sync_jobs.c.heartbeat_at < fresh_beat)))
    cursor = conn.execute(sa.select(sync_cursors.c.cursor, sync_cursors.c.last_full_sync_at).where(
        sync_cursors.c.organization_id == organization_id, sync_cursors.c.entity == entity)).first()
    if cursor is not None:
        health.cursor, health.last_full_sync_at = cursor.cursor, cursor.last_full_sync_at

    if health.last_success is not None:
        finished = health.last_success.finished_at or health.last_success.started_at
        health.age = max(now - finished, timedelta(0))
    last = health.last_run
    if last is not None and last.status in FAILURE:
        when = _short(last.finished_at or last.started_at)
        health.problems.append(f"the last run failed (job {last.id}, {last.status} at {when})"
                               + (f": {last.error}" if last.error else ""))
    elif last is not None and last.status == "running":
        health.problems.append(f"job {last.id} stopped reporting progress at {_short(last.heartbeat_at)} without "
                               "finishing (killed?); the next run marks it abandoned and resumes")
    if max_age is not None:
        if health.age is None:
            health.problems.append("never synced successfully")
        elif health.age > max_age:
            health.problems.append(f"data is {format_age(health.age)} old, older than the maximum "
                                   f"{format_age(max_age)}")
    return health


def _plugin_health(conn: Connection, organization_id: int) -> dict[str, PluginHealth]:
    rows = conn.execute(
        sa.select(sync_jobs.c.id, sync_jobs.c.finished_at, sync_jobs.c.plugins)
        .where(sync_jobs.c.organization_id == organization_id, sync_jobs.c.plugins.is_not(None))
        .order_by(sync_jobs.c.id.desc()).limit(PLUGIN_LOOKBACK)
    )
    out: dict[str, PluginHealth] = {}
    for row in rows:
        for outcome in row.plugins or []:
            name = str(outcome.get("name") or "?")
            if name not in out:
                out[name] = PluginHealth(name, str(outcome.get("status")), row.id, row.finished_at,
                                         outcome.get("error"))
    return dict(sorted(out.items()))


def format_age(age: timedelta) -> str:
    """`45s`, `12m`, `3h 04m`, `2d 05h`."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"
