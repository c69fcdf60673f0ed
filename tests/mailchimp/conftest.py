"""A small world for the Mailchimp tests: supporters and stats in the database (SQLite and
PostgreSQL), the simulated Mailchimp in-process, and the plugin wired to it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from supportersync.config import Settings, load_settings
from supportersync.db.schema import mailchimp_members, supporter_stats, supporters
from supportersync.hookspecs import PluginContext, PluginOutcome
from supportersync.mailchimp.plugin import MailchimpPlugin
from supportersync.testing.mailchimp_sim import MailchimpSimulator
from supportersync.timeutil import UTC

ORG = 7
KEY = "0123456789abcdef0123456789abcdef-us21"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def default_stats(**values: Any) -> dict[str, Any]:
    return {
        "lifetime_amount": Decimal("150.00"), "lifetime_count": 3,
        "first_gift_at": NOW - timedelta(days=400), "last_gift_at": NOW - timedelta(days=10),
        "largest_gift": Decimal("100.00"), "last_12_months_amount": Decimal("50.00"), "last_12_months_count": 1,
        "active_plans_count": 0, "monthly_recurring_amount": Decimal("0.00"), "days_since_last_gift": 10,
        "value_tier": "Regular", "engagement_segment": "Recent", "frequency_segment": "Repeat",
        "computed_at": NOW, "changed_at": NOW, **values,
    }


@dataclass
class World:
    engine: sa.Engine
    sim: MailchimpSimulator
    settings: Settings
    mailchimp: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)
    _clock: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- the database side ------------------------------------------------------------

    def supporter(self, supporter_id: int, email: str | None = "", *, opt_in: bool | None = True,
                  stats: dict[str, Any] | None | bool = True, deleted: bool = False, **values: Any) -> None:
        """A supporter (email "" means person{id}@supporters.org) with default statistics."""
        email = f"person{supporter_id}@supporters.org" if email == "" else email
        row = {"organization_id": ORG, "id": supporter_id, "email_address": email, "email_opt_in": opt_in,
               "first_name": f"First{supporter_id}", "last_name": f"Last{supporter_id}",
               "updated_at": NOW + timedelta(seconds=next(self._clock)),
               "deleted_at": NOW if deleted else None, "synced_at": NOW, "raw": {}, "raw_hash": "x", **values}
        with self.engine.begin() as conn:
            conn.execute(supporters.insert(), [row])
            if stats is not None and stats is not False:
                conn.execute(supporter_stats.insert(), [{"organization_id": ORG, "supporter_id": supporter_id,
                                                         **default_stats(**(stats if isinstance(stats, dict)
                                                                            else {}))}])

    def supporters(self, ids: range | list[int], **kwargs: Any) -> None:
        for supporter_id in ids:
            self.supporter(supporter_id, **kwargs)

    def update(self, supporter_id: int, **values: Any) -> None:
        values.setdefault("updated_at", NOW + timedelta(seconds=next(self._clock)))
        with self.engine.begin() as conn:
            conn.execute(supporters.update().where(supporters.c.organization_id == ORG,
                                                   supporters.c.id == supporter_id).values(**values))

    def stats(self, supporter_id: int, **values: Any) -> None:
        s = supporter_stats
        with self.engine.begin() as conn:
            conn.execute(s.update().where(s.c.organization_id == ORG, s.c.supporter_id == supporter_id)
                         .values(**values))

    def state(self) -> dict[str, dict[str, Any]]:
        m = mailchimp_members
        with self.engine.connect() as conn:
            return {row.email_address: dict(row._mapping)
                    for row in conn.execute(sa.select(m).where(m.c.organization_id == ORG))}

    # -- the plugin ---------------------------------------------------------------------

    def plugin(self, **options: Any) -> MailchimpPlugin:
        client_options = {"poll_delays": itertools.repeat(0.0), **self.client_options, **options}
        return MailchimpPlugin(transport=self.sim.transport(), sleep=lambda seconds: None,
                               client_options=client_options)

    def context(self, **mailchimp: Any) -> PluginContext:
        org = self.settings.org()
        org = replace(org, mailchimp={**org.mailchimp, **self.mailchimp, **mailchimp})
        return PluginContext(settings=self.settings, org=org, engine=self.engine)

    def push(self, *, full: bool = False, dry_run: bool = False, **mailchimp: Any) -> PluginOutcome:
        return self.plugin().push(self.context(**mailchimp), full=full, dry_run=dry_run)

    # -- the Mailchimp side ------------------------------------------------------------------

    def writes(self) -> int:
        return sum(1 for r in self.sim.request_log if r.method in WRITES)

    def tags(self, email: str) -> set[str]:
        member = self.sim.member(email)
        assert member is not None, f"{email} is not in the audience"
        return set(member.tags)

    def status(self, email: str) -> str:
        member = self.sim.member(email)
        assert member is not None, f"{email} is not in the audience"
        return member.visible_status


def make_settings(sim: MailchimpSimulator, **env: str) -> Settings:
    return load_settings(env={
        "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(ORG),
        "SUPPORTERSYNC_MAILCHIMP_API_KEY": sim.api_key,
        "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID": sim.audience_id,
        "HOME": "/nonexistent-home",
        **env,
    })


@pytest.fixture
def sim() -> MailchimpSimulator:
    return MailchimpSimulator(api_key=KEY)


@pytest.fixture
def world(engine: sa.Engine, sim: MailchimpSimulator) -> Iterator[World]:
    yield World(engine, sim, make_settings(sim))


def managed_tags(tier: str = "Regular", engagement: str = "Recent", frequency: str = "Repeat") -> set[str]:
    return {"supportersync", f"Classy: {tier}", f"Classy: {engagement}", f"Classy: {frequency}"}
