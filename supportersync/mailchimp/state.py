"""The plugin's own progress, in its own tables (mailchimp_members, mailchimp_audiences).

Everything here is keyed by (organization, audience): pointing the plugin at another
audience starts from a clean slate there. Rows are written in chunks as results come
in, so a run that dies halfway keeps what it did, and the next run plans from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from supportersync.db.schema import mailchimp_audiences, mailchimp_members
from supportersync.timeutil import utcnow

WRITE_CHUNK = 1000


@dataclass
class MemberState:
    """What we know of one audience member (mutable while a run works on it)."""

    subscriber_hash: str
    email_address: str
    supporter_id: int | None = None
    managed: bool = False
    """True once this tool has written the member (it carries the ownership tag)."""
    remote_status: str | None = None
    """Last known Mailchimp status, including "archived"; None: not known to exist."""
    remote_reason: str | None = None
    remote_changed_at: datetime | None = None
    applied_hash: str | None = None
    applied_tags: tuple[str, ...] | None = None
    """Managed tags last applied (None: never tagged by us)."""
    applied_at: datetime | None = None
    rejected_reason: str | None = None
    rejected_hash: str | None = None
    rejected_at: datetime | None = None

    def row(self, organization_id: int, audience_id: str, now: datetime) -> dict[str, Any]:
        return {
            "organization_id": organization_id,
            "audience_id": audience_id,
            "subscriber_hash": self.subscriber_hash,
            "email_address": self.email_address,
            "supporter_id": self.supporter_id,
            "managed": self.managed,
            "remote_status": self.remote_status,
            "remote_reason": self.remote_reason,
            "remote_changed_at": self.remote_changed_at,
            "applied_hash": self.applied_hash,
            "applied_tags": list(self.applied_tags) if self.applied_tags is not None else None,
            "applied_at": self.applied_at,
            "rejected_reason": self.rejected_reason,
            "rejected_hash": self.rejected_hash,
            "rejected_at": self.rejected_at,
            "updated_at": now,
        }


@dataclass
class AudienceState:
    pulled_until: datetime | None = None
    last_push_at: datetime | None = None
    last_full_push_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Store:
    """Reads and writes one organization's state for one audience."""

    engine: Engine
    organization_id: int
    audience_id: str

    def load_members(self) -> dict[str, MemberState]:
        m = mailchimp_members
        query = sa.select(m).where(m.c.organization_id == self.organization_id,
                                   m.c.audience_id == self.audience_id)
        with self.engine.connect() as conn:
            return {row.subscriber_hash: _member(row) for row in conn.execute(query)}

    def save_members(self, members: Iterable[MemberState]) -> int:
        """Upsert these members, in chunks, each chunk its own transaction."""
        now = utcnow()
        rows = [member.row(self.organization_id, self.audience_id, now) for member in members]
        for start in range(0, len(rows), WRITE_CHUNK):
            with self.engine.begin() as conn:
                _upsert(conn, mailchimp_members, rows[start:start + WRITE_CHUNK],
                        ("organization_id", "audience_id", "subscriber_hash"))
        return len(rows)

    def load_audience(self) -> AudienceState:
        a = mailchimp_audiences
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(a).where(a.c.organization_id == self.organization_id,
                                                  a.c.audience_id == self.audience_id)).first()
        if row is None:
            return AudienceState()
        return AudienceState(row.pulled_until, row.last_push_at, row.last_full_push_at)

    def save_audience(self, **values: datetime | None) -> None:
        current = self.load_audience()
        row = {
            "organization_id": self.organization_id,
            "audience_id": self.audience_id,
            "pulled_until": values.get("pulled_until", current.pulled_until),
            "last_push_at": values.get("last_push_at", current.last_push_at),
            "last_full_push_at": values.get("last_full_push_at", current.last_full_push_at),
            "updated_at": utcnow(),
        }
        with self.engine.begin() as conn:
            _upsert(conn, mailchimp_audiences, [row], ("organization_id", "audience_id"))


def _member(row: Any) -> MemberState:
    tags = row.applied_tags
    return MemberState(
        subscriber_hash=row.subscriber_hash,
        email_address=row.email_address,
        supporter_id=row.supporter_id,
        managed=bool(row.managed),
        remote_status=row.remote_status,
        remote_reason=row.remote_reason,
        remote_changed_at=row.remote_changed_at,
        applied_hash=row.applied_hash,
        applied_tags=tuple(tags) if tags is not None else None,
        applied_at=row.applied_at,
        rejected_reason=row.rejected_reason,
        rejected_hash=row.rejected_hash,
        rejected_at=row.rejected_at,
    )


def _upsert(conn: Connection, table: sa.Table, rows: list[Mapping[str, Any]], keys: tuple[str, ...]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in rows[0] if name not in keys},
    )
    conn.execute(stmt, list(rows))
