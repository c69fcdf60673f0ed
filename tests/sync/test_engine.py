"""The sync engine against the simulated Classy account, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from supportersync.config import OrgSettings, Secret, Settings
from supportersync.db.schema import ENTITY_TABLES, sync_cursors, sync_errors, sync_jobs
from supportersync.engine import run_sync
from supportersync.errors import ExitCode
from supportersync.locking import hold_locks
from supportersync.testing.classy_sim import ClassySimulator
from supportersync.timeutil import parse_datetime

UTC = timezone.utc
NO_SLEEP = {"sleep": lambda seconds: None}


def sync(settings: Settings, org: OrgSettings, engine: Engine, sim: ClassySimulator, entity: str = "all",
         mode: str = "incremental", transport: httpx.BaseTransport | None = None, **kwargs: Any):
    return run_sync(settings, org, engine, entity, mode, transport=transport or sim.transport(), **NO_SLEEP,
                    **kwargs)


def stored(engine: Engine, entity: str, *, include_deleted: bool = False) -> dict[int, dict]:
    table = ENTITY_TABLES[entity]
    query = sa.select(table.c.id, table.c.raw, table.c.deleted_at)
    if not include_deleted:
        query = query.where(table.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return {row.id: row.raw for row in conn.execute(query)}


def source(sim: ClassySimulator, entity: str) -> dict[int, dict]:
    return {i: r for i, r in sim.records[entity].items() if isinstance(r, dict) and "id" in r}


def assert_mirrors_source(engine: Engine, sim: ClassySimulator, entities=("campaigns", "supporters",
                                                                          "recurring_plans", "transactions")):
    for entity in entities:
        assert stored(engine, entity) == source(sim, entity), entity


def job_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(sync_jobs).order_by(sync_jobs.c.id))]


def test_first_run_is_full_and_mirrors_the_source(engine, setup, sim):
    settings, org = setup
    outcome = sync(settings, org, engine, sim)
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert {r.entity: r.mode for r in outcome.entities} == dict.fromkeys(
        ["campaigns", "supporters", "recurring_plans", "transactions"], "full")
    assert_mirrors_source(engine, sim)
    job = job_rows(engine)[-1]
    assert job["status"] == "succeeded"
    assert job["inserted"] == sum(len(source(sim, e)) for e in ENTITY_TABLES)
    assert job["finished_at"] >= job["started_at"]
    assert job["requests"] > 0 and job["hostname"] and job["pid"]


def test_rerun_changes_nothing(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim, mode="full")
    with engine.connect() as conn:
        before = {e: conn.execute(sa.select(t.c.id, t.c.synced_at).order_by(t.c.id)).all()
                  for e, t in ENTITY_TABLES.items()}
    again = sync(settings, org, engine, sim, mode="full")
    assert again.counts.inserted == again.counts.updated == again.counts.deleted == 0
    assert again.counts.unchanged == again.counts.fetched
    with engine.connect() as conn:
        after = {e: conn.execute(sa.select(t.c.id, t.c.synced_at).order_by(t.c.id)).all()
                 for e, t in ENTITY_TABLES.items()}
    assert before == after


def test_typed_columns_keep_source_values(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim)
    supporter = next(iter(source(sim, "supporters").values()))
    table = ENTITY_TABLES["supporters"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == supporter["id"])).one()._mapping
    assert row["updated_at"] == parse_datetime(supporter["updated_at"])
    assert row["updated_at"].tzinfo is not None
    assert row["email_opt_in"] == bool(supporter["opt_in"])
    tx = next(r for r in source(sim, "transactions").values() if r.get("donation_gross_amount"))
    t = ENTITY_TABLES["transactions"]
    with engine.connect() as conn:
        amount = conn.execute(sa.select(t.c.donation_gross_amount).where(t.c.id == tx["id"])).scalar_one()
    assert Decimal(amount) == Decimal(str(tx["donation_gross_amount"])).quantize(Decimal("0.01"))


def test_large_campaign_goal_fits(engine, setup, sim):
    settings, org = setup
    big = sim.add("campaigns", name="Capital appeal", goal=250_000_000.5, raw_goal="250000000.50")
    sync(settings, org, engine, sim, entity="campaigns")
    t = ENTITY_TABLES["campaigns"]
    with engine.connect() as conn:
        goal = conn.execute(sa.select(t.c.goal).where(t.c.id == big["id"])).scalar_one()
    assert Decimal(goal) == Decimal("250000000.50")


def test_incremental_picks_up_changes_refunds_and_new_records(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim)
    tx = next(r for r in source(sim, "transactions").values() if r["status"] == "success")
    sim.refund(tx["id"])
    supporter = next(iter(source(sim, "supporters").values()))
    sim.update("supporters", supporter["id"], first_name="Zoë")
    new = sim.add("supporters", first_name="Nouveau", email_address="nouveau@charity.org")
    outcome = sync(settings, org, engine, sim)
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert {r.mode for r in outcome.entities} == {"incremental"}
    assert_mirrors_source(engine, sim)
    assert stored(engine, "transactions")[tx["id"]]["status"] == "refunded"
    assert new["id"] in outcome.result.supporters_inserted
    assert supporter["id"] in outcome.result.supporters_updated


def test_incremental_with_nothing_new_costs_one_request_per_entity(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim)
    sim.reset_log()
    outcome = sync(settings, org, engine, sim)
    data_calls = [r for r in sim.request_log if r.path.startswith("/2.0/")]
    assert len(data_calls) == 4, [r.path for r in data_calls]
    assert outcome.counts.inserted == outcome.counts.updated == 0


def test_hundreds_sharing_one_second_are_all_read(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim, entity="supporters")
    ids = list(source(sim, "supporters"))
    moment = datetime.now(UTC).replace(microsecond=0)  # at or after the first run's cursor
    for i in ids:  # every supporter changes within one second: 3 pages of 20 at one updated_at
        sim.update("supporters", i, at=moment, last_name=f"Cluster-{i}")
    outcome = sync(settings, org, engine, sim, entity="supporters")
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert outcome.counts.updated == len(ids)
    assert_mirrors_source(engine, sim, ["supporters"])


def test_records_changing_while_paging_are_not_lost(engine, db_url, sim, make_settings, hooked):
    settings, org = make_settings(db_url, sim, per_page=10)
    sync(settings, org, engine, sim, entity="supporters")
    ids = sorted(source(sim, "supporters"))
    base = datetime.now(UTC).replace(microsecond=0)
    for n, i in enumerate(ids):  # spread over distinct seconds, oldest first
        sim.update("supporters", i, at=base + timedelta(seconds=n), city=f"City {n}")
    moved: list[int] = []

    def meddle(number: int, request: httpx.Request) -> None:
        # While we page, earlier records are updated again and jump to the end of the order.
        if "/supporters" in request.url.path and number in (3, 4, 5):
            victim = ids[number]
            sim.update("supporters", victim, at=base + timedelta(seconds=200 + number), city="Moved")
            moved.append(victim)

    outcome = sync(settings, org, engine, sim, entity="supporters", transport=hooked(sim, meddle))
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert moved
    assert_mirrors_source(engine, sim, ["supporters"])


def test_orphan_children_are_kept(engine, setup, sim):
    settings, org = setup
    orphan = sim.add("transactions", supporter_id=999_999_999, campaign_id=888_888_888, status="success",
                     donation_gross_amount=10.0, total_gross_amount=10.0)
    outcome = sync(settings, org, engine, sim, entity="transactions")
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert orphan["id"] in stored(engine, "transactions")


def test_malformed_record_is_recorded_and_the_rest_continues(engine, setup, sim):
    settings, org = setup
    sim.inject_malformed("supporters", {"first_name": "No id", "updated_at": "2026-01-01T00:00:00+0000"})
    sim.inject_malformed("supporters", {"id": 77, "updated_at": "2026-01-01T00:00:00+0000", "member_id": "abc"})
    outcome = sync(settings, org, engine, sim, entity="supporters")
    assert outcome.exit_code == ExitCode.RECORD_ERRORS
    assert outcome.status == "partial"
    assert outcome.counts.failed == 2
    with engine.connect() as conn:
        errors = conn.execute(sa.select(sync_errors).order_by(sync_errors.c.source_id)).all()
    reasons = {e.source_id: e.reason for e in errors}
    assert reasons[None] == "missing id"
    assert "member_id" in reasons["77"]
    assert all(e.job_id == outcome.job_id and e.raw for e in errors)
    assert stored(engine, "supporters") == source(sim, "supporters")


def test_failed_page_fails_the_job_without_passing_committed_data(engine, db_url, sim, make_settings, hooked):
    settings, org = make_settings(db_url, sim, per_page=10)
    now = datetime.now(UTC).replace(microsecond=0)
    sync(settings, org, engine, sim, entity="supporters", clock=lambda: now - timedelta(hours=1))
    ids = sorted(source(sim, "supporters"))
    for n, i in enumerate(ids):
        sim.update("supporters", i, at=now - timedelta(minutes=30) + timedelta(seconds=n), city=f"Town {n}")
    calls = {"n": 0}

    def fail_later(number: int, request: httpx.Request) -> None:
        if "/supporters" in request.url.path:
            calls["n"] += 1
            if calls["n"] == 3:
                sim.fail_next(3, status=503)  # max_retries=2: every attempt of this page fails

    outcome = sync(settings, org, engine, sim, entity="supporters", transport=hooked(sim, fail_later))
    assert outcome.exit_code == ExitCode.FAILED
    assert "503" in outcome.error
    job = job_rows(engine)[-1]
    assert job["status"] == "failed" and "503" in job["error"]
    assert job["retries"] >= 2
    with engine.connect() as conn:
        cursor = conn.execute(sa.select(sync_cursors.c.cursor).where(sync_cursors.c.entity == "supporters")).scalar_one()
    cursor_at = parse_datetime(cursor["updated_at"])
    before_cursor = {i: r for i, r in source(sim, "supporters").items() if parse_datetime(r["updated_at"]) < cursor_at}
    assert 10 <= len(before_cursor) < len(ids)  # it moved with the committed pages, and no further
    rows = stored(engine, "supporters")
    assert all(rows[i] == r for i, r in before_cursor.items())
    again = sync(settings, org, engine, sim, entity="supporters")
    assert again.exit_code == ExitCode.OK, again.error
    assert_mirrors_source(engine, sim, ["supporters"])


def test_unreachable_api_retries_then_fails(engine, db_url, sim, make_settings):
    settings, org = make_settings(db_url, sim, max_retries=3)
    sleeps: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    outcome = run_sync(settings, org, engine, "supporters", "incremental", transport=httpx.MockTransport(refuse),
                       sleep=sleeps.append)
    assert outcome.exit_code == ExitCode.FAILED
    assert outcome.status == "failed"
    assert "network error" in outcome.error
    assert len(sleeps) == 3
    job = job_rows(engine)[-1]
    assert job["status"] == "failed" and job["retries"] == 3


def test_wrong_credentials_exit_2_and_write_only_the_failed_job(engine, db_url, sim, make_settings):
    settings, org = make_settings(db_url, sim, client_secret=Secret("wrong-secret"))
    outcome = sync(settings, org, engine, sim)
    assert outcome.exit_code == ExitCode.USAGE
    assert "SUPPORTERSYNC_CLASSY_CLIENT_SECRET" in outcome.error
    assert "wrong-secret" not in outcome.error
    for entity in ENTITY_TABLES:
        assert stored(engine, entity, include_deleted=True) == {}
    jobs = job_rows(engine)
    assert [j["status"] for j in jobs] == ["failed"]
    assert "wrong-secret" not in repr(jobs)


def test_concurrent_run_is_skipped_with_exit_5(engine, setup, sim):
    settings, org = setup
    with hold_locks(engine, org.organization_id, ["supporters"]):
        outcome = sync(settings, org, engine, sim, entity="supporters")
    assert outcome.exit_code == ExitCode.LOCKED
    assert job_rows(engine)[-1]["status"] == "skipped"
    # `all` needs every entity's lock, so it is skipped too while one is held
    with hold_locks(engine, org.organization_id, ["transactions"]):
        assert sync(settings, org, engine, sim).exit_code == ExitCode.LOCKED
    assert sync(settings, org, engine, sim).exit_code == ExitCode.OK


def test_a_dead_runs_job_is_marked_abandoned(engine, setup, sim):
    settings, org = setup
    from supportersync.jobs import start_job

    dead = start_job(engine, organization_id=org.organization_id, org_name="default", entity="supporters",
                     mode="full")
    outcome = sync(settings, org, engine, sim, entity="supporters")
    assert outcome.exit_code == ExitCode.OK
    statuses = {j["id"]: j["status"] for j in job_rows(engine)}
    assert statuses[dead] == "abandoned"


def test_full_sync_marks_vanished_records_deleted(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim)
    gone = sorted(source(sim, "supporters"))[:3]
    for i in gone:
        sim.delete("supporters", i)
    incremental = sync(settings, org, engine, sim, entity="supporters")
    assert incremental.counts.deleted == 0  # supporters are hard-deleted: incremental pulls never see it
    full = sync(settings, org, engine, sim, entity="supporters", mode="full")
    assert full.exit_code == ExitCode.OK, full.error
    assert full.counts.deleted == 3
    assert full.result.supporters_deleted == frozenset(gone)
    everything = stored(engine, "supporters", include_deleted=True)
    assert set(gone) <= set(everything)  # kept, only marked
    assert_mirrors_source(engine, sim, ["supporters"])


def test_delete_guard_stops_a_suspiciously_small_full_sync(engine, db_url, sim, make_settings, with_sync):
    settings, org = make_settings(db_url, sim)
    settings = with_sync(settings, safety_lag_seconds=0, delete_guard_ratio=0.5)
    sync(settings, org, engine, sim, entity="supporters")
    for i in sorted(source(sim, "supporters"))[:40]:
        sim.delete("supporters", i)
    outcome = sync(settings, org, engine, sim, entity="supporters", mode="full")
    assert outcome.exit_code == ExitCode.FAILED
    assert "delete_guard_ratio" in outcome.error
    assert len(stored(engine, "supporters")) == 60  # nothing marked deleted


def test_token_is_renewed_once_on_401(engine, setup, sim):
    settings, org = setup
    sync(settings, org, engine, sim, entity="campaigns")
    sim.revoke_tokens()
    outcome = sync(settings, org, engine, sim, entity="campaigns")
    assert outcome.exit_code == ExitCode.OK, outcome.error


def test_secret_never_sent_in_a_url(engine, setup, sim, hooked):
    settings, org = setup
    seen: list[str] = []
    sync(settings, org, engine, sim, entity="campaigns",
         transport=hooked(sim, lambda n, request: seen.append(str(request.url))))
    assert seen and not any("sim-client-secret" in url for url in seen)


def test_a_deletion_during_a_full_crawl_loses_no_other_record(engine, db_url, sim, make_settings, hooked):
    settings, org = make_settings(db_url, sim, per_page=10, concurrency=2)
    victim = sorted(source(sim, "supporters"))[3]  # on page 1: every later record shifts back by one
    state = {"deleted": False}

    def delete_early(number: int, request: httpx.Request) -> None:
        if "/supporters" in request.url.path and request.url.params.get("page") == "3" and not state["deleted"]:
            sim.delete("supporters", victim)
            state["deleted"] = True

    outcome = sync(settings, org, engine, sim, entity="supporters", transport=hooked(sim, delete_early))
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert state["deleted"]
    assert_mirrors_source(engine, sim, ["supporters"])  # nobody skipped by the shift
    assert victim not in stored(engine, "supporters")


def test_records_leaving_a_crowded_second_while_it_is_read(engine, db_url, sim, make_settings, hooked):
    settings, org = make_settings(db_url, sim, per_page=10)
    sync(settings, org, engine, sim, entity="supporters")
    ids = sorted(source(sim, "supporters"))
    moment = datetime.now(UTC).replace(microsecond=0)
    for i in ids:  # 60 supporters in one second: six pages of that second alone
        sim.update("supporters", i, at=moment, first_name=f"Crowd {i}")
    moved: list[int] = []

    def move_one(number: int, request: httpx.Request) -> None:
        query = request.url.params.get("filter", "")
        if query.startswith("updated_at=") and request.url.params.get("page") == "2" and not moved:
            # An early record of the second changes again: everything after it shifts back by one.
            sim.update("supporters", ids[0], at=moment + timedelta(seconds=1), first_name="Moved on")
            moved.append(ids[0])

    outcome = sync(settings, org, engine, sim, entity="supporters", transport=hooked(sim, move_one))
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert moved
    assert_mirrors_source(engine, sim, ["supporters"])
