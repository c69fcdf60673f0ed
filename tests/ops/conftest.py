"""Operations tests: the CLI in-process (CliRunner) against simulated accounts on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from supportersync.cli import app
from supportersync.testing.classy_sim import ClassySimulator
from supportersync.testing.mailchimp_sim import MailchimpSimulator

CLIENT_ID = "ops-client"
CLIENT_SECRET = "ops-secret-4f1d9a"
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us21"


@pytest.fixture
def classy() -> ClassySimulator:
    return ClassySimulator(supporters=30, transactions=120, recurring_plans=5, campaigns=3, seed=5,
                           client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


@pytest.fixture
def classy_server(classy: ClassySimulator) -> Iterator[Any]:
    with classy.serve() as server:
        yield server


@pytest.fixture
def mailchimp() -> MailchimpSimulator:
    return MailchimpSimulator(api_key=MAILCHIMP_KEY)


@pytest.fixture
def mailchimp_server(mailchimp: MailchimpSimulator) -> Iterator[Any]:
    with mailchimp.serve() as server:
        yield server


@pytest.fixture
def classy_env(monkeypatch: pytest.MonkeyPatch, classy: ClassySimulator, classy_server: Any) -> None:
    """Settings pointing at the simulated Classy account (no plugins unless a test adds them)."""
    for name, value in {
        **classy.settings_env(classy_server),
        "SUPPORTERSYNC_CLASSY_MAX_RETRIES": "0",
        "SUPPORTERSYNC_SYNC_SAFETY_LAG_SECONDS": "0",
        "SUPPORTERSYNC_LOAD_PLUGINS": "",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def mailchimp_env(monkeypatch: pytest.MonkeyPatch, mailchimp_server: Any) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_MAILCHIMP_API_KEY", MAILCHIMP_KEY)
    monkeypatch.setenv("SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID", "sim-audience")
    monkeypatch.setenv("SUPPORTERSYNC_MAILCHIMP_API_URL", mailchimp_server.api_url)
    monkeypatch.setenv("SUPPORTERSYNC_LOAD_PLUGINS", "mailchimp")


@pytest.fixture
def cli() -> Callable[..., Result]:
    """cli("status", "--json") -> click Result with .exit_code, .stdout, .stderr."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ops.db'}"
