"""The simulated Classy account: API semantics, faults, mutations and its data."""

from __future__ import annotations

import asyncio
import copy
import functools
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supportersync.testing.classy_sim import ENTITY_PATHS, ClassySimulator, SimRequest

BASE = "https://api.classy.org"
ORG = 1001
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
INVALID_FILTER = {"error": "Invalid value and/or operator for updated_at filtering condition."}


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def when(text: str) -> datetime:
    """Parse a Classy datetime independently of the simulator's own parser."""
    text = text.replace("Z", "+0000")
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)


def list_path(entity: str) -> str:
    return f"/2.0/organizations/{ORG}/{ENTITY_PATHS[entity]}"


def client_for(sim: ClassySimulator) -> httpx.Client:
    client = httpx.Client(transport=sim.transport(), base_url=BASE)
    token = client.post("/oauth2/auth", json=CREDENTIALS).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def crawl(client: httpx.Client, entity: str, **params: object) -> list[dict]:
    rows: list[dict] = []
    page = 1
    while True:
        response = client.get(list_path(entity), params={**params, "page": page, "per_page": 100})
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        if body["next_page_url"] is None:
            return rows
        page += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> ClassySimulator:
    return ClassySimulator(clock=clock)


@pytest.fixture
def api(sim: ClassySimulator) -> Iterator[httpx.Client]:
    client = client_for(sim)
    yield client
    client.close()


@functools.cache
def shared_sim() -> ClassySimulator:
    """One unchanging simulator for the read-only property tests."""
    return ClassySimulator(clock=FakeClock())


# --- tokens -----------------------------------------------------------------------------

def test_token_from_json_or_form_body(sim: ClassySimulator) -> None:
    with httpx.Client(transport=sim.transport(), base_url=BASE) as client:
        for response in (client.post("/oauth2/auth", json=CREDENTIALS), client.post("/oauth2/auth", data=CREDENTIALS)):
            assert response.status_code == 200
            body = response.json()
            assert body["token_type"] == "bearer" and body["expires_in"] == 3600
            data = client.get(list_path("campaigns"), headers={"Authorization": f"Bearer {body['access_token']}"})
            assert data.status_code == 200


