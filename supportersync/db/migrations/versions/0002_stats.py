"""Supporter statistics and segment labels (supportersync.stats).

Revision ID: 0002_stats
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from supportersync.db.schema import Money, UTCDateTime

revision = "0002_stats"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supporter_stats",
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
    )
    op.create_index("ix_supporter_stats_org_value_tier", "supporter_stats", ["organization_id", "value_tier"])
    op.create_index("ix_supporter_stats_org_engagement", "supporter_stats", ["organization_id", "engagement_segment"])
    op.create_index("ix_supporter_stats_org_frequency", "supporter_stats", ["organization_id", "frequency_segment"])
    op.create_index("ix_supporter_stats_org_last_gift", "supporter_stats", ["organization_id", "last_gift_at"])
    op.create_index("ix_supporter_stats_org_changed", "supporter_stats", ["organization_id", "changed_at"])
    gifts = sa.text("status = 'success' AND deleted_at IS NULL")
    op.create_index("ix_transactions_org_gifts", "transactions",
                    ["organization_id", "supporter_id", "purchased_at", "donation_gross_amount", "status", "deleted_at"],
                    sqlite_where=gifts, postgresql_where=gifts)


def downgrade() -> None:
    op.drop_index("ix_transactions_org_gifts", table_name="transactions")
    op.drop_table("supporter_stats")
