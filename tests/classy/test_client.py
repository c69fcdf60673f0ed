"""The Classy client alone, against pytest-httpx."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from supportersync.classy.client import ClassyClient, RequestBudget
from supportersync.config import ClassySettings, Secret
from supportersync.errors import SourceAuthError, SourceResponseError, SourceUnavailable
from supportersync.timeutil import format_classy

API = "https://classy.test/2.0"
TOKEN = "https://classy.test/oauth2/auth"


def envelope(data: list[dict], total: int | None = None) -> dict:
    return {"current_page": 1, "data": data, "from": 1, "last_page": 1, "per_page": 100, "to": len(data),
            "total": len(data) if total is None else total, "path": "", "first_page_url": "", "last_page_url": "",
            "next_page_url": None, "prev_page_url": None}


@pytest.fixture
def settings() -> ClassySettings:
    return ClassySettings(client_id="cid", client_secret=Secret("s3cret+/="), organization_id=42, api_url=API,
                          token_url=TOKEN, requests_per_minute=0, max_retries=3)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(settings: ClassySettings, sleeps: list[float]) -> ClassyClient:
    return ClassyClient(settings, sleep=sleeps.append)


def add_token(httpx_mock: HTTPXMock, token: str = "tok-1", expires_in: int = 3600) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN, json={"access_token": token, "expires_in": expires_in,
                                                           "token_type": "bearer"})


def test_token_request_carries_the_secret_in_the_body_only(httpx_mock: HTTPXMock, client: ClassyClient) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(json=envelope([]))
    client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    token_request, data_request = httpx_mock.get_requests()
    assert token_request.url == TOKEN and token_request.url.query == b""
    assert parse_qs(token_request.content.decode())["client_secret"] == ["s3cret+/="]
    assert data_request.headers["Authorization"] == "Bearer tok-1"
    assert "s3cret" not in str(data_request.url)


def test_filter_datetime_is_encoded_exactly_once(httpx_mock: HTTPXMock, client: ClassyClient) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(json=envelope([]))
    moment = datetime(2025, 4, 20, 0, 0, 0, 123456, tzinfo=timezone.utc)
    client.list_page("transactions", page=1, per_page=100, sort="updated_at:asc,id:asc",
                     filter=f"updated_at>={format_classy(moment)}")
    request = httpx_mock.get_requests()[-1]
    raw = request.url.query.decode()
    assert "filter=updated_at%3E%3D2025-04-20T00%3A00%3A00%2B0000" in raw
    assert "%252B" not in raw and "+" not in raw.split("filter=")[1].split("&")[0]
    assert request.url.params["filter"] == "updated_at>=2025-04-20T00:00:00+0000"
    assert request.url.path == "/2.0/organizations/42/transactions"


def test_retries_5xx_and_transport_errors_with_backoff(httpx_mock: HTTPXMock, client: ClassyClient,
                                                       sleeps: list[float]) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(status_code=502)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    httpx_mock.add_response(json=envelope([{"id": 1}]))
    page = client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    assert [r["id"] for r in page.data] == [1]
    assert client.retries == 2 and len(sleeps) == 2
    assert all(0 < s <= 60 for s in sleeps)


def test_honours_retry_after_on_429(httpx_mock: HTTPXMock, client: ClassyClient, sleeps: list[float]) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "42"},
                            json={"message": "Too Many Attempts.", "retry_after": 42})
    httpx_mock.add_response(json=envelope([]))
    client.list_page("campaigns", page=1, per_page=100, sort="id:asc")
    assert sleeps == [42.0]


def test_gives_up_after_max_retries(httpx_mock: HTTPXMock, client: ClassyClient, sleeps: list[float]) -> None:
    add_token(httpx_mock)
    for _ in range(4):
        httpx_mock.add_response(status_code=503)
    with pytest.raises(SourceUnavailable, match="after 3 retries"):
        client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    assert len(sleeps) == 3


def test_a_401_renews_the_token_once_and_repeats_the_call(httpx_mock: HTTPXMock, client: ClassyClient) -> None:
    add_token(httpx_mock, "old")
    httpx_mock.add_response(status_code=401)
    add_token(httpx_mock, "new")
    httpx_mock.add_response(json=envelope([{"id": 7}]))
    page = client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    assert page.data == [{"id": 7}]
    assert httpx_mock.get_requests()[-1].headers["Authorization"] == "Bearer new"


def test_token_is_renewed_before_it_expires(httpx_mock: HTTPXMock, settings: ClassySettings) -> None:
    now = [1000.0]
    client = ClassyClient(settings, clock=lambda: now[0], sleep=lambda s: None)
    add_token(httpx_mock, "first", expires_in=100)
    httpx_mock.add_response(json=envelope([]))
    client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    now[0] += 91  # past 90% of the lifetime
    add_token(httpx_mock, "second", expires_in=100)
    httpx_mock.add_response(json=envelope([]))
    client.list_page("supporters", page=1, per_page=100, sort="id:asc")
    assert httpx_mock.get_requests()[-1].headers["Authorization"] == "Bearer second"


def test_refused_credentials_name_the_settings_and_hide_the_secret(httpx_mock: HTTPXMock,
                                                                  client: ClassyClient) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN, status_code=401, json={"error": "invalid_client"})
    with pytest.raises(SourceAuthError) as info:
        client.check_credentials()
    assert "SUPPORTERSYNC_CLASSY_CLIENT_SECRET" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_broken_envelope_is_not_trusted(httpx_mock: HTTPXMock, client: ClassyClient) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(json={"items": []})
    with pytest.raises(SourceResponseError, match="envelope"):
        client.list_page("supporters", page=1, per_page=100, sort="id:asc")


def test_missing_single_record_is_none(httpx_mock: HTTPXMock, client: ClassyClient) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=f"{API}/recurring-donation-plans/5", status_code=404)
    assert client.get_record("recurring_plans", 5) is None


def test_budget_spaces_requests() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(600, clock=lambda: now[0], sleep=sleep)  # one request every 0.1 s
    for _ in range(5):
        budget.acquire()
    assert now[0] == pytest.approx(0.4)
    assert RequestBudget(0).interval == 0
