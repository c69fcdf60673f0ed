"""The tables, as SQLAlchemy Core metadata.

Entity tables key rows by (organization_id, id): an agency can sync several Classy
organizations into one database. Every entity row keeps the source's own
`created_at`/`updated_at` (never local time), `deleted_at` (set only when a full sync
finds the record gone at the source), `synced_at` (when we last wrote a change), the
raw JSON, and `raw_hash`, the digest of the raw JSON that lets a re-sync skip
unchanged rows.

The migrations in supportersync/db/migrations create exactly this; a test compares them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from supportersync.timeutil import ensure_utc

metadata = sa.MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python on every database.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so we store naive UTC
    text there (fixed width, so it sorts like the instants it names) and put the zone
    back when reading.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return ensure_utc(value)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Money = sa.Numeric(20, 2)
"""Exact, and wide enough for campaign goals far above 100 million."""


def _entity_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime()),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("raw", JSONType, nullable=False),
        sa.Column("raw_hash", sa.String(64), nullable=False),
    ]


supporters = sa.Table(
    "supporters",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.BigInteger),
    sa.Column("email_address", sa.String(320)),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("phone", sa.String(64)),
    sa.Column("address1", sa.String(255)),
    sa.Column("address2", sa.String(255)),
    sa.Column("city", sa.String(255)),
    sa.Column("state", sa.String(255)),
    sa.Column("postal_code", sa.String(64)),
    sa.Column("country", sa.String(64)),
    sa.Column("email_opt_in", sa.Boolean),
    sa.Column("sms_opt_in", sa.Boolean),
    sa.Column("email_consent_at", UTCDateTime()),
    sa.Column("source_campaign_id", sa.BigInteger),
    sa.Column("origin", sa.String(255)),
    *_entity_columns(),
    sa.Index("ix_supporters_org_updated", "organization_id", "updated_at"),
    sa.Index("ix_supporters_org_email", "organization_id", "email_address"),
)

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("supporter_id", sa.BigInteger),
    sa.Column("campaign_id", sa.BigInteger),
    sa.Column("recurring_plan_id", sa.BigInteger),
    sa.Column("parent_transaction_id", sa.BigInteger),
    sa.Column("status", sa.String(64)),
    sa.Column("currency", sa.String(16)),
    sa.Column("total_gross_amount", Money),
    sa.Column("donation_gross_amount", Money),
    sa.Column("fees_amount", Money),
    sa.Column("donation_net_amount", Money),
    sa.Column("purchased_at", UTCDateTime()),
    sa.Column("refunded_at", UTCDateTime()),
    *_entity_columns(),
    sa.Index("ix_transactions_org_supporter", "organization_id", "supporter_id"),
    sa.Index("ix_transactions_org_updated", "organization_id", "updated_at"),
)

recurring_plans = sa.Table(
    "recurring_plans",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("supporter_id", sa.BigInteger),
    sa.Column("campaign_id", sa.BigInteger),
    sa.Column("status", sa.String(64)),
    sa.Column("frequency", sa.String(64)),
    sa.Column("amount", Money),
    sa.Column("currency", sa.String(16)),
    sa.Column("next_processing_date", sa.Date),
    sa.Column("canceled_at", UTCDateTime()),
    sa.Column("cancel_reason", sa.Text),
    *_entity_columns(),
    sa.Index("ix_recurring_plans_org_supporter", "organization_id", "supporter_id"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(512)),
    sa.Column("type", sa.String(64)),
    sa.Column("status", sa.String(64)),
    sa.Column("goal", Money),
    sa.Column("raw_goal", sa.String(64)),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("ended_at", UTCDateTime()),
    *_entity_columns(),
)

sync_jobs = sa.Table(
    "sync_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("organization_id", sa.BigInteger, nullable=False),
    sa.Column("org_name", sa.String(255), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("heartbeat_at", UTCDateTime()),
    sa.Column("fetched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cursor_before", JSONType),
    sa.Column("cursor_after", JSONType),
    sa.Column("window_start", UTCDateTime()),
    sa.Column("window_end", UTCDateTime()),
    sa.Column("details", JSONType),
    sa.Column("plugins", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("hostname", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Index("ix_sync_jobs_org_entity_started", "organization_id", "entity", "started_at"),
    sa.Index("ix_sync_jobs_status", "status"),
)

sync_errors = sa.Table(
    "sync_errors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("sync_jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("organization_id", sa.BigInteger, nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sync_errors_job", "job_id"),
)

sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("cursor", JSONType, nullable=False),
    sa.Column("job_id", sa.Integer),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_full_sync_at", UTCDateTime()),
)

sync_seen = sa.Table(
    "sync_seen",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
)
"""Ids a running full sync has seen, so deletions are found in SQL, not in memory."""

ENTITY_TABLES: dict[str, sa.Table] = {
    "supporters": supporters,
    "transactions": transactions,
    "recurring_plans": recurring_plans,
    "campaigns": campaigns,
}

# -- supporter statistics (supportersync.stats; migration 0002_stats) ----------------

supporter_stats = sa.Table(
    "supporter_stats",
    metadata,
    # No foreign key to supporters: transactions may name a supporter we have not stored yet.
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("supporter_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("lifetime_amount", Money, nullable=False),
    sa.Column("lifetime_count", sa.Integer, nullable=False),
    sa.Column("first_gift_at", UTCDateTime()),
    sa.Column("last_gift_at", UTCDateTime()),
    sa.Column("largest_gift", Money),
    sa.Column("last_12_months_amount", Money, nullable=False),
    sa.Column("last_12_months_count", sa.Integer, nullable=False),
    sa.Column("active_plans_count", sa.Integer, nullable=False),
    sa.Column("monthly_recurring_amount", Money, nullable=False),
    sa.Column("days_since_last_gift", sa.Integer),
    sa.Column("value_tier", sa.String(64), nullable=False),
    sa.Column("engagement_segment", sa.String(64), nullable=False),
    sa.Column("frequency_segment", sa.String(64), nullable=False),
    sa.Column("computed_at", UTCDateTime(), nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.Index("ix_supporter_stats_org_value_tier", "organization_id", "value_tier"),
    sa.Index("ix_supporter_stats_org_engagement", "organization_id", "engagement_segment"),
    sa.Index("ix_supporter_stats_org_frequency", "organization_id", "frequency_segment"),
    sa.Index("ix_supporter_stats_org_last_gift", "organization_id", "last_gift_at"),
    sa.Index("ix_supporter_stats_org_changed", "organization_id", "changed_at"),
)
"""Giving statistics and segment labels, one row per supporter id seen in any entity table.