def test_token_refusals(sim: ClassySimulator) -> None:
    with httpx.Client(transport=sim.transport(), base_url=BASE) as client:
        wrong = client.post("/oauth2/auth", json={**CREDENTIALS, "client_secret": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        in_query = client.post("/oauth2/auth", params=CREDENTIALS)
        assert in_query.status_code == 400
        grant = client.post("/oauth2/auth", json={**CREDENTIALS, "grant_type": "password"})
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    # The secret sent in the query string is not kept in the log.
    assert all("sim-client-secret" not in repr(entry) for entry in sim.request_log)


def test_token_lifetime_and_credentials_are_configurable(clock: FakeClock) -> None:
    sim = ClassySimulator(clock=clock, token_lifetime=7200, client_id="a", client_secret="b")
    with httpx.Client(transport=sim.transport(), base_url=BASE) as client:
        body = client.post("/oauth2/auth", json={**CREDENTIALS, "client_id": "a", "client_secret": "b"}).json()
        assert body["expires_in"] == 7200
        sim.set_credentials("c", "d")
        assert client.post("/oauth2/auth", json={**CREDENTIALS, "client_id": "a", "client_secret": "b"}).status_code == 401
        assert client.post("/oauth2/auth", json={**CREDENTIALS, "client_id": "c", "client_secret": "d"}).status_code == 200


def test_data_calls_need_a_live_token(sim: ClassySimulator, api: httpx.Client, clock: FakeClock) -> None:
    path = list_path("supporters")
    assert httpx.Client(transport=sim.transport(), base_url=BASE).get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Bearer made-up"}).status_code == 401
    assert api.get(path).status_code == 200
    clock.now += timedelta(seconds=3599)
    assert api.get(path).status_code == 200
    clock.now += timedelta(seconds=1)
    assert api.get(path).status_code == 401  # expired


def test_revoke_tokens(sim: ClassySimulator, api: httpx.Client) -> None:
    assert api.get(list_path("supporters")).status_code == 200
    sim.revoke_tokens()
    assert api.get(list_path("supporters")).status_code == 401
    assert client_for(sim).get(list_path("supporters")).status_code == 200


def test_request_log_never_holds_tokens(sim: ClassySimulator, api: httpx.Client) -> None:
    sim.reset_log()
    api.get(list_path("transactions"), params={"per_page": 5, "filter": "status=refunded"})
    token = api.headers["Authorization"].split()[1]
    assert sim.request_log == [
        SimRequest("GET", list_path("transactions"), {"per_page": "5", "filter": "status=refunded"}, 200)
    ]
    assert token not in repr(sim.request_log)


# --- routes -----------------------------------------------------------------------------

def test_single_records_and_404(sim: ClassySimulator, api: httpx.Client) -> None:
    for entity, path in ENTITY_PATHS.items():
        record_id = next(iter(sim.records[entity]))
        response = api.get(f"/2.0/{path}/{record_id}")
        assert response.status_code == 200
        assert response.json() == sim.records[entity][record_id]
        assert api.get(f"/2.0/{path}/999").status_code == 404


def test_unknown_org_unscoped_and_campaign_scoped_paths(api: httpx.Client, sim: ClassySimulator) -> None:
    assert api.get("/2.0/organizations/4242/supporters").status_code == 404
    assert api.get("/2.0/transactions").status_code == 403
    campaign = next(iter(sim.records["campaigns"]))
    assert api.get(f"/2.0/campaigns/{campaign}/transactions").status_code == 404
    assert api.get("/2.0/apps/sim-client-id/organizations").json()["data"][0]["id"] == ORG


def test_async_client_works_with_the_transport(sim: ClassySimulator) -> None:
    async def fetch() -> int:
        async with httpx.AsyncClient(transport=sim.transport(), base_url=BASE) as client:
            token = (await client.post("/oauth2/auth", data=CREDENTIALS)).json()["access_token"]
            response = await client.get(list_path("campaigns"), headers={"Authorization": f"Bearer {token}"})
            return response.json()["total"]

    assert asyncio.run(fetch()) == 8


# --- paging -----------------------------------------------------------------------------

def test_envelope_fields(api: httpx.Client) -> None:
    body = api.get(list_path("supporters"), params={"page": 2, "per_page": 50}).json()
    url = BASE + list_path("supporters")
    data = body.pop("data")
    assert len(data) == 50
    assert body == {
        "current_page": 2,
        "first_page_url": f"{url}?page=1",
        "from": 51,
        "last_page": 4,
        "last_page_url": f"{url}?page=4",
        "next_page_url": f"{url}?page=3",
        "path": url,
        "per_page": 50,
        "prev_page_url": f"{url}?page=1",
        "to": 100,
        "total": 200,
    }


def test_last_page_and_beyond(api: httpx.Client) -> None:
    last = api.get(list_path("campaigns"), params={"page": 2, "per_page": 5}).json()
    assert (last["from"], last["to"], last["next_page_url"], len(last["data"])) == (6, 8, None, 3)
    beyond = api.get(list_path("campaigns"), params={"page": 9, "per_page": 5}).json()
    assert beyond["data"] == [] and beyond["from"] is None and beyond["to"] is None
    assert beyond["prev_page_url"].endswith("?page=8") and beyond["last_page"] == 2


def test_per_page_default_clamp_and_bad_page(api: httpx.Client) -> None:
    assert len(api.get(list_path("transactions")).json()["data"]) == 20
    clamped = api.get(list_path("transactions"), params={"per_page": 500}).json()
    assert clamped["per_page"] == 100 and len(clamped["data"]) == 100
    for page in ("0", "-3", "abc"):
        assert api.get(list_path("transactions"), params={"page": page}).json()["current_page"] == 1


def test_default_order_is_by_id(sim: ClassySimulator, api: httpx.Client) -> None:
    assert [r["id"] for r in crawl(api, "supporters")] == sorted(sim.records["supporters"])


def test_pages_shift_when_records_change_between_requests(sim: ClassySimulator, api: httpx.Client) -> None:
    params = {"sort": "updated_at:asc", "per_page": 10}
    before = [r["id"] for r in crawl(api, "supporters", sort="updated_at:asc")]
    page1 = [r["id"] for r in api.get(list_path("supporters"), params={**params, "page": 1}).json()["data"]]
    assert page1 == before[:10]
    sim.update("supporters", page1[0], first_name="Moved")  # now the newest: leaves page 1
    page2 = [r["id"] for r in api.get(list_path("supporters"), params={**params, "page": 2}).json()["data"]]
    assert page2 == before[11:21]  # offset paging skipped before[10]
    sim.delete("supporters", before[30])
    page3 = [r["id"] for r in api.get(list_path("supporters"), params={**params, "page": 3}).json()["data"]]
    assert page3 == [i for i in before if i not in (page1[0], before[30])][20:30]


# --- filters ----------------------------------------------------------------------------

def cluster_instant(sim: ClassySimulator, entity: str) -> tuple[datetime, int]:
    counts = Counter(when(r["updated_at"]) for r in sim.records[entity].values())
    return counts.most_common(1)[0]


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "=", "!=", "<>"])
def test_filter_ops_compare_as_datetimes(op: str) -> None:
    sim = shared_sim()
    instant, size = cluster_instant(sim, "transactions")
    assert size > 100
    value = instant.strftime("%Y-%m-%dT%H:%M:%S+0000")
    compare = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "=": "__eq__", "!=": "__ne__", "<>": "__ne__"}[op]
    expected = sorted(
        r["id"] for r in sim.records["transactions"].values() if getattr(when(r["updated_at"]), compare)(instant)
    )
    got = [r["id"] for r in crawl(client_for(sim), "transactions", filter=f"updated_at{op}{value}")]
    assert got == expected


