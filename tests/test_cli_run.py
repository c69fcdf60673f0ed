"""`supportersync run`, `jobs` and `db` as cron runs them: real processes, loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from supportersync.db.engine import open_engine
from supportersync.db.schema import ENTITY_TABLES, sync_jobs
from supportersync.locking import hold_locks
from supportersync.testing.classy_sim import ClassySimulator, RunningServer

SECRET = "e2e-secret-9d8c7b"


@pytest.fixture
def sim() -> Iterator[ClassySimulator]:
    yield ClassySimulator(supporters=300, transactions=1500, recurring_plans=40, campaigns=5, seed=3,
                          client_id="e2e-client", client_secret=SECRET)


@pytest.fixture
def served(sim: ClassySimulator) -> Iterator[RunningServer]:
    with sim.serve() as server:
        yield server


@pytest.fixture
def env(db_url: str, served: RunningServer, sim: ClassySimulator, tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTERSYNC_")}
    environment.update(
        sim.settings_env(served),
        SUPPORTERSYNC_DATABASE_URL=db_url,
        SUPPORTERSYNC_CLASSY_MAX_RETRIES="1",
        SUPPORTERSYNC_SYNC_SAFETY_LAG_SECONDS="0",
        SUPPORTERSYNC_LOAD_PLUGINS="",
    )
    return environment


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supportersync", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def jobs(db_url: str) -> list[dict]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(sync_jobs).order_by(sync_jobs.c.id))]
    finally:
        engine.dispose()


def stored_ids(db_url: str, entity: str) -> list[int]:
    engine = sa.create_engine(db_url)
    table = ENTITY_TABLES[entity]
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(table.c.id).where(table.c.deleted_at.is_(None))).scalars())
    finally:
        engine.dispose()


def test_cron_run_prints_nothing_on_success_and_records_the_job(env, db_url, sim):
    assert cli(env, "db", "upgrade").returncode == 0
    result = cli(env, "run", "all")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    listed = cli(env, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    docs = json.loads(listed.stdout)
    assert docs[0]["status"] == "succeeded" and docs[0]["entity"] == "all"
    assert set(docs[0]["records"]) >= {"fetched", "inserted", "updated", "deleted", "failed"}
    assert docs[0]["records"]["inserted"] == sum(len(sim.records[e]) for e in ENTITY_TABLES)
    assert docs[0]["plugins"] == []
    assert SECRET not in listed.stdout
    shown = cli(env, "jobs", "show", str(docs[0]["id"]), "--json")
    assert json.loads(shown.stdout)["record_errors"]["total"] == 0


def test_run_refuses_a_database_that_is_behind(env):
    result = cli(env, "run", "supporters")
    assert result.returncode == 2
    assert "supportersync db upgrade" in result.stderr


def test_unopenable_database_url_is_a_configuration_error(env, tmp_path):
    env = dict(env, SUPPORTERSYNC_DATABASE_URL="postgresql+psycopg://who:pa55word@127.0.0.1:1/none")
    result = cli(env, "run", "supporters")
    assert result.returncode == 2
    assert "SUPPORTERSYNC_DATABASE_URL" in result.stderr
    assert "pa55word" not in result.stderr


def test_wrong_credentials_exit_2_with_a_clear_message(env, db_url):
    cli(env, "db", "upgrade")
    result = cli(dict(env, SUPPORTERSYNC_CLASSY_CLIENT_SECRET="not-the-secret"), "run", "all")
    assert result.returncode == 2
    assert "Classy refused the credentials" in result.stderr
    assert "not-the-secret" not in result.stderr
    assert [j["status"] for j in jobs(db_url)] == ["failed"]


def test_missing_setting_stops_before_touching_anything(env, db_url):
    cli(env, "db", "upgrade")
    environment = {k: v for k, v in env.items() if k != "SUPPORTERSYNC_CLASSY_CLIENT_ID"}
    result = cli(environment, "run", "supporters")
    assert result.returncode == 2
    assert "SUPPORTERSYNC_CLASSY_CLIENT_ID" in result.stderr
    assert jobs(db_url) == []


def test_malformed_record_exits_3(env, db_url, sim):
    cli(env, "db", "upgrade")
    sim.inject_malformed("supporters", {"id": "x-1", "updated_at": "yesterday"})
    result = cli(env, "run", "supporters")
    assert result.returncode == 3, result.stderr
    assert "jobs show" in result.stderr
    assert len(stored_ids(db_url, "supporters")) == 300


def _wait_for_rows(db_url: str, entity: str, minimum: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if len(stored_ids(db_url, entity)) >= minimum:
                return
        except sa.exc.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {entity} rows appeared in time")


def test_kill_9_mid_run_then_the_next_run_completes(env, db_url, sim):
    cli(env, "db", "upgrade")
    sim.latency = 0.05
    proc = subprocess.Popen([sys.executable, "-m", "supportersync", "run", "all"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        _wait_for_rows(db_url, "supporters", 100, time.monotonic() + 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert [j["status"] for j in jobs(db_url)] == ["running"]
    sim.latency = 0.0
    result = cli(env, "run", "all")
    assert result.returncode == 0, result.stderr
    statuses = [j["status"] for j in jobs(db_url)]
    assert statuses == ["abandoned", "succeeded"]
    for entity in ENTITY_TABLES:
        ids = stored_ids(db_url, entity)
        assert len(ids) == len(set(ids))
        assert set(ids) == set(sim.records[entity]), entity


def test_overlapping_runs_one_is_skipped_with_exit_5(env, db_url, sim):
    cli(env, "db", "upgrade")
    engine = open_engine(db_url)
    try:
        # This process plays the first run: it holds the lock another process needs.
        with hold_locks(engine, sim.organization_id, ["supporters"]):
            second = cli(env, "run", "supporters")
        assert second.returncode == 5
        assert "skipped" in second.stderr
        assert [j["status"] for j in jobs(db_url)] == ["skipped"]
        # The lock is gone with its holder: the next run goes ahead.
        assert cli(env, "run", "supporters").returncode == 0
    finally:
        engine.dispose()
    assert [j["status"] for j in jobs(db_url)] == ["skipped", "succeeded"]
