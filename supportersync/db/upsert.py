"""Dialect-aware bulk upserts (INSERT .. ON CONFLICT DO UPDATE), for SQLite and PostgreSQL.

Dispatching on `dialect.name` ("sqlite", "postgresql"), never on driver names: the
system we replace compared "sqlite3" with "sqlite" and took the wrong branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_for(conn: Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are not implemented for {name}")


def upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, replacing every non-key column of rows that already exist."""
    if not rows:
        return
    stmt = insert_for(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, list(rows))


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose key already exists."""
    if not rows:
        return
    conn.execute(insert_for(conn, table).on_conflict_do_nothing(), list(rows))
