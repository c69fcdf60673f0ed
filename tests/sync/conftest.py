"""Fixtures for the sync engine: a simulated Classy account and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from supportersync.config import ClassySettings, OrgSettings, Secret, Settings, SyncSettings
from supportersync.testing.classy_sim import ClassySimulator

SIM_BASE = "http://classy.sim"
CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret-5f2c"


@pytest.fixture
def sim() -> ClassySimulator:
    return ClassySimulator(supporters=60, transactions=240, recurring_plans=12, campaigns=4, seed=7,
                           client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


def _make_settings(db_url: str, sim: ClassySimulator, **classy: object) -> tuple[Settings, OrgSettings]:
    values: dict[str, object] = dict(
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        organization_id=sim.organization_id,
        api_url=f"{SIM_BASE}/2.0",
        token_url=f"{SIM_BASE}/oauth2/auth",
        requests_per_minute=0,
        per_page=20,
        concurrency=3,
        max_retries=2,
    )
    values.update(classy)
    org = OrgSettings("default", ClassySettings(**values))  # type: ignore[arg-type]
    settings = Settings(database_url=db_url, config_path=None, organizations={"default": org},
                        sync=SyncSettings(safety_lag_seconds=0))
    return settings, org


@pytest.fixture
def make_settings() -> Callable[..., tuple[Settings, OrgSettings]]:
    """make_settings(db_url, sim, **classy_overrides) -> (settings, org)."""
    return _make_settings


@pytest.fixture
def setup(db_url: str, sim: ClassySimulator) -> tuple[Settings, OrgSettings]:
    return _make_settings(db_url, sim)


@pytest.fixture
def with_sync() -> Callable[..., Settings]:
    """with_sync(settings, **sync_overrides) -> settings."""
    return lambda settings, **changes: replace(settings, sync=replace(settings.sync, **changes))


@pytest.fixture
def hooked() -> type[HookedTransport]:
    return HookedTransport


class HookedTransport(httpx.BaseTransport):
    """Passes requests to the simulator, calling `before(request_number, request)` first."""

    def __init__(self, sim: ClassySimulator, before: Callable[[int, httpx.Request], None]) -> None:
        self.sim = sim
        self.before = before
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        self.before(self.count, request)
        response = self.sim.handle(request)
        response.read()
        return response
