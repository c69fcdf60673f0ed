"""`supportersync config check`: names the failing part, exits 2, writes nothing, prints no secret."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from supportersync.db.engine import open_engine, upgrade
from supportersync.db.schema import sync_jobs

from .conftest import CLIENT_SECRET, MAILCHIMP_KEY


@pytest.fixture
def ready(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, classy_env: None) -> Path:
    """A migrated SQLite database and working Classy settings."""
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", sqlite_url)
    engine = open_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    return Path(sqlite_url.removeprefix("sqlite:///"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def job_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(sync_jobs)).scalar_one()
    finally:
        engine.dispose()


def test_everything_works(ready: Path, mailchimp_env: None, cli) -> None:
    before = digest(ready)
    result = cli("config", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok     configuration: no config file")
    assert lines[1].startswith("ok     database: sqlite:///") and "read-only" in lines[1]
    assert lines[2].startswith("ok     classy: token issued by http://127.0.0.1:")
    assert any(line.startswith("ok     plugin mailchimp:") for line in lines)
    assert lines[-1] == "all checks passed"
    assert digest(ready) == before
    assert job_count(f"sqlite:///{ready}") == 0


def test_json(ready: Path, cli) -> None:
    result = cli("config", "check", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["failed"] == []
    assert [c["part"] for c in doc["checks"]] == ["configuration", "database", "classy"]


def test_wrong_classy_credentials(ready: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_CLIENT_SECRET", "wrong-secret-77")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED classy: Classy refused the credentials" in result.stdout
    assert "error: classy failed" in result.stderr
    assert "wrong-secret-77" not in result.output and CLIENT_SECRET not in result.output
    assert job_count(f"sqlite:///{ready}") == 0


def test_wrong_organization(ready: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_ORGANIZATION_ID", "999")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED classy: Classy answered 404 for organization 999" in result.stdout


def test_missing_classy_settings(ready: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPPORTERSYNC_CLASSY_CLIENT_ID")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED classy: Classy is not configured: missing SUPPORTERSYNC_CLASSY_CLIENT_ID" in result.stdout


def test_wrong_mailchimp_key(ready: Path, mailchimp_env: None, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "ffffffffffffffffffffffffffffffff-us21"
    monkeypatch.setenv("SUPPORTERSYNC_MAILCHIMP_API_KEY", wrong)
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED plugin mailchimp: Mailchimp refused the API key" in result.stdout
    assert "ok     classy" in result.stdout  # the other parts are still checked and shown
    assert wrong not in result.output and MAILCHIMP_KEY not in result.output
    assert "error: plugin mailchimp failed" in result.stderr


def test_malformed_mailchimp_key(ready: Path, mailchimp_env: None, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_MAILCHIMP_API_KEY", "secret-without-datacenter")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED plugin mailchimp" in result.stdout
    assert "secret-without-datacenter" not in result.output


def test_an_unconfigured_plugin_is_inactive_not_failed(ready: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_LOAD_PLUGINS", "mailchimp")
    result = cli("config", "check")
    assert result.exit_code == 0, result.output
    assert "--     plugin mailchimp: inactive" in result.stdout


def test_wrong_database_url_hides_the_password(classy_env: None, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", "postgresql+psycopg://someone:hunter2@127.0.0.1:1/nowhere")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED database: cannot open postgresql+psycopg://someone:***@127.0.0.1:1/nowhere" in result.stdout
    assert "hunter2" not in result.output
    assert "ok     classy" in result.stdout


def test_missing_sqlite_file_is_not_created(tmp_path: Path, classy_env: None, cli,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "not" / "yet.db"
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", f"sqlite:///{target}")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert f"FAILED database: the SQLite file {target} does not exist yet" in result.stdout
    assert "supportersync db upgrade" in result.stdout
    assert not target.parent.exists()


def test_database_without_tables_gets_none(db_url: str, classy_env: None, cli,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_engine(db_url)  # creates the SQLite file, nothing else
    engine.dispose()
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", db_url)
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "has no supportersync tables yet. Run `supportersync db upgrade`." in result.stdout
    engine = open_engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_migrated_postgresql_is_checked_read_only(engine: sa.Engine, db_url: str, classy_env: None, cli,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", db_url)
    result = cli("config", "check")
    assert result.exit_code == 0, result.output
    assert "(read-only check)" in result.stdout


def test_read_only_engine_refuses_writes(engine: sa.Engine, db_url: str) -> None:
    from supportersync.configcheck import read_only_engine

    ro = read_only_engine(db_url)
    try:
        with pytest.raises(sa.exc.DBAPIError), ro.begin() as conn:
            conn.execute(sa.text("CREATE TABLE should_not_exist (a INTEGER)"))
    finally:
        ro.dispose()
    assert "should_not_exist" not in sa.inspect(engine).get_table_names()


def test_bad_configuration_is_a_failed_part(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[classy]\norganisation_id = 5\n")
    monkeypatch.setenv("SUPPORTERSYNC_CONFIG", str(config))
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "FAILED configuration: Unknown key(s) organisation_id in [classy]." in result.stdout
    doc = json.loads(cli("config", "check", "--json").stdout)
    assert doc["failed"] == ["configuration"]