def test_filter_value_encoding(api: httpx.Client) -> None:
    path = list_path("supporters")
    encoded = api.get(path, params={"filter": "updated_at>=2026-10-01T00:00:00+0000"})
    assert encoded.status_code == 200 and encoded.json()["total"] > 0
    assert "%2B0000" in str(encoded.request.url)
    raw_plus = api.get(path + "?filter=updated_at%3E%3D2026-10-01T00:00:00+0000")
    assert raw_plus.status_code == 400 and raw_plus.json() == INVALID_FILTER
    double = api.get(path + "?filter=updated_at%3E%3D2026-10-01T00%3A00%3A00%252B0000")
    assert double.status_code == 400
    fractional = api.get(path, params={"filter": "updated_at>=2026-10-01T00:00:00.000Z"})
    assert fractional.status_code == 400 and fractional.json() == INVALID_FILTER
    for equivalent in ("2026-10-01T00:00:00Z", "2026-10-01", "2026-10-01T02:00:00+0200"):
        same = api.get(path, params={"filter": f"updated_at>={equivalent}"})
        assert same.json()["total"] == encoded.json()["total"]
    for bad in ("updated_at>=2026-10-01T00:00:00+00:00", "updated_at=>2026-10-01", "email_address=x", "updated_at>=2026-13-01"):
        assert api.get(path, params={"filter": bad}).status_code == 400


def test_filter_on_status_and_purchased_at(sim: ClassySimulator, api: httpx.Client) -> None:
    records = list(sim.records["transactions"].values())
    refunded = crawl(api, "transactions", filter="status=refunded")
    assert {r["id"] for r in refunded} == {r["id"] for r in records if r["status"] == "refunded"}
    assert len(crawl(api, "transactions", filter="status!=success")) == sum(r["status"] != "success" for r in records)
    cutoff = datetime(2025, 1, 1, tzinfo=UTC)
    purchased = crawl(api, "transactions", filter="purchased_at<2025-01-01", sort="purchased_at:desc")
    assert [r["id"] for r in purchased] == [
        r["id"] for r in sorted(
            (r for r in records if when(r["purchased_at"]) < cutoff),
            key=lambda r: (-when(r["purchased_at"]).timestamp(), r["id"]),
        )
    ]
    assert api.get(list_path("supporters"), params={"filter": "status=active"}).status_code == 400


