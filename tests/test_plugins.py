"""The plugin system, tested with a small example plugin: the one docs/plugins.md walks through.

The example plugin is this module's first section (a plugin is any module or object with
hook implementations). It counts the supporters written since its last call and keeps its
own progress, the newest `synced_at` it has seen, in a JSON file named by
`[plugins.example] state_file`: if a call fails, or never happens, the next one catches up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from supportersync import PluginCheck, PluginCheckItem, PluginContext, PluginOutcome, PluginStatus, SyncResult, hookimpl
from supportersync.config import load_settings
from supportersync.db.schema import supporters

# -- the example plugin ---------------------------------------------------------------------------


def _state_file(context: PluginContext) -> Path | None:
    value = (context.settings.plugins.get("example") or {}).get("state_file")
    return Path(value) if value else None


@hookimpl
def plugin_status(context: PluginContext) -> PluginStatus:
    path = _state_file(context)
    return PluginStatus(path is not None, f"progress kept in {path}" if path else "set [plugins.example] state_file")


@hookimpl
def check_plugin(context: PluginContext) -> PluginCheck:
    path = _state_file(context)
    if path is None:
        return PluginCheck(False, problem="[plugins.example] state_file is not set.")
    usable = path.parent.is_dir()
    item = PluginCheckItem("state folder", usable, str(path.parent))
    return PluginCheck(usable, (item,), None if usable else f"The folder {path.parent} does not exist.")


@hookimpl
def on_sync_completed(result: SyncResult, context: PluginContext) -> PluginOutcome:
    # Not `result.supporters_changed`: reading from our own progress catches up on missed runs.
    return catch_up(context, full=False, dry_run=False)


@hookimpl
def run_plugin(context: PluginContext, full: bool, dry_run: bool) -> PluginOutcome:
    return catch_up(context, full=full, dry_run=dry_run)


def catch_up(context: PluginContext, *, full: bool, dry_run: bool) -> PluginOutcome:
    path = _state_file(context)
    if path is None:
        return PluginOutcome("skipped", message="not configured")
    since = None
    if path.exists() and not full:
        since = datetime.fromisoformat(json.loads(path.read_text())["synced_until"])
    query = sa.select(sa.func.count(), sa.func.max(supporters.c.synced_at)).where(
        supporters.c.organization_id == context.org.classy.organization_id)
    if since is not None:
        query = query.where(supporters.c.synced_at > since)
    with context.engine.connect() as conn:
        count, newest = conn.execute(query).one()
    if newest is not None and not dry_run:
        path.write_text(json.dumps({"synced_until": newest.isoformat()}))
    return PluginOutcome("succeeded", {"supporters": count}, f"{count} supporter(s) new since {since or 'ever'}")


# -- the tests -------------------------------------------------------------------------------------

from supportersync.plugins import HOOK_NAMES, call_isolated, make_plugin_manager, notify_sync_completed  # noqa: E402

EXAMPLE = sys.modules[__name__]
ORG = 9
T0 = datetime(2025, 3, 1, 12, 0)


class Broken:
    """A plugin whose every hook raises."""

    @hookimpl
    def plugin_status(self, context: PluginContext) -> PluginStatus:
        raise RuntimeError("status is broken")

    @hookimpl
    def on_sync_completed(self, result: SyncResult, context: PluginContext) -> PluginOutcome:
        raise RuntimeError("boom")


class Garbage:
    @hookimpl
    def on_sync_completed(self, result: SyncResult, context: PluginContext) -> Any:
        return {"status": "succeeded"}


@pytest.fixture
def context(engine: sa.Engine, tmp_path: Path) -> PluginContext:
    config = tmp_path / "config.toml"
    config.write_text(f'[plugins.example]\nstate_file = "{tmp_path / "example.json"}"\n')
    settings = load_settings(env={"SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(ORG)}, config_path=config)
    return PluginContext(settings=settings, org=settings.org(), engine=engine)


def add_supporters(engine: sa.Engine, ids: range, synced_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(supporters.insert(), [{"organization_id": ORG, "id": i, "email_address": f"s{i}@x.org",
                                            "synced_at": synced_at, "raw": {}, "raw_hash": "x"} for i in ids])


def sync_result() -> SyncResult:
    return SyncResult(job_id=1, organization_id=ORG, org_name="default", entity="supporters", mode="incremental",
                      status="succeeded", counts={})


def test_a_plugin_registers_under_its_name_with_its_hooks() -> None:
    plugins = make_plugin_manager(entry_point_list=[], extra=[("example", EXAMPLE)])
    assert plugins.names() == ["example"]
    (info,) = plugins.info()
    assert info.hooks == sorted(HOOK_NAMES) and info.module == __name__


def test_the_builtin_mailchimp_plugin_comes_from_the_entry_point() -> None:
    plugins = make_plugin_manager()
    assert "mailchimp" in plugins.names()
    assert plugins.versions["mailchimp"]
    assert make_plugin_manager(load=[]).names() == []


def test_a_plugin_that_cannot_be_imported_is_reported_not_fatal() -> None:
    broken = EntryPoint(name="broken", value="supportersync_no_such_module", group="supportersync")
    plugins = make_plugin_manager(entry_point_list=[broken], extra=[("example", EXAMPLE)])
    assert plugins.names() == ["example"]
    assert "ModuleNotFoundError" in plugins.load_errors["broken"]
    limited = make_plugin_manager(load=["example", "absent"], entry_point_list=[], extra=[("example", EXAMPLE)])
    assert limited.names() == ["example"] and "not installed" in limited.load_errors["absent"]


def test_a_plugin_keeps_its_progress_and_catches_up_on_missed_runs(context: PluginContext) -> None:
    plugins = make_plugin_manager(entry_point_list=[], extra=[("example", EXAMPLE)])
    add_supporters(context.engine, range(1, 4), T0)
    (first,) = notify_sync_completed(plugins, sync_result(), context)
    assert first.status == "succeeded" and first.counts == {"supporters": 3}

    add_supporters(context.engine, range(4, 6), T0 + timedelta(hours=1))  # a sync whose hooks never ran
    add_supporters(context.engine, range(6, 7), T0 + timedelta(hours=2))
    (dry,) = call_isolated(plugins, "run_plugin", only="example", context=context, full=False, dry_run=True)
    assert dry.counts == {"supporters": 3} and dry.message and "new since" in dry.message
    (caught_up,) = notify_sync_completed(plugins, sync_result(), context)
    assert caught_up.counts == {"supporters": 3}
    (nothing,) = notify_sync_completed(plugins, sync_result(), context)
    assert nothing.counts == {"supporters": 0}
    (full,) = call_isolated(plugins, "run_plugin", only="example", context=context, full=True, dry_run=False)
    assert full.counts == {"supporters": 6}


def test_one_plugins_failure_is_recorded_and_never_stops_another(context: PluginContext) -> None:
    plugins = make_plugin_manager(entry_point_list=[], extra=[("broken", Broken()), ("example", EXAMPLE),
                                                              ("garbage", Garbage())])
    add_supporters(context.engine, range(1, 3), T0)
    runs = {run.name: run for run in notify_sync_completed(plugins, sync_result(), context)}
    assert runs["broken"].status == "failed" and runs["broken"].error == "RuntimeError: boom"
    assert runs["garbage"].status == "failed" and "expected PluginOutcome" in (runs["garbage"].error or "")
    assert runs["example"].status == "succeeded" and runs["example"].counts == {"supporters": 2}
    record = runs["example"].as_record()
    assert record["message"] and record["status"] == "succeeded"


def test_a_plugin_that_raises_does_not_stop_the_mailchimp_plugin(context: PluginContext) -> None:
    from supportersync.mailchimp.plugin import MailchimpPlugin
    from supportersync.testing.mailchimp_sim import MailchimpSimulator

    sim = MailchimpSimulator()
    org = replace(context.org, mailchimp={"api_key": sim.api_key, "audience_id": sim.audience_id})
    context = replace(context, org=org)
    add_supporters(context.engine, range(1, 3), T0)
    with context.engine.begin() as conn:
        conn.execute(supporters.update().values(email_opt_in=True))
    from supportersync.db.schema import supporter_stats  # stats exist for both supporters
    with context.engine.begin() as conn:
        conn.execute(supporter_stats.insert(), [{
            "organization_id": ORG, "supporter_id": i, "lifetime_amount": 10, "lifetime_count": 1,
            "last_12_months_amount": 10, "last_12_months_count": 1, "active_plans_count": 0,
            "monthly_recurring_amount": 0, "value_tier": "Small", "engagement_segment": "Recent",
            "frequency_segment": "One-Time", "computed_at": T0, "changed_at": T0} for i in (1, 2)])
    mailchimp = MailchimpPlugin(transport=sim.transport(), sleep=lambda seconds: None)
    for order in ([("broken", Broken()), ("mailchimp", mailchimp)], [("mailchimp", mailchimp), ("broken", Broken())]):
        plugins = make_plugin_manager(entry_point_list=[], extra=order)
        runs = {run.name: run for run in notify_sync_completed(plugins, sync_result(), context)}
        assert runs["broken"].status == "failed"
        assert runs["mailchimp"].status == "succeeded", runs["mailchimp"]
    assert len(sim.members) == 2


def test_every_hook_is_documented_and_typed() -> None:
    from supportersync import hookspecs

    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for name in HOOK_NAMES:
        spec = getattr(hookspecs, name)
        assert f"### {name}" in docs, f"docs/plugins.md has no section for the hook {name}"
        assert spec.__doc__ and ":param context:" in spec.__doc__
        assert "return" in spec.__annotations__


# -- the CLI with the example plugin ---------------------------------------------------------------


@pytest.fixture
def cli_env(context: PluginContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    import supportersync.cli.plugins as cli_plugins

    def with_example(load: Any = None, **kwargs: Any) -> Any:
        broken = EntryPoint(name="broken", value="supportersync_no_such_module", group="supportersync")
        return make_plugin_manager(load, entry_point_list=[broken],
                                   extra=[("example", EXAMPLE), ("faulty", Broken())])

    monkeypatch.setattr(cli_plugins, "make_plugin_manager", with_example)
    yield {"SUPPORTERSYNC_DATABASE_URL": context.engine.url.render_as_string(hide_password=False),
           "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(ORG), "SUPPORTERSYNC_CONFIG": str(tmp_path / "config.toml")}
    import logging

    root = logging.getLogger("supportersync")
    for handler in list(root.handlers):
        if getattr(handler, "_supportersync", False):
            root.removeHandler(handler)
    root.propagate = True


def test_cli_list_test_and_run_the_example(cli_env: dict[str, str], context: PluginContext) -> None:
    from supportersync.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["plugins", "list", "--json"], env=cli_env)
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["example"]["configured"] is True and rows["example"]["hooks"] == sorted(HOOK_NAMES)
    assert rows["faulty"]["configured"] is False and "status is broken" in rows["faulty"]["detail"]
    assert rows["broken"]["configured"] is False and "not loaded" in rows["broken"]["detail"]

    tested = runner.invoke(app, ["plugins", "test", "example"], env=cli_env)
    assert tested.exit_code == 0 and "state folder" in tested.stdout
    no_checks = runner.invoke(app, ["plugins", "test", "faulty"], env=cli_env)
    assert no_checks.exit_code == 0 and "has no checks" in no_checks.stdout
    not_loaded = runner.invoke(app, ["plugins", "test", "broken"], env=cli_env)
    assert not_loaded.exit_code == 1 and "could not be loaded" in not_loaded.output

    add_supporters(context.engine, range(1, 3), T0)
    ran = runner.invoke(app, ["plugins", "run", "example", "--dry-run"], env=cli_env)
    assert ran.exit_code == 0 and "example: succeeded" in ran.stdout and "supporters 2" in ran.stdout
    cannot = runner.invoke(app, ["plugins", "run", "faulty"], env=cli_env)
    assert cannot.exit_code == 2 and "cannot be run on demand" in cannot.output
