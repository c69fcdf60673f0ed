"""Core tables: the four Classy entities, jobs, record errors, cursors.

Revision ID: 0001_core
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from supportersync.db.schema import JSONType, Money, UTCDateTime

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def _key() -> list[sa.Column]:
    return [
        sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    ]


def _tracking() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime()),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("raw", JSONType, nullable=False),
        sa.Column("raw_hash", sa.String(64), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "supporters",
        *_key(),
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
        *_tracking(),
    )
    op.create_index("ix_supporters_org_updated", "supporters", ["organization_id", "updated_at"])
    op.create_index("ix_supporters_org_email", "supporters", ["organization_id", "email_address"])

    op.create_table(
        "transactions",
        *_key(),
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
        *_tracking(),
    )
    op.create_index("ix_transactions_org_supporter", "transactions", ["organization_id", "supporter_id"])
    op.create_index("ix_transactions_org_updated", "transactions", ["organization_id", "updated_at"])

    op.create_table(
        "recurring_plans",
        *_key(),
        sa.Column("supporter_id", sa.BigInteger),
        sa.Column("campaign_id", sa.BigInteger),
        sa.Column("status", sa.String(64)),
        sa.Column("frequency", sa.String(64)),
        sa.Column("amount", Money),
        sa.Column("currency", sa.String(16)),
        sa.Column("next_processing_date", sa.Date),
        sa.Column("canceled_at", UTCDateTime()),
        sa.Column("cancel_reason", sa.Text),
        *_tracking(),
    )
    op.create_index("ix_recurring_plans_org_supporter", "recurring_plans", ["organization_id", "supporter_id"])

    op.create_table(
        "campaigns",
        *_key(),
        sa.Column("name", sa.String(512)),
        sa.Column("type", sa.String(64)),
        sa.Column("status", sa.String(64)),
        sa.Column("goal", Money),
        sa.Column("raw_goal", sa.String(64)),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("ended_at", UTCDateTime()),
        *_tracking(),
    )

    op.create_table(
        "sync_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.BigInteger, nullable=False),
        sa.Column("org_name", sa.String(255), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("heartbeat_at", UTCDateTime()),
        *[sa.Column(name, sa.Integer, nullable=False, server_default="0")
          for name in ("fetched", "inserted", "updated", "unchanged", "deleted", "failed", "requests", "retries")],
        sa.Column("cursor_before", JSONType),
        sa.Column("cursor_after", JSONType),
        sa.Column("window_start", UTCDateTime()),
        sa.Column("window_end", UTCDateTime()),
        sa.Column("details", JSONType),
        sa.Column("plugins", JSONType),
        sa.Column("error", sa.Text),
        sa.Column("hostname", sa.String(255)),
        sa.Column("pid", sa.Integer),
    )
    op.create_index("ix_sync_jobs_org_entity_started", "sync_jobs", ["organization_id", "entity", "started_at"])
    op.create_index("ix_sync_jobs_status", "sync_jobs", ["status"])

    op.create_table(
        "sync_errors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("sync_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("organization_id", sa.BigInteger, nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_sync_errors_job", "sync_errors", ["job_id"])

    op.create_table(
        "sync_cursors",
        sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("cursor", JSONType, nullable=False),
        sa.Column("job_id", sa.Integer),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_full_sync_at", UTCDateTime()),
    )

    op.create_table(
        "sync_seen",
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    for table in ("sync_seen", "sync_cursors", "sync_errors", "sync_jobs", "campaigns",
                  "recurring_plans", "transactions", "supporters"):
        op.drop_table(table)
