"""Benchmark supporter statistics: full and incremental recompute, on SQLite and PostgreSQL.

    python bench/bench_stats.py                      # 100,000 supporters, 1,000,000 transactions
    python bench/bench_stats.py --supporters 10000 --transactions 100000 --skip-postgres

Rows are generated with a fixed seed and bulk-loaded through the driver (executemany on
SQLite, COPY on PostgreSQL) into a migrated database: a temporary file on SQLite, a
schema of its own on PostgreSQL that is dropped afterwards. Goals: a full recompute
under 10 s, an incremental recompute of 1,000 supporters under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from supportersync.db.engine import open_engine, upgrade
from supportersync.db.schema import transactions
from supportersync.stats import DEFAULT_SEGMENTS, recompute
from supportersync.stats.compute import recompute_stale
from supportersync.timeutil import UTC

ORG = 1
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
STATUSES = ["success"] * 88 + ["refunded"] * 5 + ["failed"] * 4 + ["pending"] * 2 + ["test"]
PLAN_STATUSES = ["active"] * 6 + ["canceled"] * 3 + ["paused"]
FREQUENCIES = ["monthly"] * 14 + ["yearly"] * 3 + ["quarterly"] * 2 + ["weekly"]
GIFT_SIZES = [5, 10, 20, 25, 50, 100, 250, 500, 1000, 5000]

TX_COLUMNS = ("organization_id", "id", "supporter_id", "campaign_id", "status", "currency", "total_gross_amount",
              "donation_gross_amount", "purchased_at", "created_at", "updated_at", "deleted_at", "synced_at",
              "raw", "raw_hash")
SUPPORTER_COLUMNS = ("organization_id", "id", "email_address", "first_name", "created_at", "updated_at",
                     "synced_at", "raw", "raw_hash")
PLAN_COLUMNS = ("organization_id", "id", "supporter_id", "status", "frequency", "amount", "currency",
                "created_at", "updated_at", "synced_at", "raw", "raw_hash")


def generate(args: argparse.Namespace) -> dict[str, list[tuple]]:
    rnd = random.Random(20250615)
    span = 6 * 365 * 86400
    out: dict[str, list[tuple]] = {"supporters": [], "transactions": [], "recurring_plans": []}
    for sid in range(1, args.supporters + 1):
        at = NOW - timedelta(seconds=rnd.randrange(span))
        raw = json.dumps({"id": sid, "email_address": f"s{sid}@example.org", "first_name": f"First{sid}"})
        out["supporters"].append((ORG, sid, f"s{sid}@example.org", f"First{sid}", at, at, NOW, raw, "h"))
    # Skewed: low ids give often; about 2% of transactions name supporters not stored (yet).
    unknown = max(1, args.supporters // 50)
    for tid in range(1, args.transactions + 1):
        if rnd.random() < 0.02:
            sid = args.supporters + 1 + rnd.randrange(unknown)
        else:
            sid = int(args.supporters * rnd.random() ** 2) + 1
        amount = (Decimal(rnd.choice(GIFT_SIZES)) * Decimal(rnd.randrange(50, 200)) / 100).quantize(Decimal("0.01"))
        at = NOW - timedelta(seconds=rnd.randrange(span))
        deleted = at if rnd.random() < 0.005 else None
        raw = json.dumps({"id": tid, "supporter_id": sid, "donation_gross_amount": str(amount)})
        out["transactions"].append((ORG, tid, sid, 1 + tid % 75, rnd.choice(STATUSES), "USD", amount, amount,
                                    at, at, at, deleted, NOW, raw, "h"))
    for pid in range(1, args.plans + 1):
        sid = rnd.randrange(1, args.supporters + 1)
        amount = Decimal(rnd.choice([5, 10, 15, 20, 25, 50, 100]))
        at = NOW - timedelta(seconds=rnd.randrange(span))
        raw = json.dumps({"id": pid, "supporter_id": sid})
        out["recurring_plans"].append((ORG, pid, sid, rnd.choice(PLAN_STATUSES), rnd.choice(FREQUENCIES), amount,
                                       "USD", at, at, NOW, raw, "h"))
    return out


def load_sqlite(engine: sa.Engine, data: dict[str, list[tuple]]) -> None:
    def value(v: object) -> object:
        if isinstance(v, datetime):
            return v.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, Decimal):
            return float(v)  # what SQLAlchemy's Numeric stores on SQLite
        return v

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, columns in _tables():
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            cur.executemany(sql, ([value(v) for v in row] for row in data[table]))
        raw.commit()
    finally:
        raw.close()


def load_postgres(engine: sa.Engine, data: dict[str, list[tuple]]) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, columns in _tables():
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in data[table]:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    # Autovacuum would do this soon after a real bulk sync; without it the planner guesses.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table, _ in _tables():
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))


def _tables() -> list[tuple[str, tuple[str, ...]]]:
    return [("supporters", SUPPORTER_COLUMNS), ("transactions", TX_COLUMNS), ("recurring_plans", PLAN_COLUMNS)]


def timed(label: str, engine: sa.Engine, ids: list[int] | None | str, now: datetime) -> float:
    """Recompute `ids` (None: everyone; "stale": what `stats recompute` without --all picks)."""
    start = time.perf_counter()
    with engine.begin() as conn:
        if ids == "stale":
            result = recompute_stale(conn, ORG, segments=DEFAULT_SEGMENTS, now=now)
        else:
            result = recompute(conn, ORG, ids, segments=DEFAULT_SEGMENTS, now=now)
    elapsed = time.perf_counter() - start
    print(f"  {label:<44} {elapsed:7.3f} s   computed {result.computed:>7,}  changed {len(result.changed_ids):>7,}")
    return elapsed


def run(name: str, engine: sa.Engine, loader, data: dict[str, list[tuple]], args: argparse.Namespace) -> dict:
    upgrade(engine)
    start = time.perf_counter()
    loader(engine, data)
    print(f"{name}: loaded {len(data['supporters']):,} supporters, {len(data['transactions']):,} transactions, "
          f"{len(data['recurring_plans']):,} plans in {time.perf_counter() - start:.1f} s")
    figures = {
        "full (empty stats)": timed("full recompute, no stats yet", engine, None, NOW),
        "full (daily, next day)": timed("full recompute, next day (cron --all)", engine, None, NOW + timedelta(days=1)),
    }
    rnd = random.Random(7)
    affected = rnd.sample(range(1, args.supporters + 1), min(args.incremental, args.supporters))
    # What a sync run does before recomputing: refund one transaction of each affected supporter.
    with engine.begin() as conn:
        for sid in affected:
            conn.execute(
                transactions.update()
                .where(transactions.c.organization_id == ORG,
                       transactions.c.id == sa.select(sa.func.min(transactions.c.id))
                       .where(transactions.c.organization_id == ORG, transactions.c.supporter_id == sid)
                       .scalar_subquery())
                .values(status="refunded")
            )
    figures["incremental"] = timed(f"incremental recompute, {len(affected):,} supporters", engine, affected,
                                   NOW + timedelta(days=1))
    figures["stale (next day: everyone)"] = timed("stats recompute (stale), next day", engine, "stale",
                                                  NOW + timedelta(days=2))
    return figures


def postgres_engine(url: str) -> Iterator[sa.Engine]:
    schema = f"bench_stats_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = open_engine(scoped.render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supporters", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--incremental", type=int, default=1_000, help="supporters in the incremental recompute")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    data = generate(args)
    print(f"generated rows in {time.perf_counter() - start:.1f} s")
    results: dict[str, dict] = {}
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            engine = open_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
            try:
                results["sqlite"] = run("sqlite", engine, load_sqlite, data, args)
            finally:
                engine.dispose()
    if not args.skip_postgres:
        for engine in postgres_engine(args.postgres_url):
            results["postgresql"] = run("postgresql", engine, load_postgres, data, args)

    goals = {"full (empty stats)": 10.0, "full (daily, next day)": 10.0, "incremental": 0.5,
             "stale (next day: everyone)": 10.0}
    missed = [f"{db} {what}: {secs:.2f} s > {goals[what]} s"
              for db, figures in results.items() for what, secs in figures.items() if secs > goals[what]]
    print("goals met" if not missed else "goals missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
