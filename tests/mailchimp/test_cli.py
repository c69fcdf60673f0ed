"""`supportersync plugins list|test|run` with the built-in Mailchimp plugin (loaded through its
entry point) against the simulated Mailchimp over loopback HTTP; and `supportersync run`
end to end with a failing Mailchimp key (exit 4, the sync committed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from supportersync.cli import app
from supportersync.db.engine import open_engine, upgrade
from supportersync.db.schema import supporters
from supportersync.mailchimp import plugin as mailchimp_plugin
from supportersync.mailchimp.plugin import MailchimpPlugin
from supportersync.testing.mailchimp_sim import MailchimpSimulator

from .conftest import KEY, ORG, World, make_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("supportersync")
    for handler in list(root.handlers):
        if getattr(handler, "_supportersync", False):
            root.removeHandler(handler)
    root.propagate = True
    root.setLevel(logging.NOTSET)


@pytest.fixture
def served(sim: MailchimpSimulator) -> Iterator[Any]:
    with sim.serve() as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def env(db: sa.Engine, sim: MailchimpSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The entry-point plugin, its HTTP going to the simulator in-process (the .invalid host never resolves)."""
    monkeypatch.setattr(mailchimp_plugin, "_default", MailchimpPlugin(transport=sim.transport(),
                                                                      sleep=lambda seconds: None))
    config = tmp_path / "config.toml"
    config.write_text("[mailchimp]\nmax_retries = 0\n")
    return {"SUPPORTERSYNC_DATABASE_URL": str(db.url), "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(ORG),
            "SUPPORTERSYNC_MAILCHIMP_API_KEY": sim.api_key, "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID": sim.audience_id,
            "SUPPORTERSYNC_MAILCHIMP_API_URL": "http://sim.mailchimp.invalid/3.0",
            "SUPPORTERSYNC_CONFIG": str(config)}


@pytest.fixture
def people(db: sa.Engine, sim: MailchimpSimulator) -> World:
    world = World(db, sim, make_settings(sim))
    world.supporters(range(1, 4))
    world.supporter(4, email="test@example.com")  # Mailchimp refuses it as fake-looking
    return world


def invoke(env: dict[str, str], *args: str) -> Any:
    result = runner.invoke(app, list(args), env=env)
    assert KEY not in result.output and KEY[:32] not in result.output
    return result


