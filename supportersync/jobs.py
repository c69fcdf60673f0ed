"""The sync_jobs lifecycle: start, heartbeat, finish, abandon, and reading history.

A job row is written when a run starts (`running`) and updated when it ends. A run
killed by kill -9 or a reboot leaves a `running` row behind; the next run that takes
the same lock knows nobody holds it any more and marks that row `abandoned`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from supportersync.db.schema import sync_errors, sync_jobs, sync_seen
from supportersync.timeutil import isoformat, utcnow

STATUSES = ("running", "succeeded", "partial", "failed", "skipped", "abandoned")
COUNT_FIELDS = ("fetched", "inserted", "updated", "unchanged", "deleted", "failed")
MAX_RAW_ERROR_CHARS = 20_000


@dataclass
class Counts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0

    def add(self, other: Counts) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_FIELDS}


@dataclass
class RecordError:
    entity: str
    source_id: str | None
    reason: str
    raw: Any = None


def start_job(engine: Engine, *, organization_id: int, org_name: str, entity: str, mode: str,
              status: str = "running", error: str | None = None,
              cursor_before: Any = None) -> int:
    now = utcnow()
    with engine.begin() as conn:
        return int(conn.execute(
            sa.insert(sync_jobs).values(
                organization_id=organization_id, org_name=org_name, entity=entity, mode=mode,
                status=status, started_at=now, heartbeat_at=now,
                finished_at=now if status != "running" else None,
                error=error, cursor_before=cursor_before,
                hostname=socket.gethostname()[:255], pid=os.getpid(),
            ).returning(sync_jobs.c.id)
        ).scalar_one())


def heartbeat(conn: Connection, job_id: int, *, counts: Counts | None = None, requests: int | None = None,
              retries: int | None = None) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if counts is not None:
        values.update(counts.as_dict())
    if requests is not None:
        values["requests"] = requests
    if retries is not None:
        values["retries"] = retries
    conn.execute(sa.update(sync_jobs).where(sync_jobs.c.id == job_id).values(**values))


def record_errors(conn: Connection, job_id: int, organization_id: int, errors: Iterable[RecordError]) -> None:
    rows = [
        {
            "job_id": job_id,
            "organization_id": organization_id,
            "entity": e.entity,
            "source_id": None if e.source_id is None else str(e.source_id)[:64],
            "reason": e.reason,
            "raw": _raw_text(e.raw),
            "created_at": utcnow(),
        }
        for e in errors
    ]
    if rows:
        conn.execute(sa.insert(sync_errors), rows)


def _raw_text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str, ensure_ascii=False)
    return text[:MAX_RAW_ERROR_CHARS]


def finish_job(engine: Engine, job_id: int, *, status: str, counts: Counts, mode: str | None = None,
               requests: int = 0, retries: int = 0,
               error: str | None = None, cursor_before: Any = None, cursor_after: Any = None,
               window_start: datetime | None = None, window_end: datetime | None = None,
               details: Mapping[str, Any] | None = None) -> None:
    assert status in STATUSES
    extra = {"mode": mode} if mode else {}
    with engine.begin() as conn:
        conn.execute(
            sa.update(sync_jobs).where(sync_jobs.c.id == job_id).values(
                **extra,
                status=status, finished_at=utcnow(), heartbeat_at=utcnow(), error=error,
                requests=requests, retries=retries, cursor_before=cursor_before, cursor_after=cursor_after,
                window_start=window_start, window_end=window_end,
                details=dict(details) if details is not None else None,
                **counts.as_dict(),
            )
        )
        conn.execute(sa.delete(sync_seen).where(sync_seen.c.job_id == job_id))


def set_plugin_outcomes(engine: Engine, job_id: int, outcomes: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(sync_jobs).where(sync_jobs.c.id == job_id).values(plugins=outcomes))


def abandon_running(engine: Engine, organization_id: int, entities: Iterable[str], *, except_job: int) -> list[int]:
    """Mark `running` jobs of these entities abandoned; call only while holding their locks.

    Whoever held the lock for them is gone (the lock would still be held otherwise), so
    their rows can never be finished by their owner.
    """
    entity_list = list(entities)
    with engine.begin() as conn:
        ids = list(conn.execute(
            sa.select(sync_jobs.c.id).where(
                sync_jobs.c.organization_id == organization_id,
                sync_jobs.c.entity.in_(entity_list),
                sync_jobs.c.status == "running",
                sync_jobs.c.id != except_job,
            )
        ).scalars())
        if ids:
            conn.execute(
                sa.update(sync_jobs).where(sync_jobs.c.id.in_(ids)).values(
                    status="abandoned", finished_at=utcnow(),
                    error="The process running this job stopped without finishing it (killed or rebooted); "
                          "the next run resumed from the last committed page.",
                )
            )
            conn.execute(sa.delete(sync_seen).where(sync_seen.c.job_id.in_(ids)))
    return ids


# -- reading -------------------------------------------------------------------------


@dataclass
class JobView:
    row: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0

    def as_json(self, *, stale_after: timedelta | None = None) -> dict[str, Any]:
        r = self.row
        doc = {
            "id": r["id"],
            "organization_id": r["organization_id"],
            "org_name": r["org_name"],
            "entity": r["entity"],
            "mode": r["mode"],
            "status": r["status"],
            "started_at": isoformat(r["started_at"]),
            "finished_at": isoformat(r["finished_at"]),
            "heartbeat_at": isoformat(r["heartbeat_at"]),
            "duration_seconds": _duration(r),
            "records": {name: r[name] for name in COUNT_FIELDS},
            "requests": r["requests"],
            "retries": r["retries"],
            "cursor_before": r["cursor_before"],
            "cursor_after": r["cursor_after"],
            "window_start": isoformat(r["window_start"]),
            "window_end": isoformat(r["window_end"]),
            "error": r["error"],
            "plugins": [
                {k: p.get(k) for k in ("name", "status", "error", "counts", "duration_ms")}
                for p in (r["plugins"] or [])
            ],
            "hostname": r["hostname"],
            "pid": r["pid"],
        }
        if stale_after is not None and r["status"] == "running" and r["heartbeat_at"] is not None:
            doc["stale"] = utcnow() - r["heartbeat_at"] > stale_after
        return doc


def _duration(row: Mapping[str, Any]) -> float | None:
    if row["finished_at"] is None:
        return None
    return round((row["finished_at"] - row["started_at"]).total_seconds(), 3)


def list_jobs(conn: Connection, *, limit: int = 20, entity: str | None = None, status: str | None = None,
              organization_id: int | None = None) -> list[JobView]:
    query = sa.select(sync_jobs).order_by(sync_jobs.c.id.desc()).limit(limit)
    if entity:
        query = query.where(sync_jobs.c.entity == entity)
    if status:
        query = query.where(sync_jobs.c.status == status)
    if organization_id is not None:
        query = query.where(sync_jobs.c.organization_id == organization_id)
    return [JobView(dict(row._mapping)) for row in conn.execute(query)]


def get_job(conn: Connection, job_id: int, *, error_limit: int = 100) -> JobView | None:
    row = conn.execute(sa.select(sync_jobs).where(sync_jobs.c.id == job_id)).first()
    if row is None:
        return None
    errors = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(sync_errors.c.entity, sync_errors.c.source_id, sync_errors.c.reason, sync_errors.c.raw,
                      sync_errors.c.created_at)
            .where(sync_errors.c.job_id == job_id).order_by(sync_errors.c.id).limit(error_limit)
        )
    ]
    count = conn.execute(
        sa.select(sa.func.count()).select_from(sync_errors).where(sync_errors.c.job_id == job_id)
    ).scalar_one()
    return JobView(dict(row._mapping), errors, count)


def prune_jobs(engine: Engine, older_than: datetime) -> int:
    """Delete finished jobs (and their record errors) that started before `older_than`."""
    with engine.begin() as conn:
        prunable = sa.select(sync_jobs.c.id).where(
            sync_jobs.c.started_at < older_than, sync_jobs.c.status != "running"
        )
        # SQLite does not enforce ON DELETE CASCADE unless asked to: delete children first.
        conn.execute(sa.delete(sync_errors).where(sync_errors.c.job_id.in_(prunable)))
        result = conn.execute(sa.delete(sync_jobs).where(sync_jobs.c.id.in_(prunable)))
        return int(result.rowcount or 0)
