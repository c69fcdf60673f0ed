"""supporter_stats from SQL against a plain Python computation, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supportersync.db.engine import open_engine
from supportersync.db.schema import recurring_plans, supporter_stats, supporters, transactions
from supportersync.errors import DatabaseError
from supportersync.stats import DEFAULT_SEGMENTS, SegmentConfig, load_segments, recompute, stale_supporter_ids
from supportersync.stats.compute import PUSHED_FIELDS, STAT_FIELDS
from supportersync.timeutil import UTC

from .conftest import Rows

D = Decimal
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- the straightforward Python computation ---------------------------------------

PER_YEAR = {"daily": 365, "weekly": 52, "biweekly": 26, "fortnightly": 26, "semimonthly": 24, "monthly": 12,
            "quarterly": 4, "semiannually": 2, "semiannual": 2, "yearly": 1, "annually": 1, "annual": 1}


@dataclass(frozen=True)
class Tx:
    supporter_id: int | None
    amount: Decimal | None
    purchased_at: datetime | None
    status: str = "success"
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class Plan:
    supporter_id: int | None
    amount: Decimal | None
    frequency: str | None
    status: str = "active"
    canceled_at: datetime | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class History:
    now: datetime
    supporters: frozenset[int]
    txs: tuple[Tx, ...]
    plans: tuple[Plan, ...]
    elsewhere: tuple[Tx, ...] = ()
    """Transactions of another organization, with the same supporter ids."""


def expected(h: History, segments: SegmentConfig = DEFAULT_SEGMENTS) -> dict[int, dict[str, Any]]:
    today = h.now.date()
    try:
        window_day = today.replace(year=today.year - 1)
    except ValueError:
        window_day = today.replace(year=today.year - 1, day=28)
    window = datetime.combine(window_day, time(), UTC)
    ids = set(h.supporters) | {r.supporter_id for r in (*h.txs, *h.plans) if r.supporter_id is not None}
    out = {}
    for sid in ids:
        gifts = [t for t in h.txs if t.supporter_id == sid and t.status == "success" and t.deleted_at is None
                 and t.amount is not None and t.amount > 0 and t.purchased_at is not None]
        recent = [t for t in gifts if t.purchased_at >= window]
        active = [p for p in h.plans if p.supporter_id == sid and p.status == "active" and p.canceled_at is None
                  and p.deleted_at is None]
        yearly = sum((p.amount * PER_YEAR[_key(p.frequency)] for p in active
                      if p.amount is not None and p.amount > 0 and _key(p.frequency) in PER_YEAR), D(0))
        last = max((t.purchased_at for t in gifts), default=None)
        days = max(0, (today - last.date()).days) if last else None
        lifetime = sum((t.amount for t in gifts), D(0))
        out[sid] = {
            "lifetime_amount": lifetime,
            "lifetime_count": len(gifts),
            "first_gift_at": min((t.purchased_at for t in gifts), default=None),
            "last_gift_at": last,
            "largest_gift": max((t.amount for t in gifts), default=None),
            "last_12_months_amount": sum((t.amount for t in recent), D(0)),
            "last_12_months_count": len(recent),
            "active_plans_count": len(active),
            "monthly_recurring_amount": (yearly / 12).quantize(D("0.01"), ROUND_HALF_UP),
            "days_since_last_gift": days,
            "value_tier": segments.value_tiers.label_for(lifetime if gifts else None),
            "engagement_segment": segments.engagement.label_for(days),
            "frequency_segment": segments.frequency.label_for(len(gifts) if gifts else None),
        }
    return out


def _key(frequency: str | None) -> str:
    return (frequency or "").lower().replace("-", "").replace("_", "").replace(" ", "")


# -- database helpers -------------------------------------------------------------


def store(rows: Rows, h: History) -> None:
    rows.clear()
    rows.insert(supporters, [{"id": sid} for sid in sorted(h.supporters)])
    rows.insert(transactions, [_tx_row(i, t) for i, t in enumerate(h.txs, 1)])
    rows.insert(recurring_plans, [_plan_row(i, p) for i, p in enumerate(h.plans, 1)])
    other = rows.org + 1
    rows.insert(transactions, [{**_tx_row(i, t), "organization_id": other} for i, t in enumerate(h.elsewhere, 1)])


def _tx_row(row_id: int, t: Tx) -> dict[str, Any]:
    return {"id": row_id, "supporter_id": t.supporter_id, "donation_gross_amount": t.amount,
            "purchased_at": t.purchased_at, "status": t.status, "deleted_at": t.deleted_at}


def _plan_row(row_id: int, p: Plan) -> dict[str, Any]:
    return {"id": row_id, "supporter_id": p.supporter_id, "amount": p.amount, "frequency": p.frequency,
            "status": p.status, "canceled_at": p.canceled_at, "deleted_at": p.deleted_at}


def stored(rows: Rows) -> dict[int, dict[str, Any]]:
    return {sid: {name: row[name] for name in STAT_FIELDS} for sid, row in rows.stats().items()}


def run(rows: Rows, ids: Any = None, *, now: datetime = NOW, segments: SegmentConfig = DEFAULT_SEGMENTS) -> Any:
    with rows.engine.begin() as conn:
        return recompute(conn, rows.org, ids, segments=segments, now=now)


def pushed(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if stats is None else {name: stats[name] for name in PUSHED_FIELDS}


# -- random histories -------------------------------------------------------------

SUPPORTER_IDS = st.sampled_from([1, 2, 3, 4, 5, 6])
CENTS = st.one_of(st.integers(1, 3_000), st.integers(1, 2_000_000)).map(lambda cents: D(cents) / 100)
AMOUNTS = st.one_of(st.none(), st.just(D("0")), st.just(D("-5.00")), CENTS)
TX_STATUSES = st.sampled_from(["success", "refunded", "failed", "pending", "test", "canceled", "SUCCESS"])
PLAN_STATUSES = st.sampled_from(["active", "canceled", "paused", "failing", "ended"])
FREQUENCIES = st.sampled_from(["monthly", "Monthly", "yearly", "quarterly", "semi-annually", "Semi_Annually",
                               "weekly", "bi-weekly", "daily", "fortnightly", "annually", "every so often", None])
NOWS = st.one_of(
    st.sampled_from([datetime(2024, 2, 29, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC),
                     datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]),
    st.datetimes(datetime(2023, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
)
MAYBE_NOW = st.sampled_from([False, False, False, True])


def moments(now: datetime) -> st.SearchStrategy[datetime]:
    """Gift dates near the edges that matter: today and tomorrow (clock skew), whole days
    back, UTC midnight, segment edges, the 12-month window."""
    today = now.date()
    window_day = today.replace(year=today.year - 1, day=28 if (today.month, today.day) == (2, 29) else today.day)
    window = datetime.combine(window_day, time(), UTC)
    midnight = datetime.combine(today, time(), UTC)
    return st.one_of(
        st.integers(-2, 2).map(lambda days: now - timedelta(days=days)),
        st.sampled_from([30, 31, 90, 91, 365, 366, 730, 731]).map(lambda days: midnight - timedelta(days=days)),
        st.integers(0, 800).map(lambda days: now - timedelta(days=days)),
        st.timedeltas(timedelta(days=-2), timedelta(days=1200)).map(lambda ago: now - ago),
        st.sampled_from([window, window - timedelta(microseconds=1), midnight, midnight - timedelta(microseconds=1)]),
    )


def txs(now: datetime) -> st.SearchStrategy[Tx]:
    gift = st.builds(Tx, SUPPORTER_IDS, CENTS, moments(now))
    anything = st.builds(Tx, st.one_of(SUPPORTER_IDS, st.none()), AMOUNTS, st.one_of(st.none(), moments(now)),
                         TX_STATUSES, MAYBE_NOW.map(lambda deleted: now if deleted else None))
    return st.one_of(gift, gift, anything)


def plans(now: datetime) -> st.SearchStrategy[Plan]:
    active = st.builds(Plan, SUPPORTER_IDS, CENTS, FREQUENCIES)
    anything = st.builds(Plan, st.one_of(SUPPORTER_IDS, st.none()), AMOUNTS, FREQUENCIES, PLAN_STATUSES,
                         MAYBE_NOW.map(lambda canceled: now if canceled else None),
                         MAYBE_NOW.map(lambda deleted: now if deleted else None))
    return st.one_of(active, active, anything)


@st.composite
def histories(draw: st.DrawFn) -> History:
    now = draw(NOWS)
    return History(
        now=now,
        supporters=frozenset(draw(st.sets(SUPPORTER_IDS, max_size=4))),
        txs=tuple(draw(st.lists(txs(now), max_size=25))),
        plans=tuple(draw(st.lists(plans(now), max_size=10))),
        elsewhere=tuple(draw(st.lists(txs(now), max_size=4))),
    )


# -- properties -------------------------------------------------------------------


@PROPERTY
@given(h=histories())
def test_full_recompute_matches_python(rows: Rows, h: History) -> None:
    store(rows, h)
    result = run(rows, now=h.now)
    want = expected(h)
    assert stored(rows) == want
    assert result.computed == len(want)
    assert result.changed_ids == tuple(sorted(want))


@PROPERTY
@given(before=histories(), data=st.data())
def test_incremental_recompute_of_touched_supporters_matches_python(rows: Rows, before: History,
                                                                    data: st.DataObject) -> None:
    store(rows, before)
    run(rows, now=before.now)

    # A sync run: some rows change (status, amount, date, even supporter), some arrive.
    now = before.now
    new_txs = [data.draw(st.one_of(st.just(t), txs(now)), label="tx") for t in before.txs]
    new_txs += data.draw(st.lists(txs(now), max_size=5), label="new txs")
    new_plans = [data.draw(st.one_of(st.just(p), plans(now)), label="plan") for p in before.plans]
    arrived = data.draw(st.sets(SUPPORTER_IDS, max_size=2), label="new supporters") - before.supporters
    after = replace(before, txs=tuple(new_txs), plans=tuple(new_plans), supporters=before.supporters | arrived)

    touched: set[int | None] = set(arrived)
    with rows.engine.begin() as conn:
        for table, old, new, to_row in ((transactions, before.txs, new_txs, _tx_row),
                                        (recurring_plans, before.plans, new_plans, _plan_row)):
            for row_id, (was, now_is) in enumerate(zip(old, new, strict=False), 1):
                if was != now_is:
                    touched |= {was.supporter_id, now_is.supporter_id}
                    values = to_row(row_id, now_is)
                    conn.execute(table.update().where(table.c.organization_id == rows.org, table.c.id == row_id)
                                 .values(**values))
        added = new_txs[len(before.txs):]
        touched |= {t.supporter_id for t in added}
    rows.insert(transactions, [_tx_row(i, t) for i, t in enumerate(added, len(before.txs) + 1)])
    rows.insert(supporters, [{"id": sid} for sid in sorted(arrived)])

    result = run(rows, touched, now=now)
    old, new = expected(before), expected(after)
    assert stored(rows) == new
    assert set(result.changed_ids) == {sid for sid in new if pushed(new[sid]) != pushed(old.get(sid))}
    assert result.removed == len(set(old) - set(new))


# -- what the issue asks for, by example ------------------------------------------


def test_supporter_upsert_never_changes_stats(rows: Rows) -> None:
    rows.supporter(1, first_name="Ada")
    rows.transaction(1, "50.00", NOW - timedelta(days=3))
    rows.plan(1, "10.00", "monthly")
    run(rows)
    before = rows.stats()

    # What the sync's upsert does: rewrite every synced column of the supporter row.
    rows.update(supporters, 1, first_name="Ada L.", email_address="ada@example.org", updated_at=NOW,
                synced_at=NOW, raw={"id": 1, "first_name": "Ada L."}, raw_hash="y")
    assert rows.stats() == before
    assert run(rows, [1]).changed_ids == ()
    assert pushed(rows.stats()[1]) == pushed(before[1])


def test_refund_lowers_the_lifetime_amount_after_the_next_incremental_run(rows: Rows) -> None:
    rows.transaction(1, "100.00", NOW - timedelta(days=10))
    refunded = rows.transaction(1, "400.00", NOW - timedelta(days=5))
    run(rows)
    assert rows.stats()[1]["lifetime_amount"] == D("500.00")
    assert rows.stats()[1]["value_tier"] == "Committed"

    rows.update(transactions, refunded, status="refunded", refunded_at=NOW)
    assert run(rows, [1]).changed_ids == (1,)
    stats = rows.stats()[1]
    assert (stats["lifetime_amount"], stats["lifetime_count"], stats["largest_gift"]) == (D("100.00"), 1, D("100.00"))
    assert (stats["value_tier"], stats["frequency_segment"]) == ("Regular", "One-Time")


def test_plan_cancelled_at_the_source_drops_out_of_the_monthly_amount(rows: Rows) -> None:
    monthly = rows.plan(1, "20.00", "monthly")
    yearly = rows.plan(1, "120.00", "yearly")
    run(rows)
    assert (rows.stats()[1]["active_plans_count"], rows.stats()[1]["monthly_recurring_amount"]) == (2, D("30.00"))

    rows.update(recurring_plans, monthly, status="canceled", canceled_at=NOW)
    assert run(rows, [1]).changed_ids == (1,)
    assert (rows.stats()[1]["active_plans_count"], rows.stats()[1]["monthly_recurring_amount"]) == (1, D("10.00"))

    # A cancellation date counts even if the status has not caught up yet.
    rows.update(recurring_plans, yearly, canceled_at=NOW)
    run(rows, [1])
    assert (rows.stats()[1]["active_plans_count"], rows.stats()[1]["monthly_recurring_amount"]) == (0, D("0.00"))


@pytest.mark.parametrize(
    "gifts",
    [
        [],
        [("failed", "50.00", NOW)],
        [("success", None, NOW)] * 30,
        [("success", "0.00", NOW)] * 30,
        [("success", "25.00", None)] * 30,
        [("refunded", "1000.00", NOW), ("test", "5.00", NOW), ("pending", "5.00", NOW)],
    ],
    ids=["nothing", "failed", "null-amounts", "zero-amounts", "no-date", "not-success"],
)
def test_supporters_without_a_gift_are_prospects_never_champions(rows: Rows, gifts: list[tuple]) -> None:
    rows.supporter(1)
    for status, amount, at in gifts:
        rows.transaction(1, amount, at, status=status)
    run(rows)
    stats = rows.stats()[1]
    assert (stats["value_tier"], stats["engagement_segment"], stats["frequency_segment"]) == (
        "Prospect", "Never Donated", "No Gifts")
    assert (stats["lifetime_amount"], stats["lifetime_count"], stats["last_12_months_count"]) == (D("0"), 0, 0)
    assert stats["days_since_last_gift"] is stats["last_gift_at"] is stats["largest_gift"] is None


def test_transactions_that_arrive_before_their_supporter(rows: Rows) -> None:
    rows.transaction(7, "30.00", NOW - timedelta(days=40))
    rows.transaction(7, "20.00", NOW - timedelta(days=2))
    assert run(rows, [7]).changed_ids == (7,)
    early = rows.stats()[7]
    assert (early["lifetime_amount"], early["lifetime_count"], early["engagement_segment"]) == (D("50"), 2, "Recent")

    rows.supporter(7, first_name="Late")
    result = run(rows, [7])
    assert result.changed_ids == ()
    assert pushed(rows.stats()[7]) == pushed(early)


def test_changed_ids_report_only_values_a_plugin_pushes(rows: Rows) -> None:
    rows.supporter(1)
    rows.transaction(2, "10.00", NOW - timedelta(days=29))
    first = run(rows)
    assert first.changed_ids == (1, 2)  # new rows count as changed, Prospects included
    created = rows.stats()[2]["changed_at"]

    assert run(rows).changed_ids == ()

    # Next day: days_since_last_gift and computed_at move, nothing a plugin pushes does.
    later = NOW + timedelta(days=1)
    assert run(rows, now=later).changed_ids == ()
    stats = rows.stats()[2]
    assert (stats["days_since_last_gift"], stats["engagement_segment"]) == (30, "Recent")
    assert (stats["computed_at"], stats["changed_at"]) == (later, created)

    # The day after, the gift is 31 days old: Recent -> Active is a change.
    latest = NOW + timedelta(days=2)
    assert run(rows, now=latest).changed_ids == (2,)
    assert rows.stats()[2]["changed_at"] == latest


def test_a_gift_leaving_the_12_month_window_is_a_change(rows: Rows) -> None:
    rows.transaction(1, "10.00", datetime(2024, 6, 15, 8, 0, tzinfo=UTC))
    run(rows, now=datetime(2025, 6, 15, 23, 0, tzinfo=UTC))
    assert rows.stats()[1]["last_12_months_count"] == 1
    assert run(rows, now=datetime(2025, 6, 16, 0, 0, tzinfo=UTC)).changed_ids == (1,)
    assert (rows.stats()[1]["last_12_months_count"], rows.stats()[1]["last_12_months_amount"]) == (0, D("0"))


def test_deleted_transactions_and_plans_are_ignored(rows: Rows) -> None:
    rows.transaction(1, "10.00", NOW, deleted_at=NOW)
    rows.transaction(1, "15.00", NOW)
    rows.plan(1, "10.00", "monthly", deleted_at=NOW)
    rows.plan(2, "10.00", "monthly", deleted_at=NOW)
    run(rows)
    stats = rows.stats()
    assert (stats[1]["lifetime_amount"], stats[1]["active_plans_count"]) == (D("15.00"), 0)
    assert stats[2]["frequency_segment"] == "No Gifts"  # still mentioned, so still a row


@pytest.mark.parametrize(
    ("amount", "frequency", "monthly"),
    [("120.00", "yearly", "10.00"), ("30.00", "quarterly", "10.00"), ("60.00", "Semi-Annually", "10.00"),
     ("10.00", "weekly", "43.33"), ("10.00", "bi-weekly", "21.67"), ("1.00", "daily", "30.42"),
     ("0.06", "yearly", "0.01"), ("0.39", "biweekly", "0.85"), ("25.00", "MONTHLY", "25.00"),
     ("25.00", "whenever", "0.00"), ("25.00", None, "0.00"), (None, "monthly", "0.00")],
)
def test_monthly_recurring_amount_is_normalised_and_rounded_half_up(
        rows: Rows, amount: str | None, frequency: str | None, monthly: str) -> None:
    rows.plan(1, amount, frequency)
    run(rows)
    assert (rows.stats()[1]["active_plans_count"], rows.stats()[1]["monthly_recurring_amount"]) == (1, D(monthly))


def test_other_organizations_do_not_count(rows: Rows) -> None:
    rows.transaction(1, "10.00", NOW)
    rows.transaction(1, "99.00", NOW, org=rows.org + 1)
    rows.plan(1, "99.00", "monthly", org=rows.org + 1)
    run(rows)
    assert set(rows.stats()) == {1}
    assert (rows.stats()[1]["lifetime_amount"], rows.stats()[1]["active_plans_count"]) == (D("10.00"), 0)
    assert rows.stats(org=rows.org + 1) == {}


def test_stats_of_ids_no_row_mentions_are_removed(rows: Rows) -> None:
    gift = rows.transaction(1, "10.00", NOW)
    rows.transaction(2, "10.00", NOW)
    run(rows)
    with rows.engine.begin() as conn:
        conn.execute(transactions.delete().where(transactions.c.id == gift))
    result = run(rows, [1, 2])
    assert (result.computed, result.removed, result.changed_ids) == (1, 1, ())
    assert set(rows.stats()) == {2}


def test_long_id_lists_are_loaded_in_chunks(rows: Rows) -> None:
    rows.transaction(24_999, "10.00", NOW)
    result = run(rows, range(1, 25_001))
    assert (result.computed, result.changed_ids) == (1, (24_999,))


def test_empty_id_list_does_nothing(rows: Rows) -> None:
    rows.transaction(1, "10.00", NOW)
    assert run(rows, []).computed == 0
    assert rows.stats() == {}


def test_recompute_runs_in_the_callers_transaction(rows: Rows) -> None:
    rows.transaction(1, "10.00", NOW)
    with rows.engine.connect() as conn:
        with conn.begin() as tx:
            recompute(conn, rows.org, None, segments=DEFAULT_SEGMENTS, now=NOW)
            assert conn.execute(sa.select(sa.func.count()).select_from(supporter_stats)).scalar() == 1
            tx.rollback()
    assert rows.stats() == {}
    run(rows)  # and again after a rollback, whatever temporary tables a dialect kept
    assert set(rows.stats()) == {1}


def test_recompute_twice_in_one_transaction(rows: Rows) -> None:
    rows.transaction(1, "10.00", NOW)
    with rows.engine.begin() as conn:
        recompute(conn, rows.org, [1], segments=DEFAULT_SEGMENTS, now=NOW)
        assert recompute(conn, rows.org, None, segments=DEFAULT_SEGMENTS, now=NOW).changed_ids == ()


def test_postgres_jit_setting_is_restored(rows: Rows) -> None:
    if rows.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with rows.engine.begin() as conn:
        before = conn.execute(sa.text("SELECT current_setting('jit')")).scalar()
        recompute(conn, rows.org, None, segments=DEFAULT_SEGMENTS, now=NOW)
        assert conn.execute(sa.text("SELECT current_setting('jit')")).scalar() == before


def test_custom_segments_label_the_rows(rows: Rows) -> None:
    segments = load_segments({"value_tiers": [
        {"name": "None yet", "none": True},
        {"name": "Under 25.50", "min": 0, "max": 25.50},
        {"name": "25.50 and up", "min": 25.50},
    ]})
    rows.transaction(1, "25.49", NOW)
    rows.transaction(2, "25.50", NOW)
    rows.supporter(3)
    run(rows, segments=segments)
    assert {sid: s["value_tier"] for sid, s in rows.stats().items()} == {
        1: "Under 25.50", 2: "25.50 and up", 3: "None yet"}


def test_stale_supporters(rows: Rows) -> None:
    rows.supporter(1)
    rows.transaction(2, "10.00", NOW)
    rows.transaction(3, "10.00", NOW)
    with rows.engine.connect() as conn:
        assert stale_supporter_ids(conn, rows.org, now=NOW) == [1, 2, 3]  # no stats yet
    run(rows)
    with rows.engine.connect() as conn:
        assert stale_supporter_ids(conn, rows.org, now=NOW + timedelta(hours=11)) == []  # same UTC day
        assert stale_supporter_ids(conn, rows.org, now=NOW + timedelta(hours=12)) == [1, 2, 3]  # next day
    rows.transaction(3, "5.00", NOW, synced_at=NOW + timedelta(minutes=1))  # written after the stats
    rows.supporter(4)
    with rows.engine.connect() as conn:
        assert stale_supporter_ids(conn, rows.org, now=NOW) == [3, 4]


def test_database_failures_are_wrapped(db_url: str) -> None:
    engine = open_engine(db_url)  # no migrations: no tables
    try:
        with pytest.raises(DatabaseError, match="Recomputing supporter statistics failed"):
            with engine.begin() as conn:
                recompute(conn, 1, None, segments=DEFAULT_SEGMENTS, now=NOW)
    finally:
        engine.dispose()