# --- sorting ----------------------------------------------------------------------------

def test_sort_ties_are_broken_by_id_ascending() -> None:
    sim = shared_sim()
    api = client_for(sim)
    instant, size = cluster_instant(sim, "supporters")
    assert size > 100
    for direction, sign in (("asc", 1), ("desc", -1)):
        got = [r["id"] for r in crawl(api, "supporters", sort=f"updated_at:{direction}")]
        expected = [
            r["id"] for r in sorted(
                sim.records["supporters"].values(), key=lambda r: (sign * when(r["updated_at"]).timestamp(), r["id"])
            )
        ]
        assert got == expected
        cluster = [i for i in got if when(sim.records["supporters"][i]["updated_at"]) == instant]
        assert cluster == sorted(cluster) and len(cluster) == size


def test_multi_field_and_non_indexed_sorts(api: httpx.Client, sim: ClassySimulator) -> None:
    records = list(sim.records["transactions"].values())
    got = [r["id"] for r in crawl(api, "transactions", sort="status:asc,updated_at:desc")]
    expected = [r["id"] for r in sorted(records, key=lambda r: (r["status"], -when(r["updated_at"]).timestamp(), r["id"]))]
    assert got == expected
    by_amount = crawl(api, "transactions", sort="total_gross_amount:desc")
    assert [r["total_gross_amount"] for r in by_amount] == sorted((r["total_gross_amount"] for r in records), reverse=True)
    assert api.get(list_path("transactions"), params={"sort": "nope"}).status_code == 400
    assert api.get(list_path("transactions"), params={"sort": "id:sideways"}).status_code == 400


@settings(max_examples=40, deadline=None)
@given(
    field=st.sampled_from(["updated_at", "created_at", "purchased_at"]),
    op=st.sampled_from(["<", "<=", ">", ">=", "=", "!="]),
    pick=st.integers(min_value=0, max_value=1199),
    shift=st.sampled_from([-1, 0, 1]),
    sort=st.sampled_from(["updated_at", "created_at", "purchased_at", "id"]),
    descending=st.booleans(),
)
def test_filtered_sorted_crawl_matches_brute_force(
    field: str, op: str, pick: int, shift: int, sort: str, descending: bool
) -> None:
    sim = shared_sim()
    records = list(sim.records["transactions"].values())
    cutoff = when(records[pick][field]) + timedelta(seconds=shift)
    compare = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "=": "__eq__", "!=": "__ne__"}[op]
    sign = -1 if descending else 1

    def sort_key(record: dict) -> tuple[float, int]:
        value = record["id"] if sort == "id" else when(record[sort]).timestamp()
        return (sign * value, record["id"])

    expected = [r["id"] for r in sorted(records, key=sort_key) if getattr(when(r[field]), compare)(cutoff)]
    got = crawl(
        client_for(sim), "transactions",
        filter=f"{field}{op}{cutoff.strftime('%Y-%m-%dT%H:%M:%S+0000')}",
        sort=f"{sort}:{'desc' if descending else 'asc'}",
    )
    assert [r["id"] for r in got] == expected


def expected_order(records: list[dict], field: str, descending: bool) -> list[int]:
    sign = -1 if descending else 1
    return [r["id"] for r in sorted(records, key=lambda r: (sign * when(r[field]).timestamp(), r["id"]))]


