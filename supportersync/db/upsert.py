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


class EncodedJSON(str):
    """JSON already encoded once (we hash that text); stored as it is, never encoded again."""


class BulkUpsert:
    """The upsert for one table and column list, compiled once and bound by hand.

    SQLAlchemy's per-value type processing dominates a full sync of hundreds of
    thousands of rows, so values are converted here, once, to what each driver takes:
    SQLite gets the same text layout SQLAlchemy's DateTime and Date use (so SQL
    comparisons and reads through SQLAlchemy agree), floats for amounts, 0/1 for
    booleans; psycopg takes Python values as they are. JSON arrives pre-encoded.
    """

    def __init__(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.dialect = conn.dialect.name
        stmt = insert_for(conn, table)
        keys = [c.name for c in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in self.columns if c not in keys})
        compiled = stmt.compile(dialect=conn.dialect, column_keys=self.columns)
        self.sql = str(compiled)
        self.positions = list(compiled.positiontup or [])
        kinds = {c.name: c.type for c in table.columns}
        self.converters = {name: _converter(self.dialect, kinds[name]) for name in self.columns}
        if self.dialect == "postgresql":
            json_columns = [name for name in self.columns if isinstance(kinds[name], sa.JSON)
                            or getattr(kinds[name], "impl", None) is not None and isinstance(kinds[name].impl, sa.JSON)
                            or "JSON" in type(kinds[name]).__name__.upper()]
            for name in json_columns:
                # Cast explicitly: the parameter travels as text, the column is jsonb.
                self.sql = self.sql.replace(f"%({name})s", f"CAST(%({name})s AS JSONB)")

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        converters = self.converters
        if self.positions:
            params: list[Any] = [tuple(converters[n](row[n]) for n in self.positions) for row in rows]
        else:
            params = [{n: converters[n](row[n]) for n in self.columns} for row in rows]
        conn.exec_driver_sql(self.sql, params)


def _identity(value: Any) -> Any:
    return value


def _converter(dialect: str, kind: sa.types.TypeEngine[Any]) -> Any:
    from datetime import date, datetime
    from decimal import Decimal

    from supportersync.db.schema import UTCDateTime
    from supportersync.timeutil import ensure_utc

    is_json = isinstance(kind, sa.JSON) or "JSON" in type(kind).__name__.upper()
    if is_json:
        return lambda v: None if v is None else (v if isinstance(v, EncodedJSON) else EncodedJSON(_dumps(v)))
    if dialect != "sqlite":
        if isinstance(kind, UTCDateTime):
            return lambda v: None if v is None else ensure_utc(v)
        return _identity
    if isinstance(kind, UTCDateTime):
        def to_text(v: datetime | None) -> str | None:
            if v is None:
                return None
            return ensure_utc(v).strftime("%Y-%m-%d %H:%M:%S.%f")
        return to_text
    if isinstance(kind, sa.Numeric):
        return lambda v: None if v is None else float(v) if isinstance(v, Decimal) else v
    if isinstance(kind, sa.Boolean):
        return lambda v: None if v is None else int(bool(v))
    if isinstance(kind, sa.Date):
        return lambda v: v.isoformat() if isinstance(v, date) else v
    return _identity


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
