"""Counts per segment and totals, for a quick look (`supportersync stats summary`).

Read from supporter_stats as last computed; amounts are Decimal, timestamps ISO 8601 text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from supportersync.db.schema import Money, recurring_plans, supporter_stats
from supportersync.stats.compute import (
    LABEL_COLUMNS,
    PAYMENTS_PER_YEAR,
    database_errors,
    is_active_plan,
    plan_frequency_key,
)
from supportersync.stats.segments import SegmentConfig
from supportersync.timeutil import isoformat

_TOTALS = ("lifetime_amount", "lifetime_count", "last_12_months_amount", "last_12_months_count",
           "active_plans_count", "monthly_recurring_amount")


def summary(conn: sa.Connection, organization_id: int, *, segments: SegmentConfig | None = None) -> dict[str, Any]:
    """Supporters, donors and totals, and per segment kind the supporters and lifetime amount per label.

    With `segments`, each kind lists its configured labels in band order (those with no
    supporter too), then any stored label the configuration no longer has (stats not
    recomputed since the configuration changed). Without, labels come by size.
    """
    with database_errors("Reading supporter statistics"):
        return _summary(conn, organization_id, segments)


def _summary(conn: sa.Connection, org: int, segments: SegmentConfig | None) -> dict[str, Any]:
    s = supporter_stats
    mine = s.c.organization_id == org
    head = conn.execute(
        sa.select(
            sa.func.count().label("supporters"),
            sa.func.coalesce(sa.func.sum(sa.case((s.c.lifetime_count > 0, 1), else_=0)), 0).label("donors"),
            sa.func.min(s.c.computed_at).label("oldest"),
            sa.func.max(s.c.computed_at).label("newest"),
            *(_total(s.c[name]).label(name) for name in _TOTALS),
        ).where(mine)
    ).one()
    p = recurring_plans
    unknown_frequency = conn.execute(
        sa.select(sa.func.count()).where(
            p.c.organization_id == org,
            *is_active_plan(p),
            sa.or_(p.c.frequency.is_(None), plan_frequency_key(p.c.frequency).not_in(list(PAYMENTS_PER_YEAR))),
        )
    ).scalar_one()

    kinds: dict[str, list[dict[str, Any]]] = {}
    configured = {seg.kind: seg.labels for seg in segments.kinds} if segments else {}
    for kind, column in LABEL_COLUMNS.items():
        label = s.c[column]
        counted = {
            row.label: row
            for row in conn.execute(
                sa.select(label.label("label"), sa.func.count().label("supporters"),
                          _total(s.c.lifetime_amount).label("lifetime_amount"))
                .where(mine)
                .group_by(label)
            )
        }
        order = list(configured.get(kind, ()))
        order += sorted((name for name in counted if name not in order),
                        key=lambda name: (-counted[name].supporters, name))
        kinds[kind] = [
            {
                "label": name,
                "supporters": counted[name].supporters if name in counted else 0,
                "lifetime_amount": counted[name].lifetime_amount if name in counted else Decimal("0.00"),
            }
            for name in order
        ]

    return {
        "organization_id": org,
        "supporters": head.supporters,
        "donors": head.donors,
        "computed_at": {"oldest": isoformat(head.oldest), "newest": isoformat(head.newest)},
        "totals": {name: getattr(head, name) for name in _TOTALS}
        | {"active_plans_with_unknown_frequency": unknown_frequency},
        "segments": kinds,
    }


def _total(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SUM that is 0 on no rows; money rounded to cents (SQLite sums REALs) and read as Decimal."""
    if isinstance(column.type, sa.Numeric):
        return sa.type_coerce(sa.func.coalesce(sa.func.round(sa.func.sum(column), 2), sa.literal_column("0.00")), Money)
    return sa.func.coalesce(sa.func.sum(column), 0)