def test_list_shows_the_plugin_and_whether_it_is_configured(env: dict[str, str]) -> None:
    result = invoke(env, "plugins", "list", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "mailchimp" and row["configured"] is True
    assert row["version"] and set(row["hooks"]) == {"plugin_status", "check_plugin", "on_sync_completed",
                                                     "run_plugin"}
    bare = {k: v for k, v in env.items() if "MAILCHIMP" not in k}
    result = invoke(bare, "plugins", "list")
    assert result.exit_code == 0
    assert "mailchimp" in result.stdout and "inactive" in result.stdout and "no" in result.stdout


def test_test_reports_a_usable_plugin(env: dict[str, str]) -> None:
    result = invoke(env, "plugins", "test", "mailchimp")
    assert result.exit_code == 0, result.output
    for expected in ("ping: Everything's Chimpy!", "account: Simulated Charity", "audience: Supporters",
                     "missing GIFTTOTAL", "mailchimp: usable"):
        assert expected in result.stdout


@pytest.mark.parametrize("change, problem", [
    ({"SUPPORTERSYNC_MAILCHIMP_API_KEY": "0123456789abcdef0123456789abcdee-us21"}, "refused the API key"),
    ({"SUPPORTERSYNC_MAILCHIMP_API_KEY": "0123456789abcdef"}, "does not look like a Mailchimp API key"),
    ({"SUPPORTERSYNC_MAILCHIMP_API_URL": "https://us6.api.mailchimp.com/3.0"}, "datacenter 'us6'"),
    ({"SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID": "nope"}, "Audience 'nope' not found"),
    ({"SUPPORTERSYNC_MAILCHIMP_API_KEY": ""}, "half configured"),
], ids=["invalid-key", "key-shape", "wrong-datacenter", "audience", "half"])
def test_test_exits_1_with_the_exact_problem(env: dict[str, str], change: dict[str, str], problem: str) -> None:
    result = invoke({**env, **change}, "plugins", "test", "mailchimp")
    assert result.exit_code == 1, result.output
    assert problem in result.output
    assert "0123456789abcdef" not in result.output


def test_test_exits_1_when_mailchimp_cannot_be_reached(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailchimp_plugin, "_default", MailchimpPlugin(sleep=lambda seconds: None))
    result = invoke({**env, "SUPPORTERSYNC_MAILCHIMP_API_URL": "http://127.0.0.1:9/3.0"}, "plugins", "test",
                    "mailchimp")
    assert result.exit_code == 1
    assert "Network: Cannot reach Mailchimp at http://127.0.0.1:9/3.0" in result.output


def test_test_exits_1_for_a_disabled_key(env: dict[str, str], sim: MailchimpSimulator) -> None:
    sim.disable_key()
    result = invoke(env, "plugins", "test", "mailchimp")
    assert result.exit_code == 1
    assert "has been disabled" in result.output and "SUPPORTERSYNC_MAILCHIMP_API_KEY" in result.output


def test_unknown_plugins_exit_2(env: dict[str, str]) -> None:
    for command in ("test", "run"):
        result = invoke(env, "plugins", command, "nope")
        assert result.exit_code == 2 and "no plugin named 'nope'" in result.output


def test_run_dry_run_prints_the_plan_and_sends_nothing(env: dict[str, str], people: World,
                                                       sim: MailchimpSimulator) -> None:
    result = invoke(env, "plugins", "run", "mailchimp", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was sent" in result.stdout
    assert "create" in result.stdout and "GIFTTOTAL" in result.stdout
    assert {r.method for r in sim.request_log} == {"GET"}
    assert sim.members == {}


def test_run_pushes_lists_rejections_and_exits_0(env: dict[str, str], people: World,
                                                 sim: MailchimpSimulator) -> None:
    result = invoke(env, "plugins", "run", "mailchimp")
    assert result.exit_code == 0, result.output
    assert "mailchimp: partial" in result.stdout
    assert "rejected (1):" in result.stdout and "test@example.com" in result.stdout and "looks fake" in result.stdout
    assert len(sim.members) == 3
    again = invoke(env, "plugins", "run", "mailchimp", "--json")
    document = json.loads(again.stdout)
    assert document["status"] == "succeeded" and document["counts"]["unchanged"] == 3
    quiet = invoke(env, "plugins", "run", "mailchimp", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_run_exits_1_naming_the_key_problem(env: dict[str, str], people: World, sim: MailchimpSimulator) -> None:
    sim.disable_key()
    result = invoke(env, "plugins", "run", "mailchimp")
    assert result.exit_code == 1
    assert "mailchimp failed: Mailchimp refused the API key: it has been disabled" in result.output


# -- end to end: a sync, then the hooks ---------------------------------------------------------------


def test_a_disabled_key_makes_run_exit_4_and_the_synced_data_stays(env: dict[str, str], db: sa.Engine,
                                                                   sim: MailchimpSimulator) -> None:
    from supportersync.testing.classy_sim import ClassySimulator

    classy = ClassySimulator(supporters=40, transactions=120, recurring_plans=5, campaigns=2, seed=5,
                             client_id="cli", client_secret="classy-secret")
    with db.begin() as conn:  # the organization is the simulator's
        conn.execute(sa.text("DELETE FROM supporters"))
    with classy.serve() as classy_server:
        environment = {**env, **classy.settings_env(classy_server), "SUPPORTERSYNC_SYNC_SAFETY_LAG_SECONDS": "0"}
        sim.disable_key()
        failed = invoke(environment, "run", "all")
        assert failed.exit_code == 4, failed.output
        assert "plugin mailchimp failed" in failed.output and "has been disabled" in failed.output
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(supporters)).scalar_one() == 40

        sim._disabled = False  # noqa: SLF001 - a new key was issued: the next run catches up
        caught_up = invoke(environment, "plugins", "run", "mailchimp")
        assert caught_up.exit_code == 0, caught_up.output
        assert len(sim.members) > 0
        assert "duplicate email (" in caught_up.stdout  # the simulated Classy data shares some emails

        jobs = json.loads(invoke(environment, "jobs", "list", "--json").stdout)
        shown = invoke(environment, "jobs", "show", str(jobs[0]["id"]))
        assert "plugin mailchimp: failed" in shown.stdout and "has been disabled" in shown.stdout