@settings(max_examples=30, deadline=None)
@given(st.lists(
    st.tuples(st.sampled_from(["update", "touch", "delete", "add", "refund"]), st.integers(0, 10**6), st.integers(-2, 2)),
    max_size=12,
))
def test_indexes_stay_right_while_records_change(operations: list[tuple[str, int, int]]) -> None:
    sim = ClassySimulator(supporters=5, transactions=60, recurring_plans=2, campaigns=2, clock=FakeClock())
    api = client_for(sim)
    moment = datetime(2026, 11, 20, tzinfo=UTC)
    for name, pick, offset in operations:
        crawl(api, "transactions", sort="updated_at:asc")  # build the indexes being patched
        crawl(api, "transactions", sort="updated_at:desc")
        ids = list(sim.records["transactions"])
        target = ids[pick % len(ids)]
        at = moment + timedelta(seconds=offset)
        if name == "update":
            sim.update("transactions", target, at=at, payment_method="check")
        elif name == "touch":
            sim.touch("transactions", ids[pick % 7 :: 5], at=at)
        elif name == "delete":
            sim.delete("transactions", target)
        elif name == "add":
            sim.add("transactions", updated_at=at)
        else:
            sim.refund(target, at=at)
        records = list(sim.records["transactions"].values())
        for descending in (False, True):
            sort = f"updated_at:{'desc' if descending else 'asc'}"
            assert [r["id"] for r in crawl(api, "transactions", sort=sort)] == expected_order(records, "updated_at", descending)
        newer = [r for r in records if when(r["updated_at"]) >= moment]
        got = crawl(api, "transactions", sort="updated_at:asc", filter="updated_at>=2026-11-20T00:00:00Z")
        assert [r["id"] for r in got] == expected_order(newer, "updated_at", False)


def test_bulk_touch_rebuilds_indexes() -> None:
    sim = ClassySimulator(supporters=5, transactions=6000, clock=FakeClock())
    api = client_for(sim)
    crawl(api, "transactions", sort="updated_at:desc")
    ids = list(sim.records["transactions"])[::2][:2500]
    sim.touch("transactions", ids, at=datetime(2026, 11, 25, tzinfo=UTC))
    got = crawl(api, "transactions", sort="updated_at:desc")
    assert [r["id"] for r in got] == expected_order(list(sim.records["transactions"].values()), "updated_at", True)
    assert [r["id"] for r in got[:2500]] == ids


# --- rate limits and faults -------------------------------------------------------------

def test_rate_limit_sliding_window(clock: FakeClock) -> None:
    seconds = [1000.0]
    sim = ClassySimulator(clock=clock, rate_limit_per_minute=3, monotonic=lambda: seconds[0])
    api = client_for(sim)
    remaining = []
    for _ in range(3):
        response = api.get(list_path("campaigns"))
        assert response.headers["X-RateLimit-Limit"] == "3"
        remaining.append(response.headers["X-RateLimit-Remaining"])
        seconds[0] += 10
    assert remaining == ["2", "1", "0"]
    limited = api.get(list_path("campaigns"))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "30"  # the first call leaves the window at 1060
    assert limited.json() == {"message": "Too Many Attempts.", "retry_after": 30}
    seconds[0] += 30
    assert api.get(list_path("campaigns")).status_code == 200


def test_fail_next(sim: ClassySimulator, api: httpx.Client) -> None:
    sim.fail_next(2)
    assert [api.get(list_path("supporters")).status_code for _ in range(3)] == [500, 500, 200]
    sim.fail_next(status=429, retry_after=7)
    limited = api.get(list_path("supporters"))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json() == {"message": "Too Many Attempts.", "retry_after": 7}
    sim.fail_next(status=503, path_contains="transactions")
    assert api.get(list_path("supporters")).status_code == 200
    assert api.get(list_path("transactions")).status_code == 503
    sim.fail_next(status=500)
    assert api.post("/oauth2/auth", json=CREDENTIALS).status_code == 200  # data calls only by default
    assert api.get(list_path("supporters")).status_code == 500
    sim.fail_next(status=503, path_contains="/oauth2/auth")
    assert api.post("/oauth2/auth", json=CREDENTIALS).status_code == 503


