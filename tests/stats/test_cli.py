from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from supportersync.cli import app
from supportersync.db.schema import supporter_stats
from supportersync.timeutil import utcnow

from .conftest import Rows


@pytest.fixture
def cli(rows: Rows, db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_CLIENT_ID", "id")
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_CLIENT_SECRET", "secret")
    monkeypatch.setenv("SUPPORTERSYNC_CLASSY_ORGANIZATION_ID", str(rows.org))
    return CliRunner()


def test_recompute_all_then_summary_as_json(cli: CliRunner, rows: Rows) -> None:
    now = utcnow()
    rows.supporter(1)
    rows.transaction(1, "1500.00", now - timedelta(days=2))
    rows.transaction(2, "20.00", now - timedelta(days=400))
    rows.plan(2, "10.00", "monthly")
    rows.plan(2, "10.00", "now and then")

    result = cli.invoke(app, ["stats", "recompute", "--all"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # silent under cron

    result = cli.invoke(app, ["stats", "summary", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["supporters"], document["donors"]) == (2, 2)
    assert document["totals"]["lifetime_amount"] == "1520.00"
    assert document["totals"]["monthly_recurring_amount"] == "10.00"
    assert document["totals"]["active_plans_with_unknown_frequency"] == 1
    tiers = {row["label"]: row["supporters"] for row in document["segments"]["value_tiers"]}
    assert list(tiers)[:2] == ["Prospect", "First-Time"]  # configured order, empty labels included
    assert (tiers["Major"], tiers["First-Time"], tiers["Prospect"]) == (1, 1, 0)
    engagement = {row["label"]: row["supporters"] for row in document["segments"]["engagement"]}
    assert (engagement["Recent"], engagement["Lapsed"]) == (1, 1)


def test_recompute_without_all_takes_only_stale_supporters(cli: CliRunner, rows: Rows) -> None:
    now = utcnow()
    rows.transaction(1, "10.00", now)
    assert json.loads(cli.invoke(app, ["stats", "recompute", "--json"]).stdout)["computed"] == 1
    result = cli.invoke(app, ["stats", "recompute", "--json"])
    assert json.loads(result.stdout) == {"organization_id": rows.org, "scope": "stale", "computed": 0,
                                         "changed": 0, "removed": 0}
    rows.transaction(2, "10.00", now)
    assert json.loads(cli.invoke(app, ["stats", "recompute", "--json"]).stdout)["computed"] == 1
    assert json.loads(cli.invoke(app, ["stats", "recompute", "--all", "--json"]).stdout)["computed"] == 2


def test_summary_of_an_organization_without_stats(cli: CliRunner, rows: Rows) -> None:
    result = cli.invoke(app, ["stats", "summary", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["supporters"], document["donors"]) == (0, 0)
    assert document["computed_at"] == {"oldest": None, "newest": None}
    assert document["totals"]["lifetime_amount"] == document["totals"]["monthly_recurring_amount"] == "0.00"
    assert {row["supporters"] for kind in document["segments"].values() for row in kind} == {0}


def test_summary_table(cli: CliRunner, rows: Rows) -> None:
    rows.supporter(1)
    cli.invoke(app, ["stats", "recompute", "--all"])
    result = cli.invoke(app, ["stats", "summary"])
    assert result.exit_code == 0, result.output
    for text in ("Supporters", "Value tier", "Prospect", "Never Donated", "No Gifts", "Champion"):
        assert text in result.stdout


def test_bad_segment_configuration_stops_with_the_band_named(cli: CliRunner, rows: Rows, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[segments.frequency]]\nname = "No Gifts"\nnone = true\n'
                      '[[segments.frequency]]\nname = "Some"\nmin = 2\n')
    result = cli.invoke(app, ["stats", "recompute", "--all", "--config", str(config)])
    assert result.exit_code == 2
    assert "segments.frequency band 'Some' (2+) leaves a gap" in result.output
    with rows.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(supporter_stats)).scalar() == 0


def test_unknown_organization_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["stats", "summary", "--org", "nope"])
    assert result.exit_code == 2
    assert "Unknown organization 'nope'" in result.output
