"""`supportersync status`: data age, failed and stale runs, plugins; exit codes for monitoring."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from supportersync import jobs
from supportersync.db.engine import open_engine, upgrade
from supportersync.db.schema import sync_jobs
from supportersync.status import ENTITIES, check_health, format_age
from supportersync.timeutil import utcnow

ORG = 1001
HOUR = timedelta(hours=1)


def job(engine: Engine, entity: str = "all", status: str = "succeeded", *, mode: str = "incremental",
        plugins: list[dict] | None = None, error: str | None = None, org: int = ORG) -> int:
    job_id = jobs.start_job(engine, organization_id=org, org_name="default", entity=entity, mode=mode)
    if status == "running":
        return job_id
    if status == "skipped":
        with engine.begin() as conn:
            conn.execute(sa.update(sync_jobs).where(sync_jobs.c.id == job_id).values(status="skipped",
                                                                                     finished_at=utcnow()))
        return job_id
    jobs.finish_job(engine, job_id, status=status, counts=jobs.Counts(), error=error)
    if plugins is not None:
        jobs.set_plugin_outcomes(engine, job_id, plugins)
    return job_id


def health(engine: Engine, *, later: timedelta = timedelta(0), max_age: timedelta | None = HOUR,
           configured: dict[int, str] | None = None):
    with engine.connect() as conn:
        return check_health(conn, now=utcnow() + later, configured=configured if configured is not None else {},
                            max_age=max_age)


def test_a_fresh_successful_run_of_all_counts_for_every_entity(engine: Engine) -> None:
    job_id = job(engine, "all", mode="full")
    report = health(engine)
    assert report.healthy, report.problems
    (org,) = report.organizations
    assert list(org.entities) == list(ENTITIES)
    for entity in org.entities.values():
        assert entity.last_success is not None and entity.last_success.id == job_id
        assert entity.age is not None and entity.age < timedelta(minutes=1)


def test_data_older_than_max_age_is_a_problem(engine: Engine) -> None:
    job(engine, "all")
    report = health(engine, later=2 * HOUR)
    assert not report.healthy
    assert len(report.problems) == 4
    assert all("older than the maximum 1h 00m" in p for p in report.problems)
    assert health(engine, later=2 * HOUR, max_age=None).healthy


def test_the_newest_success_per_entity_wins(engine: Engine) -> None:
    job(engine, "all")
    newer = job(engine, "supporters")
    org = health(engine).organizations[0]
    assert org.entities["supporters"].last_success.id == newer
    assert org.entities["transactions"].last_success.id == newer - 1


def test_a_failed_last_run_is_a_problem_until_a_later_success(engine: Engine) -> None:
    job(engine, "all")
    failed = job(engine, "transactions", "failed", error="Classy kept failing")
    report = health(engine)
    assert [p for p in report.problems] == [
        f"default/transactions: the last run failed (job {failed}, failed at "
        f"{report.organizations[0].entities['transactions'].last_failure.finished_at:%Y-%m-%d %H:%M} UTC): "
        "Classy kept failing"]
    job(engine, "transactions")
    report = health(engine)
    assert report.healthy
    assert report.organizations[0].entities["transactions"].last_failure.id == failed


def test_skipped_and_running_runs_do_not_hide_the_last_outcome(engine: Engine) -> None:
    job(engine, "all", "failed", error="boom")
    job(engine, "all", "skipped")
    running = job(engine, "all", "running")
    entity = health(engine).organizations[0].entities["campaigns"]
    assert entity.last_run.status == "failed"
    assert entity.running.id == running
    assert "the last run failed" in entity.problems[0]


def test_a_running_job_without_heartbeat_is_a_problem(engine: Engine) -> None:
    job(engine, "all")
    stuck = job(engine, "supporters", "running")
    report = health(engine, later=timedelta(minutes=20), max_age=None)
    assert report.problems == [f"default/supporters: job {stuck} stopped reporting progress at "
                               f"{report.organizations[0].entities['supporters'].last_run.heartbeat_at:%Y-%m-%d %H:%M}"
                               " UTC without finishing (killed?); the next run marks it abandoned and resumes"]


def test_never_synced_is_stale_only_when_a_max_age_is_asked(engine: Engine) -> None:
    assert health(engine, configured={ORG: "default"}, max_age=None).healthy
    report = health(engine, configured={ORG: "default"})
    assert report.problems[0] == "default/campaigns: never synced successfully"
    assert not health(engine, configured={}).healthy  # nothing at all: nothing has been synced


def test_plugins_report_their_last_outcome_and_a_failure_is_a_problem(engine: Engine) -> None:
    job(engine, "all", plugins=[{"name": "mailchimp", "status": "partial", "error": None}])
    assert health(engine).healthy
    bad = job(engine, "all", plugins=[{"name": "mailchimp", "status": "failed", "error": "key refused"}])
    job(engine, "all")  # no plugin outcome recorded: the last one still stands
    report = health(engine)
    plugin = report.organizations[0].plugins["mailchimp"]
    assert (plugin.status, plugin.job_id, plugin.error) == ("failed", bad, "key refused")
    assert report.problems == [f"default: plugin mailchimp failed in job {bad}: key refused"]


def test_organizations_are_reported_apart(engine: Engine) -> None:
    job(engine, "all", org=1)
    job(engine, "all", "failed", org=2)
    report = health(engine, configured={3: "third"}, max_age=None)
    assert [o.organization_id for o in report.organizations] == [1, 2, 3]
    assert [o.organization_id for o in report.organizations if o.problems] == [2]


def test_format_age() -> None:
    assert [format_age(timedelta(seconds=s)) for s in (5, 600, 3 * 3600 + 240, 2 * 86400 + 5 * 3600)] == [
        "5s", "10m", "3h 04m", "2d 05h"]


# -- the command ----------------------------------------------------------------------


@pytest.fixture
def synced(db_url: str, classy_env: None, monkeypatch: pytest.MonkeyPatch, cli) -> str:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", db_url)
    assert cli("db", "upgrade").exit_code == 0
    result = cli("run", "all")
    assert result.exit_code == 0, result.output
    return db_url


def test_status_exits_zero_on_fresh_data_and_one_on_stale(synced: str, cli) -> None:
    fresh = cli("status", "--max-age", "1h")
    assert fresh.exit_code == 0, fresh.output
    assert fresh.stdout.startswith("OK: 1 organization(s)")

    engine = open_engine(synced)
    with engine.begin() as conn:
        conn.execute(sa.update(sync_jobs).values(finished_at=utcnow() - 2 * HOUR, started_at=utcnow() - 2 * HOUR))
    engine.dispose()
    stale = cli("status", "--max-age", "1h")
    assert stale.exit_code == 1
    assert stale.stdout.startswith("PROBLEM: default/campaigns: data is 2h 00m old")
    assert cli("status", "--max-age", "3h").exit_code == 0
    assert cli("status").exit_code == 0  # without a maximum age only failures count


def test_status_json_is_one_document(synced: str, cli) -> None:
    result = cli("status", "--json", "--max-age", "15m")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["healthy"] is True and doc["max_age_seconds"] == 900 and doc["problems"] == []
    (org,) = doc["organizations"]
    assert org["org_name"] == "default" and set(org["entities"]) == set(ENTITIES)
    supporters = org["entities"]["supporters"]
    assert supporters["last_success"]["status"] == "succeeded" and supporters["last_success"]["mode"] == "full"
    assert supporters["last_full_sync_at"] and supporters["cursor"]["updated_at"]


def test_status_after_a_failed_run(synced: str, cli, classy) -> None:
    classy.fail_next(50, status=500)
    failed = cli("run", "supporters")
    assert failed.exit_code == 1
    result = cli("status", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["problems"][0].startswith("default/supporters: the last run failed")


def test_status_usage_errors_exit_2(tmp_path, cli, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", sqlite_url)
    assert cli("status", "--max-age", "soon").exit_code == 2
    engine = open_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    assert cli("status", "--org", "nope").exit_code == 2
