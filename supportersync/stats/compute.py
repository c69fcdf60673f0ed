"""Supporter statistics, computed set-based in the database (SQLite and PostgreSQL).

`recompute` runs inside the caller's transaction, in a fixed number of statements
whatever the number of supporters:

1. on PostgreSQL, a transaction-scoped advisory lock per organization, so two
   recomputes (a sync's and cron's) never write stats from different snapshots
   (SQLite allows one writer at a time anyway), and JIT off while it runs;
2. the supporter ids asked for go into a temporary table (in chunks);
3. one INSERT ... SELECT aggregates gifts and active plans per supporter and labels
   the result, into a second temporary table;
4. one SELECT finds the rows where a value a plugin would push differs from what is
   stored: those ids are the result's `changed_ids`;
5. one upsert writes every row; `changed_at` moves only on the changed ones;
6. stats of supporter ids that no longer appear in any entity table are deleted.

What counts (docs/segments.md says the same for fundraisers):

- A gift is a transaction with status `success`, not deleted, with a supporter id, a
  `purchased_at` and a `donation_gross_amount` above zero. `donation_gross_amount` is the
  donation part of the transaction (without ticket or other item sales in
  `total_gross_amount`), before fees (what the donor gave, not what the organization
  kept: `donation_net_amount` depends on processors and on whether the donor covered the
  fees), and in the organization's currency (the `charged_*` amounts are in the donor's).
- An active plan is a recurring plan with status `active`, not deleted, not canceled
  (`canceled_at` empty). Its monthly amount is amount x payments a year / 12, summed in
  whole cents and rounded half up once per supporter, so both databases agree to the cent.
- Time-dependent values depend only on the UTC date of `now`: days since the last gift
  count calendar days (UTC), and the 12-month window starts at midnight UTC on the same
  date one year earlier (28 February for 29 February).

On SQLite, Numeric is stored as REAL: sums are rounded to cents in SQL and read back
as Decimal through the column types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from supportersync.db.engine import first_line
from supportersync.db.schema import UTCDateTime, recurring_plans, supporter_stats, supporters, transactions
from supportersync.errors import DatabaseError
from supportersync.locking import lock_key
from supportersync.stats.segments import SegmentConfig, Segmentation
from supportersync.timeutil import UTC, ensure_utc

GIFT_STATUS = "success"
ACTIVE_PLAN_STATUS = "active"

PAYMENTS_PER_YEAR: dict[str, int] = {
    "daily": 365,
    "weekly": 52,
    "biweekly": 26,
    "fortnightly": 26,
    "semimonthly": 24,
    "monthly": 12,
    "quarterly": 4,
    "semiannually": 2,
    "semiannual": 2,
    "yearly": 1,
    "annually": 1,
    "annual": 1,
}
"""Plan frequencies, lower-cased without '-', '_' or spaces ("Semi-Annually" -> semiannually).

A plan with any other frequency still counts as active but adds nothing to the monthly
amount; `stats summary` reports how many there are.
"""

PUSHED_FIELDS: tuple[str, ...] = (
    "lifetime_amount",
    "lifetime_count",
    "first_gift_at",
    "last_gift_at",
    "largest_gift",
    "last_12_months_amount",
    "last_12_months_count",
    "active_plans_count",
    "monthly_recurring_amount",
    "value_tier",
    "engagement_segment",
    "frequency_segment",
)
"""The values a plugin would push: a supporter is "changed" when one of them changes."""

STAT_FIELDS: tuple[str, ...] = (*PUSHED_FIELDS, "days_since_last_gift")

LABEL_COLUMNS: dict[str, str] = {
    "value_tiers": "value_tier",
    "engagement": "engagement_segment",
    "frequency": "frequency_segment",
}
"""The supporter_stats column holding each kind's label."""

_CHUNK = 10_000

