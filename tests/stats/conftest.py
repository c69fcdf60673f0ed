"""Rows for the stats tests, written straight into the entity tables with SQLAlchemy Core."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from supportersync.db.schema import recurring_plans, supporter_stats, supporters, transactions
from supportersync.timeutil import UTC

ORG = 4242
SYNCED = datetime(2025, 1, 1, tzinfo=UTC)


def _tracking(**extra: Any) -> dict[str, Any]:
    return {"synced_at": SYNCED, "raw": {"test": True}, "raw_hash": "x", **extra}


@dataclass
class Rows:
    engine: sa.Engine
    org: int = ORG
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Many rows at once; organization_id defaults to `org`, tracking columns are filled in."""
        if rows:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), [{"organization_id": self.org, **_tracking(**row)} for row in rows])

    def supporter(self, supporter_id: int, *, org: int = ORG, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(supporters.insert(), [{"organization_id": org, "id": supporter_id, **_tracking(**values)}])

    def transaction(self, supporter_id: int | None, amount: Decimal | str | None, purchased_at: datetime | None, *,
                    status: str = "success", org: int = ORG, **values: Any) -> int:
        row_id = next(self._ids)
        with self.engine.begin() as conn:
            conn.execute(transactions.insert(), [{
                "organization_id": org, "id": row_id, "supporter_id": supporter_id, "status": status,
                "donation_gross_amount": Decimal(amount) if isinstance(amount, str) else amount,
                "purchased_at": purchased_at, **_tracking(**values),
            }])
        return row_id

    def plan(self, supporter_id: int | None, amount: Decimal | str | None, frequency: str | None, *,
             status: str = "active", org: int = ORG, **values: Any) -> int:
        row_id = next(self._ids)
        with self.engine.begin() as conn:
            conn.execute(recurring_plans.insert(), [{
                "organization_id": org, "id": row_id, "supporter_id": supporter_id, "status": status,
                "frequency": frequency, "amount": Decimal(amount) if isinstance(amount, str) else amount,
                **_tracking(**values),
            }])
        return row_id

    def update(self, table: sa.Table, row_id: int, *, org: int = ORG, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.organization_id == org, table.c.id == row_id).values(**values))

    def stats(self, org: int = ORG) -> dict[int, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(supporter_stats).where(supporter_stats.c.organization_id == org))
            return {row.supporter_id: dict(row._mapping) for row in rows}

    def clear(self) -> None:
        with self.engine.begin() as conn:
            for table in (supporter_stats, transactions, recurring_plans, supporters):
                conn.execute(table.delete())


@pytest.fixture
def rows(engine: sa.Engine) -> Rows:
    return Rows(engine)