def test_drop_connection_in_process(sim: ClassySimulator, api: httpx.Client) -> None:
    sim.drop_connection_next()
    with pytest.raises(httpx.ConnectError):
        api.get(list_path("supporters"))
    assert api.get(list_path("supporters")).status_code == 200
    assert [entry.status for entry in sim.request_log[-2:]] == [0, 200]


def test_latency_is_added_to_data_calls(sim: ClassySimulator, api: httpx.Client) -> None:
    sim.latency = 0.05
    started = time.perf_counter()
    api.get(list_path("campaigns"))
    assert time.perf_counter() - started >= 0.05


# --- mutations --------------------------------------------------------------------------

def test_update_stamps_updated_at_and_is_seen_incrementally(sim: ClassySimulator, api: httpx.Client, clock: FakeClock) -> None:
    supporter = next(iter(sim.records["supporters"]))
    clock.now = NOW.replace(microsecond=987_654)
    updated = sim.update("supporters", supporter, email_address="new@example.org")
    assert updated["updated_at"] == "2026-12-01T12:00:00+0000"  # truncated to the second
    incremental = crawl(api, "supporters", filter="updated_at>2026-11-30T00:00:00+0000")
    assert [r["id"] for r in incremental] == [supporter]
    assert incremental[0]["email_address"] == "new@example.org"
    at = datetime(2026, 12, 2, tzinfo=UTC)
    assert sim.update("supporters", supporter, at=at, phone="")["updated_at"] == "2026-12-02T00:00:00+0000"
    with pytest.raises(KeyError):
        sim.update("supporters", 1, first_name="x")


def test_refund_changes_updated_at_not_purchased_at(sim: ClassySimulator, api: httpx.Client) -> None:
    transaction = next(r for r in sim.records["transactions"].values() if r["status"] == "success")
    at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    refunded = sim.refund(transaction["id"], at=at)
    assert refunded["status"] == "refunded"
    assert when(refunded["refunded_at"]) == at and when(refunded["updated_at"]) == at
    assert refunded["purchased_at"] == transaction["purchased_at"]
    served = api.get(f"/2.0/transactions/{transaction['id']}").json()
    assert served == refunded
    by_purchase = crawl(api, "transactions", filter=f"purchased_at={transaction['purchased_at'].replace('Z', '+0000')}")
    assert transaction["id"] in [r["id"] for r in by_purchase]


def test_touch_makes_a_cluster(sim: ClassySimulator, api: httpx.Client) -> None:
    ids = list(sim.records["transactions"])[:150]
    sim.touch("transactions", ids, at=datetime(2026, 11, 15, tzinfo=UTC))
    got = crawl(api, "transactions", filter="updated_at=2026-11-15T00:00:00Z", sort="updated_at")
    assert [r["id"] for r in got] == ids


def test_delete_is_hard(sim: ClassySimulator, api: httpx.Client) -> None:
    supporter = next(iter(sim.records["supporters"]))
    sim.delete("supporters", supporter)
    assert api.get(f"/2.0/supporters/{supporter}").status_code == 404
    assert supporter not in sim.records["supporters"]
    assert api.get(list_path("supporters")).json()["total"] == 199
    with pytest.raises(KeyError):
        sim.delete("supporters", supporter)


def test_add_creates_newest_record_and_can_fill_an_orphan(sim: ClassySimulator, api: httpx.Client) -> None:
    added = sim.add("supporters", email_address="fresh@example.org", first_name="Zoë")
    assert added["id"] > max(i for i in sim.records["supporters"] if i != added["id"])
    assert added["created_at"] == added["updated_at"] == "2026-12-01T12:00:00+0000"
    assert sim.records["supporters"][added["id"]] == added
    assert [r["id"] for r in crawl(api, "supporters", filter="created_at>=2026-12-01")] == [added["id"]]
    supporters = set(sim.records["supporters"])
    orphan = next(r for r in sim.records["transactions"].values() if r["supporter_id"] not in supporters)
    sim.add("supporters", id=orphan["supporter_id"], email_address="late@example.org")
    assert api.get(f"/2.0/supporters/{orphan['supporter_id']}").json()["email_address"] == "late@example.org"
    with pytest.raises(ValueError):
        sim.add("supporters", id=added["id"])


