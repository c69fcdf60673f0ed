"""Reading what Mailchimp should hold: supporters and their giving statistics.

:func:`stats_columns` is the one place that knows supporter_stats' column names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from supportersync.db.schema import supporter_stats, supporters


@dataclass(frozen=True)
class SupporterRecord:
    """One supporter as the plan needs it."""

    id: int
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    email_opt_in: bool | None = None
    deleted: bool = False
    updated_at: datetime | None = None
    stats: Mapping[str, Any] | None = None
    """Our stat names (see stats_columns) -> values; None when no stats row exists yet."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def stats_columns() -> dict[str, sa.ColumnElement[Any]]:
    """Our field names -> supporter_stats columns (adapt here if that table changes)."""
    s = supporter_stats
    return {
        "lifetime_amount": s.c.lifetime_amount,
        "gift_count": s.c.lifetime_count,
        "monthly_recurring_amount": s.c.monthly_recurring_amount,
        "first_gift_date": s.c.first_gift_at,
        "last_gift_date": s.c.last_gift_at,
        "value_tier": s.c.value_tier,
        "engagement": s.c.engagement_segment,
        "frequency": s.c.frequency_segment,
    }


def load_supporters(engine: Engine, organization_id: int) -> list[SupporterRecord]:
    """Every supporter of the organization (deleted ones too: they may need archiving)."""
    p = supporters
    stats = stats_columns()
    query = (
        sa.select(p.c.id, p.c.email_address, p.c.first_name, p.c.last_name, p.c.email_opt_in,
                  p.c.deleted_at, p.c.updated_at, supporter_stats.c.supporter_id.label("has_stats"),
                  *(column.label(f"stat_{name}") for name, column in stats.items()))
        .select_from(p.outerjoin(supporter_stats, sa.and_(supporter_stats.c.organization_id == p.c.organization_id,
                                                          supporter_stats.c.supporter_id == p.c.id)))
        .where(p.c.organization_id == organization_id)
        .order_by(p.c.id)
    )
    records = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            values = row._mapping
            records.append(SupporterRecord(
                id=int(values["id"]),
                email=values["email_address"],
                first_name=values["first_name"],
                last_name=values["last_name"],
                email_opt_in=values["email_opt_in"],
                deleted=values["deleted_at"] is not None,
                updated_at=values["updated_at"],
                stats=None if values["has_stats"] is None else {name: values[f"stat_{name}"] for name in stats},
            ))
    return records
