"""Mailchimp plugin state: what we know of each audience member, and the pull cursor.

Revision ID: 0003_mailchimp
Revises: 0002_stats
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from supportersync.db.schema import JSONType, UTCDateTime

revision = "0003_mailchimp"
down_revision = "0002_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailchimp_members",
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
    )
    op.create_index("ix_mailchimp_members_org_supporter", "mailchimp_members", ["organization_id", "supporter_id"])

    op.create_table(
        "mailchimp_audiences",
        sa.Column("organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("audience_id", sa.String(64), primary_key=True),
        sa.Column("pulled_until", UTCDateTime()),
        sa.Column("last_push_at", UTCDateTime()),
        sa.Column("last_full_push_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mailchimp_audiences")
    op.drop_index("ix_mailchimp_members_org_supporter", table_name="mailchimp_members")
    op.drop_table("mailchimp_members")