def test_add_accepts_any_unused_id(sim: ClassySimulator, api: httpx.Client) -> None:
    far = sim.add("supporters", id=999_999_999, last_name="Far")
    sim.add("supporters", id=77, last_name="Low")
    after = sim.add("supporters", last_name="After")
    assert after["id"] == 1_000_000_000
    ids = [r["id"] for r in crawl(api, "supporters")]
    assert ids[0] == 77 and ids[-2:] == [far["id"], after["id"]] and ids == sorted(ids)
    newest = crawl(api, "supporters", filter="created_at>=2026-12-01", sort="created_at:desc")
    assert [r["id"] for r in newest] == [77, 999_999_999, 1_000_000_000]  # one instant: ties by id
    assert api.get("/2.0/supporters/77").json()["last_name"] == "Low"
    sim.delete("supporters", 999_999_999)
    assert 999_999_999 not in sim.records["supporters"] and len(sim.records["supporters"]) == 202


def test_records_are_read_only_snapshots(sim: ClassySimulator) -> None:
    record = sim.records["campaigns"][next(iter(sim.records["campaigns"]))]
    with pytest.raises(TypeError):
        record["name"] = "changed in place"
    for copied in (dict(record), record.copy(), copy.deepcopy(record)):
        copied["name"] = "fine"
    assert len(sim.records["campaigns"]) == 8


def test_injected_malformed_records_are_served_as_is(sim: ClassySimulator, api: httpx.Client) -> None:
    bad = {"email_address": 42, "updated_at": "yesterday"}
    sim.inject_malformed("supporters", bad)
    body = api.get(list_path("supporters"), params={"page": 3, "per_page": 100}).json()
    assert (body["total"], body["last_page"], body["data"]) == (201, 3, [bad])
    filtered = api.get(list_path("supporters"), params={"filter": "updated_at>2026-11-30"}).json()
    assert filtered["data"] == [bad]  # an unreadable updated_at cannot be filtered out


# --- generated data ---------------------------------------------------------------------

def test_clusters_of_more_than_100_in_one_second() -> None:
    sim = shared_sim()
    assert cluster_instant(sim, "supporters")[1] > 100
    assert cluster_instant(sim, "transactions")[1] > 100
    bigger = ClassySimulator(supporters=2000, transactions=3000, clock=FakeClock())
    assert cluster_instant(bigger, "supporters")[1] >= 240
    assert cluster_instant(bigger, "transactions")[1] >= 200


def test_awkward_supporters_exist() -> None:
    supporters = list(shared_sim().records["supporters"].values())
    emails = [s["email_address"] for s in supporters]
    assert None in emails and "" in emails and "not-an-email" in emails
    clean = Counter(e.strip().lower() for e in emails if e)
    duplicated = [e for e in emails if e and clean[e.strip().lower()] > 1]
    assert any(e != e.strip() for e in duplicated) and any(e == e.upper() for e in duplicated)
    assert "" in [s["phone"] for s in supporters]
    names = [s["first_name"] + s["last_name"] for s in supporters]
    assert any("ß" in n for n in names) and any("é" in n for n in names)
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    consent = [s["last_email_consent_decision_date"] for s in supporters if s["last_email_consent_decision_date"]]
    assert consent and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z", c) for c in consent)
    assert {type(s["opt_in"]) for s in supporters} == {bool}


