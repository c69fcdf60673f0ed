"""The Mailchimp client on its own, with pytest-httpx: auth, retries, errors, batches."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tarfile
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from supportersync.config import Secret
from supportersync.mailchimp.client import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpNotFound,
    MailchimpRequestError,
    MailchimpUnavailable,
    Operation,
    read_archive,
)

KEY = "0123456789abcdef0123456789abcdef-us21"
API = "https://us21.api.mailchimp.com/3.0"
ARCHIVE = "https://mailchimp-api-batch.s3.amazonaws.com/abc-response.tar.gz?Signature=x"


@pytest.fixture
def client() -> Any:
    with MailchimpClient(Secret(KEY), API, sleep=lambda seconds: None, max_retries=3,
                         poll_delays=[0.0] * 10) as c:
        yield c


def problem(status: int, title: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status,
            "detail": detail, "instance": "x", **extra}


def archive(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("./")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        content = json.dumps(rows).encode()
        entry = tarfile.TarInfo("./results.json")
        entry.size = len(content)
        tar.addfile(entry, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


def test_basic_auth_with_the_key_goes_to_the_api_only(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    httpx_mock.add_response(url=f"{API}/ping", json={"health_status": "Everything's Chimpy!"})
    httpx_mock.add_response(url=ARCHIVE, content=archive([]))

    assert client.ping() == "Everything's Chimpy!"
    client._send("GET", ARCHIVE)

    api_request, archive_request = httpx_mock.get_requests()
    scheme, token = api_request.headers["Authorization"].split(" ")
    assert scheme == "Basic" and base64.b64decode(token).decode().endswith(":" + KEY)
    assert "Authorization" not in archive_request.headers
    assert KEY not in repr(client) and KEY not in repr(client._http.auth)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_idempotent_calls_are_retried_on_429_and_5xx(httpx_mock: HTTPXMock, client: MailchimpClient,
                                                     status: int) -> None:
    httpx_mock.add_response(url=f"{API}/ping", status_code=status, json=problem(status, "Oops"))
    httpx_mock.add_response(url=f"{API}/ping", json={"health_status": "ok"})
    assert client.ping() == "ok"
    assert client.retries == 1


def test_transport_errors_are_retried_then_reported(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{API}/ping", is_reusable=True)
    with pytest.raises(MailchimpUnavailable, match="Cannot reach Mailchimp.*4 attempts"):
        client.ping()
    assert len(httpx_mock.get_requests()) == 4


def test_retry_after_is_honoured(httpx_mock: HTTPXMock) -> None:
    slept: list[float] = []
    httpx_mock.add_response(url=f"{API}/ping", status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(url=f"{API}/ping", json={"health_status": "ok"})
    with MailchimpClient(Secret(KEY), API, sleep=slept.append) as client:
        client.ping()
    assert slept == [7.0]


def test_a_post_is_not_retried_on_5xx_or_transport_errors(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    httpx_mock.add_response(method="POST", url=f"{API}/lists/L/segments/5", status_code=500,
                            json=problem(500, "Internal Server Error"))
    with pytest.raises(MailchimpUnavailable, match="not retried"):
        client.change_segment("L", 5, add=["a@b.org"])
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), method="POST", url=f"{API}/lists/L/segments/5")
    with pytest.raises(MailchimpUnavailable):
        client.change_segment("L", 5, add=["a@b.org"])
    assert len(httpx_mock.get_requests()) == 2


def test_a_post_refused_with_429_or_an_empty_403_is_retried(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    url = f"{API}/lists/L/segments/5"
    httpx_mock.add_response(method="POST", url=url, status_code=429, json=problem(429, "Too Many Requests"))
    httpx_mock.add_response(method="POST", url=url, status_code=403)
    httpx_mock.add_response(method="POST", url=url, json={"total_added": 1, "errors": []})
    assert client.change_segment("L", 5, add=["a@b.org"])["total_added"] == 1


@pytest.mark.parametrize("detail, expected", [
    ("This API key has been disabled", "has been disabled"),
    ("Your API key may be invalid, or you've attempted to access the wrong datacenter.", "another datacenter"),
])
def test_401_names_the_key_problem_without_the_key(httpx_mock: HTTPXMock, client: MailchimpClient, detail: str,
                                                   expected: str) -> None:
    httpx_mock.add_response(url=f"{API}/ping", status_code=401, json=problem(401, "API Key Invalid", detail))
    with pytest.raises(MailchimpAuthError, match=expected) as info:
        client.ping()
    assert "SUPPORTERSYNC_MAILCHIMP_API_KEY" in str(info.value)
    assert KEY not in str(info.value) and KEY[:32] not in str(info.value)
    assert len(httpx_mock.get_requests()) == 1  # never retried


def test_404_and_400_become_typed_errors(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    httpx_mock.add_response(url=re.compile(rf"{re.escape(API)}/lists/nope\?.*"), status_code=404,
                            json=problem(404, "Resource Not Found", "The requested resource could not be found."))
    with pytest.raises(MailchimpNotFound):
        client.audience("nope")
    httpx_mock.add_response(method="POST", url=f"{API}/lists/L/merge-fields", status_code=400,
                            json=problem(400, "Invalid Resource", "A Merge Field with the tag \"X\" already exists."))
    with pytest.raises(MailchimpRequestError) as info:
        client.create_merge_field("L", "X", "X", "text")
    assert info.value.title == "Invalid Resource" and info.value.status == 400


def test_pages_are_fetched_until_total_items(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    def page(offset: int, n: int) -> dict[str, Any]:
        return {"members": [{"email_address": f"m{offset + i}@x.org"} for i in range(n)], "total_items": 2500}

    for offset, n in ((0, 1000), (1000, 1000), (2000, 500)):
        httpx_mock.add_response(url=re.compile(rf".*/lists/L/members\?.*offset={offset}&.*"), json=page(offset, n))
    members = client.members("L", status="unsubscribed")
    assert len(members) == 2500 and members[-1]["email_address"] == "m2499@x.org"
    assert all(r.url.params["status"] == "unsubscribed" for r in httpx_mock.get_requests())


def test_a_few_operations_go_out_directly(httpx_mock: HTTPXMock, client: MailchimpClient) -> None:
    httpx_mock.add_response(method="PUT", url=f"{API}/lists/L/members/h1", json={"status": "subscribed"})
    httpx_mock.add_response(method="PUT", url=f"{API}/lists/L/members/h2", status_code=400,
                            json=problem(400, "Forgotten Email Not Subscribed", "gone"))
    ops = [Operation("PUT", "lists/L/members/h1", "a", {"email_address": "a@x.org"}),
           Operation("PUT", "lists/L/members/h2", "b", {"email_address": "b@x.org"})]

    (results,) = list(client.execute(ops))

    assert [(r.operation_id, r.status, r.ok, r.transient) for r in results] == [
        ("a", 200, True, False), ("b", 400, False, False)]
    assert results[1].problem.title == "Forgotten Email Not Subscribed"


def test_many_operations_go_through_a_batch_whose_archive_is_read(httpx_mock: HTTPXMock) -> None:
    ops = [Operation("PUT", f"lists/L/members/h{i}", f"op{i}", {"email_address": f"m{i}@x.org"}) for i in range(12)]
    rows = [{"status_code": 200, "operation_id": f"op{i}", "response": json.dumps({"status": "subscribed"})}
            for i in range(11)]  # op11 is missing from the archive
    httpx_mock.add_response(method="POST", url=f"{API}/batches", json={"id": "b1", "status": "pending"})
    httpx_mock.add_response(method="GET", url=f"{API}/batches/b1", json={"id": "b1", "status": "started"})
    httpx_mock.add_response(method="GET", url=f"{API}/batches/b1",
                            json={"id": "b1", "status": "finished", "response_body_url": ARCHIVE})
    httpx_mock.add_response(url=ARCHIVE, content=archive(rows))

    with MailchimpClient(Secret(KEY), API, sleep=lambda s: None, poll_delays=[0.0] * 5) as client:
        results = [r for group in client.execute(ops) for r in group]

    submitted = json.loads(httpx_mock.get_requests()[0].content)["operations"]
    assert submitted[0] == {"method": "PUT", "path": "/lists/L/members/h0", "operation_id": "op0",
                            "body": json.dumps({"email_address": "m0@x.org"})}  # body: a JSON string
    by_id = {r.operation_id: r for r in results}
    assert by_id["op0"].ok and by_id["op0"].body == {"status": "subscribed"}
    assert by_id["op11"].transient and not by_id["op11"].ok


def test_an_unreadable_archive_makes_every_operation_transient(httpx_mock: HTTPXMock) -> None:
    ops = [Operation("DELETE", f"lists/L/members/h{i}", f"op{i}") for i in range(11)]
    httpx_mock.add_response(method="POST", url=f"{API}/batches", json={"id": "b1", "status": "pending"})
    httpx_mock.add_response(method="GET", url=f"{API}/batches/b1",
                            json={"id": "b1", "status": "finished", "response_body_url": ARCHIVE})
    httpx_mock.add_response(url=ARCHIVE, content=b"not a tar")
    with MailchimpClient(Secret(KEY), API, sleep=lambda s: None, poll_delays=[0.0]) as client:
        results = [r for group in client.execute(ops) for r in group]
    assert len(results) == 11 and all(r.transient for r in results)


def test_read_archive_skips_folders_and_reads_every_file() -> None:
    rows = [{"status_code": 204, "operation_id": "x", "response": ""}]
    assert read_archive(archive(rows)) == rows