Kept apart from `supporters` so that no supporter upsert can ever touch them; only
supportersync.stats.recompute writes here. `changed_at` moves only when a value a
plugin would push changes (not days_since_last_gift or computed_at alone).
"""

sa.Index(
    "ix_transactions_org_gifts",
    transactions.c.organization_id,
    transactions.c.supporter_id,
    transactions.c.purchased_at,
    transactions.c.donation_gross_amount,
    transactions.c.status,
    transactions.c.deleted_at,
    sqlite_where=sa.text("status = 'success' AND deleted_at IS NULL"),
    postgresql_where=sa.text("status = 'success' AND deleted_at IS NULL"),
)
"""Gifts only, covering everything supportersync.stats reads from a transaction, so recompute
never touches the rows (their raw JSON makes them wide). status and deleted_at are constant
here, but listing them is what makes SQLite's planner see the index as covering."""

# -- Mailchimp plugin state (supportersync.mailchimp; migration 0003_mailchimp) --------

mailchimp_members = sa.Table(
    "mailchimp_members",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("audience_id", sa.String(64), primary_key=True),
    sa.Column("subscriber_hash", sa.String(32), primary_key=True),
    sa.Column("email_address", sa.String(320), nullable=False),
    sa.Column("supporter_id", sa.BigInteger),
    sa.Column("managed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("remote_status", sa.String(16)),
    sa.Column("remote_reason", sa.String(255)),
    sa.Column("remote_changed_at", UTCDateTime()),
    sa.Column("applied_hash", sa.String(64)),
    sa.Column("applied_tags", JSONType),
    sa.Column("applied_at", UTCDateTime()),
    sa.Column("rejected_reason", sa.Text),
    sa.Column("rejected_hash", sa.String(64)),
    sa.Column("rejected_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_mailchimp_members_org_supporter", "organization_id", "supporter_id"),
)
"""What we know of each audience member: its last known Mailchimp status (from our writes
and from pulls), whether this tool manages it, what was last applied (digest of the member
data, managed tags) and the last permanent rejection with the data digest it was for."""

mailchimp_audiences = sa.Table(
    "mailchimp_audiences",
    metadata,
    sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("audience_id", sa.String(64), primary_key=True),
    sa.Column("pulled_until", UTCDateTime()),
    sa.Column("last_push_at", UTCDateTime()),
    sa.Column("last_full_push_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
"""Per audience: how far member changes have been pulled from Mailchimp, and when we pushed."""