_temp = sa.MetaData()
_scope = sa.Table(
    "supportersync_stats_scope",
    _temp,
    sa.Column("supporter_id", sa.BigInteger, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
_fresh = sa.Table(
    "supportersync_stats_fresh",
    _temp,
    sa.Column("supporter_id", sa.BigInteger, primary_key=True, autoincrement=False),
    *(sa.Column(name, supporter_stats.c[name].type) for name in STAT_FIELDS),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class RecomputeResult:
    computed: int
    """Supporters whose stats were computed and written."""
    changed_ids: tuple[int, ...]
    """Supporters (sorted) whose pushed values changed, including those who had no stats row yet."""
    removed: int = 0
    """Stats rows deleted because their supporter id appears in no entity table any more."""


def as_of(now: datetime) -> tuple[date, datetime]:
    """The UTC date stats are computed for, and the start of its 12-month window."""
    today = ensure_utc(now).date()
    try:
        year_before = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        year_before = today.replace(year=today.year - 1, day=28)
    return today, datetime.combine(year_before, time(0), UTC)


def recompute(
    conn: sa.Connection,
    organization_id: int,
    supporter_ids: Iterable[int] | None,
    *,
    segments: SegmentConfig,
    now: datetime,
) -> RecomputeResult:
    """Recompute the stats of `supporter_ids` (None: everyone) of one organization.

    Every id that a supporter, transaction or recurring plan row of the organization
    mentions gets a row, whether the supporter itself is stored yet or not; the stats of
    ids no row mentions any more are deleted. Runs in the caller's transaction; commit is
    the caller's. `now` fixes the date the time-dependent values are computed for.
    """
    ids = None if supporter_ids is None else sorted({int(i) for i in supporter_ids if i is not None})
    if ids == []:
        return RecomputeResult(0, ())
    with database_errors("Recomputing supporter statistics"):
        return _recompute(conn, organization_id, ids, segments, ensure_utc(now))


def recompute_stale(conn: sa.Connection, organization_id: int, *, segments: SegmentConfig,
                    now: datetime) -> RecomputeResult:
    """Recompute the supporters `stale_supporter_ids` names (`stats recompute` without --all)."""
    return recompute(conn, organization_id, stale_supporter_ids(conn, organization_id, now=now),
                     segments=segments, now=now)


def _recompute(conn: sa.Connection, organization_id: int, ids: list[int] | None, segments: SegmentConfig,
               now: datetime) -> RecomputeResult:
    dialect = conn.dialect.name
    jit = _prepare_postgres(conn, organization_id) if dialect == "postgresql" else None
    # Left over only if an earlier call failed and SQLite kept them; PostgreSQL rolls them back.
    for table in (_scope, _fresh):
        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
        conn.execute(table.delete())
    for start in range(0, len(ids or ()), _CHUNK):
        conn.execute(_scope.insert(), [{"supporter_id": i} for i in ids[start:start + _CHUNK]])
    scoped = ids is not None
    conn.execute(
        _fresh.insert().from_select(["supporter_id", *STAT_FIELDS],
                                    _fresh_rows(dialect, organization_id, scoped, segments, now))
    )
    # Count rather than rowcount: psycopg reports -1 for a Core INSERT ... SELECT.
    computed = conn.execute(sa.select(sa.func.count()).select_from(_fresh)).scalar_one()
    changed = tuple(conn.execute(_changed(organization_id)).scalars())
    conn.execute(_upsert(dialect, organization_id, now))
    removed = conn.execute(_orphans(organization_id, scoped)).rowcount
    for table in (_scope, _fresh):
        conn.execute(sa.schema.DropTable(table))
    if jit is not None:  # back to the caller's setting for the rest of its transaction
        conn.execute(sa.text("SELECT set_config('jit', :jit, true)"), {"jit": jit})
    return RecomputeResult(computed, changed, removed)


def stale_supporter_ids(conn: sa.Connection, organization_id: int, *, now: datetime) -> list[int]:
    """Supporters whose stats are missing, from an earlier UTC day, or older than their data.

    "Older than their data": a transaction or plan of theirs was written by a sync
    (`synced_at`) after their stats were computed, e.g. when a run stopped between
    its upserts and its recompute.
    """
    s = supporter_stats
    today, _ = as_of(now)
    today_start = sa.literal(datetime.combine(today, time(0), UTC), UTCDateTime())
    org = organization_id
    ids = _everyone(org).subquery("ids")
    missing = sa.select(ids.c.supporter_id).where(
        ~sa.exists().where(s.c.organization_id == org, s.c.supporter_id == ids.c.supporter_id,
                           s.c.computed_at >= today_start)
    )
    old = sa.select(s.c.supporter_id).where(s.c.organization_id == org, s.c.computed_at < today_start)
    # From today's stats rows into their transactions and plans, never the other way round:
    # the day after a full recompute there is nothing to look up.
    behind = sa.select(s.c.supporter_id).where(
        s.c.organization_id == org,
        s.c.computed_at >= today_start,
        sa.or_(*(
            sa.exists().where(table.c.organization_id == org, table.c.supporter_id == s.c.supporter_id,
                              table.c.synced_at > s.c.computed_at)
            for table in (transactions, recurring_plans)
        )),
    )
    union = sa.union(missing, old, behind).subquery("stale")
    with database_errors("Finding supporters with stale statistics"):
        return list(conn.execute(sa.select(union.c.supporter_id).order_by(union.c.supporter_id)).scalars())


@contextmanager
def database_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"{doing} failed: {first_line(exc)}",
            hint="The statistics were left as they were; `supportersync stats recompute --all` brings them up "
            "to date once the database is healthy.",
        ) from exc


# -- the statements ------------------------------------------------------------


def _prepare_postgres(conn: sa.Connection, organization_id: int) -> str | None:
    """Lock the organization's stats for this transaction and switch JIT off; returns the old JIT setting.

    The lock: two recomputes (a sync's, cron's) must not write stats from different
    snapshots. JIT: the planner's row estimates for the grouped joins are far too high,
    so it spends seconds compiling what then runs in a fraction of that.
    """
    schema, jit = conn.execute(sa.text("SELECT current_schema(), current_setting('jit', true)")).one()
    key = lock_key(organization_id, "supporter_stats", namespace=schema or "")
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    if jit is not None:
        conn.execute(sa.text("SELECT set_config('jit', 'off', true)"))
    return jit


def is_gift(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [
        # Inline, not bound: PostgreSQL's generic plans can use the partial index
        # ix_transactions_org_gifts only when the query spells out its predicate.
        t.c.status == sa.literal(GIFT_STATUS, literal_execute=True),
        t.c.deleted_at.is_(None),
        t.c.supporter_id.is_not(None),
        t.c.donation_gross_amount > 0,
        t.c.purchased_at.is_not(None),
    ]


def is_active_plan(p: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [
        p.c.deleted_at.is_(None),
        p.c.status == ACTIVE_PLAN_STATUS,
        p.c.canceled_at.is_(None),
        p.c.supporter_id.is_not(None),
    ]


def _everyone(org: int) -> sa.CompoundSelect:
    """Every supporter id any row of the organization mentions.

    Deleted transactions and plans count here (their supporter gets a row, with zeros if
    nothing else): that keeps this an index-only scan of (organization_id, supporter_id).
    """
    return sa.union(
        sa.select(supporters.c.id.label("supporter_id")).where(supporters.c.organization_id == org),
        *(
            sa.select(table.c.supporter_id).where(table.c.organization_id == org, table.c.supporter_id.is_not(None))
            for table in (transactions, recurring_plans)
        ),
    )


def _in_scope(org: int) -> sa.Select:
    """The ids asked for that some row of the organization still mentions."""
    sid = _scope.c.supporter_id
    mentioned = [sa.exists().where(supporters.c.organization_id == org, supporters.c.id == sid)]
    mentioned += [
        sa.exists().where(table.c.organization_id == org, table.c.supporter_id == sid)
        for table in (transactions, recurring_plans)
    ]
    return sa.select(sid).where(sa.or_(*mentioned))


def plan_frequency_key(frequency: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A plan's frequency as a key of PAYMENTS_PER_YEAR."""
    stripped = frequency
    for char in ("-", "_", " "):
        stripped = sa.func.replace(stripped, char, "")
    return sa.func.lower(stripped)


def _fresh_rows(dialect: str, org: int, scoped: bool, segments: SegmentConfig, now: datetime) -> sa.Select:
    today, window_start = as_of(now)
    t, p = transactions, recurring_plans
    amount = t.c.donation_gross_amount
    in_window = t.c.purchased_at >= sa.literal(window_start, UTCDateTime())
    gift_where = [t.c.organization_id == org, *is_gift(t)]
    plan_where = [p.c.organization_id == org, *is_active_plan(p)]
    if scoped:
        gift_where.append(t.c.supporter_id.in_(sa.select(_scope.c.supporter_id)))
        plan_where.append(p.c.supporter_id.in_(sa.select(_scope.c.supporter_id)))

    gifts = (
        sa.select(
            t.c.supporter_id,
            sa.func.round(sa.func.sum(amount), 2).label("lifetime_amount"),
            sa.func.count().label("lifetime_count"),
            sa.func.min(t.c.purchased_at).label("first_gift_at"),
            sa.func.max(t.c.purchased_at).label("last_gift_at"),
            sa.func.max(amount).label("largest_gift"),
            sa.func.round(sa.func.sum(sa.case((in_window, amount), else_=0)), 2).label("last_12_months_amount"),
            sa.func.sum(sa.case((in_window, 1), else_=0)).label("last_12_months_count"),
        )
        .where(*gift_where)
        .group_by(t.c.supporter_id)
        .subquery("gifts")
    )

    # Whole cents a year per plan: exact integers on both databases, whatever REAL does.
    payments = sa.case(PAYMENTS_PER_YEAR, value=plan_frequency_key(p.c.frequency))
    yearly_cents = sa.case((p.c.amount > 0, sa.cast(sa.func.round(p.c.amount * 100), sa.BigInteger) * payments))
    plans = (
        sa.select(
            p.c.supporter_id,
            sa.func.count().label("active_plans_count"),
            sa.func.sum(yearly_cents).label("yearly_cents"),
        )
        .where(*plan_where)
        .group_by(p.c.supporter_id)
        .subquery("plans")
    )

    ids = (_in_scope(org) if scoped else _everyone(org)).subquery("ids")
    monthly_cents = (sa.cast(sa.func.coalesce(plans.c.yearly_cents, 0), sa.BigInteger) + 6) // 12  # half up
    base = (
        sa.select(
            ids.c.supporter_id,
            sa.func.coalesce(gifts.c.lifetime_amount, 0).label("lifetime_amount"),
            sa.func.coalesce(gifts.c.lifetime_count, 0).label("lifetime_count"),
            gifts.c.first_gift_at,
            gifts.c.last_gift_at,
            gifts.c.largest_gift,
            sa.func.coalesce(gifts.c.last_12_months_amount, 0).label("last_12_months_amount"),
            sa.func.coalesce(gifts.c.last_12_months_count, 0).label("last_12_months_count"),
            sa.func.coalesce(plans.c.active_plans_count, 0).label("active_plans_count"),
            (monthly_cents / sa.literal_column("100.0")).label("monthly_recurring_amount"),
        )
        .select_from(
            ids.outerjoin(gifts, gifts.c.supporter_id == ids.c.supporter_id)
            .outerjoin(plans, plans.c.supporter_id == ids.c.supporter_id)
        )
        .subquery("base")
    )

    has_gifts = base.c.lifetime_count > 0
    days = _days_since(dialect, today, base.c.last_gift_at)
    days = sa.case((days < 0, 0), else_=days)  # a gift dated after `now` (clock skew) was today
    measured = {"value_tiers": base.c.lifetime_amount, "engagement": days, "frequency": base.c.lifetime_count}
    columns: dict[str, sa.ColumnElement[Any]] = {name: base.c[name] for name in base.c.keys()}
    columns["days_since_last_gift"] = days
    for seg in segments.kinds:
        columns[LABEL_COLUMNS[seg.kind]] = _label(seg, measured[seg.kind], has_gifts)
    return sa.select(*(columns[name].label(name) for name in ("supporter_id", *STAT_FIELDS)))


def _days_since(dialect: str, today: date, moment: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """Calendar days (UTC) from `moment` to `today`."""
    if dialect == "sqlite":
        # Stored as naive UTC text; julianday of two dates differs by an exact whole number.
        return sa.cast(sa.func.julianday(today.isoformat()) - sa.func.julianday(sa.func.date(moment)), sa.Integer)
    return sa.cast(sa.literal(today, sa.Date), sa.Date) - sa.cast(sa.func.timezone("UTC", moment), sa.Date)


def _label(seg: Segmentation, value: sa.ColumnElement[Any], has_gifts: sa.ColumnElement[bool]) -> sa.Case:
    """CASE for one kind: every band spelled out, so nothing falls through to the top band."""
    bound_type = supporter_stats.c.lifetime_amount.type if seg.money else sa.Integer()
    whens: list[tuple[sa.ColumnElement[bool], str]] = [(~has_gifts, seg.none)]
    for band in seg.bands:
        condition = value >= sa.literal(band.min, bound_type)
        if band.max is not None:
            high = sa.literal(band.max, bound_type)
            condition = sa.and_(condition, value < high if seg.money else value <= high)
        whens.append((condition, band.name))
    return sa.case(*whens, else_=sa.null())


def _differs(old: Any, new: Any) -> sa.ColumnElement[bool]:
    return sa.or_(*(old[name].is_distinct_from(new[name]) for name in PUSHED_FIELDS))


def _changed(org: int) -> sa.Select:
    s, f = supporter_stats, _fresh
    joined = f.outerjoin(s, sa.and_(s.c.organization_id == org, s.c.supporter_id == f.c.supporter_id))
    return (
        sa.select(f.c.supporter_id)
        .select_from(joined)
        .where(sa.or_(s.c.supporter_id.is_(None), _differs(s.c, f.c)))
        .order_by(f.c.supporter_id)
    )


def _upsert(dialect: str, org: int, now: datetime) -> Any:
    s, f = supporter_stats, _fresh
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stamp = sa.literal(now, UTCDateTime())
    rows = sa.select(
        sa.literal(org, sa.BigInteger), f.c.supporter_id, *(f.c[name] for name in STAT_FIELDS), stamp, stamp
    ).where(sa.true())  # SQLite needs a WHERE between INSERT ... SELECT and ON CONFLICT
    stmt = insert(s).from_select(
        ["organization_id", "supporter_id", *STAT_FIELDS, "computed_at", "changed_at"], rows
    )
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[s.c.organization_id, s.c.supporter_id],
        set_={
            **{name: new[name] for name in STAT_FIELDS},
            "computed_at": new.computed_at,
            "changed_at": sa.case((_differs(s.c, new), new.changed_at), else_=s.c.changed_at),
        },
    )


def _orphans(org: int, scoped: bool) -> sa.Delete:
    s = supporter_stats
    stmt = sa.delete(s).where(
        s.c.organization_id == org,
        ~sa.exists().where(_fresh.c.supporter_id == s.c.supporter_id),
    )
    if scoped:
        stmt = stmt.where(s.c.supporter_id.in_(sa.select(_scope.c.supporter_id)))
    return stmt