def test_awkward_transactions_exist() -> None:
    sim = shared_sim()
    transactions = list(sim.records["transactions"].values())
    supporters, campaigns, plans = (set(sim.records[e]) for e in ("supporters", "campaigns", "recurring_plans"))
    assert any(t["supporter_id"] not in supporters for t in transactions)
    assert any(t["campaign_id"] not in campaigns for t in transactions)
    linked = [t for t in transactions if t["recurring_donation_plan_id"] is not None]
    assert linked and all(t["recurring_donation_plan_id"] in plans for t in linked)
    refunded = [t for t in transactions if t["status"] == "refunded"]
    assert refunded and all(t["refunded_at"] and when(t["refunded_at"]) <= when(t["updated_at"]) for t in refunded)
    statuses = Counter(t["status"] for t in transactions)
    assert statuses.most_common(1)[0][0] == "success" and len(statuses) >= 6
    amounts = [t["total_gross_amount"] for t in transactions]
    assert 1234.56 in [t["donation_gross_amount"] for t in transactions] and 25.0 in amounts
    assert max(amounts) >= 25_000 and all(round(a, 2) == a for a in amounts)
    assert all(isinstance(t["charged_total_gross_amount"], str) for t in transactions)
    assert any(t["purchased_at"].endswith("Z") for t in transactions)
    assert any(t["purchased_at"].endswith("+0000") for t in transactions)


def test_campaigns_and_plans() -> None:
    sim = shared_sim()
    campaigns = list(sim.records["campaigns"].values())
    assert max(c["goal"] for c in campaigns) > 100_000_000
    assert all(isinstance(c["raw_goal"], str) for c in campaigns)
    assert {c["type"] for c in campaigns} <= {"donation", "peer_to_peer"}
    plans = list(sim.records["recurring_plans"].values())
    assert {p["frequency"] for p in plans} <= {"monthly", "quarterly", "semi-annually", "yearly"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", p["next_processing_date"]) for p in plans if p["next_processing_date"])
    assert all(p["canceled_at"] for p in plans if p["status"] == "canceled")


def test_ids_and_datetimes() -> None:
    sim = shared_sim()
    ranges = []
    for entity in ENTITY_PATHS:
        records = [sim.records[entity][i] for i in sorted(sim.records[entity])]
        ranges.append((records[0]["id"], records[-1]["id"]))
        created = [when(r["created_at"]) for r in records]
        assert created == sorted(created), entity
        for record in records:
            for name, value in record.items():
                if name.endswith(("_at", "_date")) and value and name != "next_processing_date":
                    assert when(value) < BASE_TIME, (entity, name, value)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+0000|Z)", record["updated_at"])
    ranges.sort()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))  # distinct id ranges


def test_same_seed_same_data_other_seed_other_data() -> None:
    def snapshot(seed: int) -> dict:
        sim = ClassySimulator(seed=seed, supporters=50, transactions=200, clock=FakeClock())
        return {entity: dict(sim.records[entity].items()) for entity in ENTITY_PATHS}

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


# --- real HTTP --------------------------------------------------------------------------

def test_serve_over_loopback(sim: ClassySimulator) -> None:
    with sim.serve() as server, httpx.Client() as client:
        assert server.url.startswith("http://127.0.0.1:") and server.api_url == server.url + "/2.0"
        token = client.post(server.token_url, data=CREDENTIALS).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        url = f"{server.api_url}/organizations/{ORG}/transactions"
        body = client.get(url, params={"filter": "updated_at>=2026-10-01T00:00:00+0000", "per_page": 5}).json()
        assert body["total"] > 0 and body["path"] == url and len(body["data"]) == 5
        unencoded = client.get(url + "?filter=updated_at%3E%3D2026-10-01T00:00:00+0000")
        assert unencoded.status_code == 400 and unencoded.json() == INVALID_FILTER
        sim.drop_connection_next()
        with pytest.raises(httpx.TransportError):
            client.get(url)
        assert client.get(url).status_code == 200
        assert client.get(server.url + "/nowhere").status_code == 404


@pytest.mark.slow
def test_module_serves_from_its_own_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "supportersync.testing.classy_sim", "--supporters", "30", "--transactions", "60",
         "--seed", "5", "--client-secret", "s3"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        with httpx.Client(base_url=url, timeout=5) as client:
            token = client.post("/oauth2/auth", json={**CREDENTIALS, "client_secret": "s3"}).json()["access_token"]
            body = client.get(list_path("supporters"), headers={"Authorization": f"Bearer {token}"}).json()
            assert body["total"] == 30
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
