"""The simulated Mailchimp account enforces each rule the plugin must respect."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from supportersync.testing.mailchimp_sim import MailchimpSimulator, subscriber_hash

KEY = "0123456789abcdef0123456789abcdef-us21"
BASE = "https://us21.api.mailchimp.com/3.0"
LIST = "/lists/sim-audience"


class Clock:
    """A clock tests move by hand, so last_changed values are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> MailchimpSimulator:
    return MailchimpSimulator(clock=clock)


@pytest.fixture
def api(sim: MailchimpSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=sim.transport(), base_url=BASE, auth=("anystring", KEY)) as client:
        yield client


def member_path(email: str) -> str:
    return f"{LIST}/members/{subscriber_hash(email)}"


def put(api: httpx.Client, email: str, **body: Any) -> httpx.Response:
    return api.put(member_path(email), json={"email_address": email, **body})


def assert_problem(response: httpx.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= problem.keys()
    assert (problem["status"], problem["title"]) == (status, title)
    return problem


# -- auth, account, audience ---------------------------------------------------------


def test_subscriber_hash_trims_and_lowercases() -> None:
    assert subscriber_hash("  Ann@Gmail.COM ") == subscriber_hash("ann@gmail.com")
    assert subscriber_hash("ann@gmail.com") == hashlib.md5(b"ann@gmail.com").hexdigest()


def test_ping_account_and_audience(api: httpx.Client, sim: MailchimpSimulator) -> None:
    assert sim.datacenter == "us21"
    assert api.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
    account = api.get("/").json()
    assert account["account_name"] == "Simulated Charity" and account["account_id"]
    sim.add_member("ann@gmail.com")
    sim.add_member("bob@gmail.com", status="unsubscribed")
    sim.add_member("cat@gmail.com", status="cleaned")
    audience = api.get(LIST).json()
    assert (audience["id"], audience["name"]) == ("sim-audience", "Supporters")
    stats = audience["stats"]
    assert (stats["member_count"], stats["unsubscribe_count"], stats["cleaned_count"]) == (1, 1, 1)
    assert_problem(api.get("/lists/nope"), 404, "Resource Not Found")
    assert_problem(api.get("/lists/nope/members"), 404, "Resource Not Found")


def test_bearer_auth_is_accepted(sim: MailchimpSimulator) -> None:
    client = httpx.Client(transport=sim.transport(), headers={"Authorization": f"Bearer {KEY}"})
    assert client.get(BASE + "/ping").status_code == 200


def test_missing_key(sim: MailchimpSimulator) -> None:
    client = httpx.Client(transport=sim.transport())
    assert_problem(client.get(BASE + "/ping"), 401, "API Key Missing")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        (BASE, "ffffffffffffffffffffffffffffffff-us21"),  # someone else's key
        (BASE, "0123456789abcdef0123456789abcdef-us22"),  # right key, wrong datacenter suffix
        ("https://us22.api.mailchimp.com/3.0", KEY),  # right key sent to the wrong datacenter
    ],
)
def test_invalid_key_or_wrong_datacenter(sim: MailchimpSimulator, url: str, key: str) -> None:
    client = httpx.Client(transport=sim.transport(), auth=("user", key))
    problem = assert_problem(client.get(url + "/ping"), 401, "API Key Invalid")
    assert problem["detail"] == "Your API key may be invalid, or you've attempted to access the wrong datacenter."


def test_disabled_key(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.disable_key()
    for response in (api.get("/ping"), api.get(LIST), put(api, "ann@gmail.com", status_if_new="subscribed")):
        problem = assert_problem(response, 401, "API Key Invalid")
        assert "This API key has been disabled" in problem["detail"]
    assert sim.members == {}


# -- merge fields -------------------------------------------------------------------------


def test_merge_fields_default_create_and_page(api: httpx.Client, sim: MailchimpSimulator) -> None:
    assert list(sim.merge_fields) == ["FNAME", "LNAME"]
    created = api.post(f"{LIST}/merge-fields", json={"tag": "gifts", "name": "Gifts", "type": "number"})
    assert created.status_code == 200 and created.json()["tag"] == "GIFTS"
    body = api.get(f"{LIST}/merge-fields", params={"count": 1, "offset": 2}).json()
    assert body["total_items"] == 3 and [f["tag"] for f in body["merge_fields"]] == ["GIFTS"]


def test_merge_field_tag_longer_than_ten_characters(api: httpx.Client) -> None:
    response = api.post(f"{LIST}/merge-fields", json={"tag": "LASTGIFTDATE", "name": "Last gift", "type": "date"})
    assert_problem(response, 400, "Invalid Resource")
    ok = api.post(f"{LIST}/merge-fields", json={"tag": "LASTGIFTDT", "name": "Last gift", "type": "date"})
    assert ok.status_code == 200


def test_duplicate_merge_tag_is_refused_whatever_its_case(api: httpx.Client) -> None:
    assert_problem(api.post(f"{LIST}/merge-fields", json={"tag": "fname", "name": "F", "type": "text"}), 400, "Invalid Resource")


def test_at_most_thirty_merge_fields(api: httpx.Client, sim: MailchimpSimulator) -> None:
    for index in range(28):
        response = api.post(f"{LIST}/merge-fields", json={"tag": f"F{index}", "name": f"F{index}", "type": "text"})
        assert response.status_code == 200, response.text
    assert len(sim.merge_fields) == 30
    assert_problem(api.post(f"{LIST}/merge-fields", json={"tag": "ONEMORE", "name": "x", "type": "text"}), 400, "Invalid Resource")


def test_unknown_merge_field_in_member_body(api: httpx.Client, sim: MailchimpSimulator) -> None:
    response = put(api, "ann@gmail.com", status_if_new="subscribed", merge_fields={"FNAME": "Ann", "GIFTS": "3"})
    problem = assert_problem(response, 400, "Invalid Resource")
    assert problem["detail"] == "Your merge fields were invalid."
    assert [error["field"] for error in problem["errors"]] == ["GIFTS"]
    assert sim.member("ann@gmail.com") is None


def test_required_merge_field_missing_on_create(clock: Clock) -> None:
    fields = [{"tag": "FNAME", "name": "First", "type": "text", "required": True}]
    sim = MailchimpSimulator(merge_fields=fields, clock=clock)
    api = httpx.Client(transport=sim.transport(), base_url=BASE, auth=("u", KEY))
    problem = assert_problem(put(api, "ann@gmail.com", status_if_new="subscribed"), 400, "Invalid Resource")
    assert problem["errors"] == [{"field": "FNAME", "message": "Please enter a value"}]
    assert put(api, "ann@gmail.com", status_if_new="subscribed", merge_fields={"FNAME": "Ann"}).status_code == 200
    # Updates need not repeat it, but may not clear it.
    assert put(api, "ann@gmail.com", status_if_new="subscribed").status_code == 200
    assert_problem(put(api, "ann@gmail.com", merge_fields={"FNAME": ""}), 400, "Invalid Resource")


def test_number_merge_field_rejects_words(api: httpx.Client, sim: MailchimpSimulator) -> None:
    api.post(f"{LIST}/merge-fields", json={"tag": "GIFTS", "name": "Gifts", "type": "number"})
    bad = put(api, "ann@gmail.com", status_if_new="subscribed", merge_fields={"GIFTS": "many"})
    assert assert_problem(bad, 400, "Invalid Resource")["errors"][0]["field"] == "GIFTS"
    good = put(api, "ann@gmail.com", status_if_new="subscribed", merge_fields={"GIFTS": "12.5", "FNAME": ""})
    assert good.json()["merge_fields"]["GIFTS"] == 12.5


# -- members --------------------------------------------------------------------------------


def test_put_upserts_and_status_if_new_applies_only_on_creation(api: httpx.Client, sim: MailchimpSimulator) -> None:
    created = put(api, "Ann@Gmail.com", status_if_new="subscribed", merge_fields={"FNAME": "Ann"})
    assert created.status_code == 200 and created.json()["status"] == "subscribed"
    again = put(api, "ann@gmail.com", status_if_new="unsubscribed", merge_fields={"LNAME": "Lee"})
    assert again.json()["status"] == "subscribed"
    assert again.json()["merge_fields"] == {"FNAME": "Ann", "LNAME": "Lee"}
    left = put(api, "ann@gmail.com", status="unsubscribed")
    assert left.json()["status"] == "unsubscribed"
    member = sim.member("ann@gmail.com")
    assert member is not None and member.unsubscribe_reason == "admin"
    assert api.get(member_path("ann@gmail.com")).json()["email_address"] == "Ann@Gmail.com"


def test_put_needs_a_status_to_create(api: httpx.Client) -> None:
    assert_problem(put(api, "ann@gmail.com"), 400, "Invalid Resource")


def test_hash_must_match_the_address(api: httpx.Client) -> None:
    wrong = api.put(f"{LIST}/members/{subscriber_hash('bob@gmail.com')}", json={"email_address": "ann@gmail.com", "status_if_new": "subscribed"})
    assert_problem(wrong, 400, "Invalid Resource")
    # An MD5 of the address as typed (not lowercased) is a different member.
    unlowered = hashlib.md5(b"Ann@Gmail.com").hexdigest()
    assert_problem(api.put(f"{LIST}/members/{unlowered}", json={"email_address": "Ann@Gmail.com", "status_if_new": "subscribed"}), 400, "Invalid Resource")


def test_get_patch_unknown_member_is_404(api: httpx.Client) -> None:
    assert_problem(api.get(member_path("ghost@gmail.com")), 404, "Resource Not Found")
    assert_problem(api.patch(member_path("ghost@gmail.com"), json={"status": "subscribed"}), 404, "Resource Not Found")


def test_patch_changes_merge_fields(api: httpx.Client, sim: MailchimpSimulator, clock: Clock) -> None:
    sim.add_member("ann@gmail.com", merge_fields={"FNAME": "Ann"})
    clock.advance(60)
    response = api.patch(member_path("ann@gmail.com"), json={"merge_fields": {"FNAME": "Anne"}})
    assert response.json()["merge_fields"]["FNAME"] == "Anne"
    assert response.json()["last_changed"] == "2024-01-01T12:01:00+00:00"


def test_post_member_refuses_an_existing_one(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    response = api.post(f"{LIST}/members", json={"email_address": "ann@gmail.com", "status": "subscribed"})
    assert_problem(response, 400, "Member Exists")


def test_delete_archives_and_does_not_delete(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    sim.add_member("bob@gmail.com")
    assert api.delete(member_path("ann@gmail.com")).status_code == 204
    member = sim.member("ann@gmail.com")
    assert member is not None and member.archived and member.status == "subscribed"
    assert api.get(member_path("ann@gmail.com")).json()["status"] == "archived"
    listed = api.get(f"{LIST}/members").json()
    assert [m["email_address"] for m in listed["members"]] == ["bob@gmail.com"]
    archived = api.get(f"{LIST}/members", params={"status": "archived"}).json()
    assert archived["total_items"] == 1
    assert api.get(LIST).json()["stats"]["member_count"] == 1
    # Reversible: an upsert brings the contact back.
    assert put(api, "ann@gmail.com", status_if_new="subscribed").json()["status"] == "subscribed"
    assert not sim.member("ann@gmail.com").archived  # type: ignore[union-attr]


def test_archiving_does_not_launder_an_unsubscribe(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com", status="unsubscribed")
    api.delete(member_path("ann@gmail.com"))
    assert_problem(put(api, "ann@gmail.com", status="subscribed"), 400, "Member In Compliance State")
    assert put(api, "ann@gmail.com", status_if_new="subscribed").json()["status"] == "unsubscribed"
    assert sim.resubscribed() == []


# -- the rules that protect people --------------------------------------------------------------


@pytest.fixture(params=["unsubscribed themselves", "bounced", "under review"])
def protected(request: pytest.FixtureRequest, sim: MailchimpSimulator) -> str:
    email = "ann@gmail.com"
    if request.param == "under review":
        sim.add_member(email, status="unsubscribed", unsubscribed_by="admin")
        sim.flag_for_compliance_review(email)
    else:
        sim.add_member(email)
        if request.param == "bounced":
            sim.clean(email)
        else:
            sim.unsubscribe(email, by="self")
    return email


def test_compliance_state_refuses_put_and_patch(api: httpx.Client, sim: MailchimpSimulator, protected: str) -> None:
    before = sim.member(protected).status  # type: ignore[union-attr]
    problem = assert_problem(put(api, protected, status="subscribed"), 400, "Member In Compliance State")
    assert protected in problem["detail"]
    assert_problem(api.patch(member_path(protected), json={"status": "subscribed"}), 400, "Member In Compliance State")
    assert sim.member(protected).status == before  # type: ignore[union-attr]
    assert sim.resubscribed() == []
    assert [r.title for r in sim.rejections] == ["Member In Compliance State"] * 2


def test_compliance_state_refuses_batch_subscribe(api: httpx.Client, sim: MailchimpSimulator, protected: str) -> None:
    body = {
        "members": [
            {"email_address": protected, "status": "subscribed"},
            {"email_address": "new@gmail.com", "status": "subscribed"},
        ],
        "update_existing": True,
    }
    response = api.post(LIST, json=body)
    assert response.status_code == 200
    result = response.json()
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (1, 0, 1)
    error = result["errors"][0]
    assert error["email_address"] == protected and "compliance state" in error["error"]
    assert set(error) == {"email_address", "error", "error_code", "field", "field_message"}
    assert sim.resubscribed() == []


def test_compliance_state_refuses_batch_operations(api: httpx.Client, sim: MailchimpSimulator, protected: str) -> None:
    operation = {"method": "PUT", "path": member_path(protected), "operation_id": "ann",
                 "body": json.dumps({"email_address": protected, "status": "subscribed"})}
    batch = api.post("/batches", json={"operations": [operation]}).json()
    while batch["status"] != "finished":
        batch = api.get(f"/batches/{batch['id']}").json()
    assert (batch["finished_operations"], batch["errored_operations"]) == (1, 1)
    [result] = read_archive(api, batch["response_body_url"])
    assert result["status_code"] == 400 and result["operation_id"] == "ann"
    assert json.loads(result["response"])["title"] == "Member In Compliance State"
    assert sim.resubscribed() == []


def test_pending_is_allowed_and_recorded(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    sim.unsubscribe("ann@gmail.com")
    assert put(api, "ann@gmail.com", status="pending").json()["status"] == "pending"
    hashed = subscriber_hash("ann@gmail.com")
    assert sim.events[-1] == (hashed, "unsubscribed", "pending", "PUT")
    sim.confirm_opt_in("ann@gmail.com")
    assert sim.member("ann@gmail.com").status == "subscribed"  # type: ignore[union-attr]


def test_admin_unsubscribed_can_be_resubscribed_but_it_is_recorded(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    sim.unsubscribe("ann@gmail.com", by="admin")
    assert put(api, "ann@gmail.com", status="subscribed").json()["status"] == "subscribed"
    assert sim.resubscribed() == [(subscriber_hash("ann@gmail.com"), "unsubscribed", "subscribed", "PUT")]


def test_forgotten_email_cannot_be_reimported(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    assert api.post(member_path("ann@gmail.com") + "/actions/delete-permanent").status_code == 204
    assert sim.member("ann@gmail.com") is None
    assert_problem(api.get(member_path("ann@gmail.com")), 404, "Resource Not Found")
    problem = assert_problem(put(api, "ann@gmail.com", status_if_new="subscribed"), 400, "Forgotten Email Not Subscribed")
    assert "permanently deleted" in problem["detail"]
    sim.forget("bob@gmail.com")  # forgotten without ever being a member here
    result = api.post(LIST, json={"members": [{"email_address": "bob@gmail.com", "status": "subscribed"}]}).json()
    assert result["error_count"] == 1 and "permanently deleted" in result["errors"][0]["error"]


@pytest.mark.parametrize(
    "email",
    ["test@gmail.com", "fake@yahoo.com", "asdf@hotmail.com", "jo@example.com", "jo@example.org",
     "jo@test.com", "jo@localhost", "not-an-address", "two@@gmail.com"],
)
def test_fake_looking_addresses_are_refused(api: httpx.Client, email: str) -> None:
    response = api.put(f"{LIST}/members/{subscriber_hash(email)}", json={"email_address": email, "status_if_new": "subscribed"})
    assert "looks fake or invalid" in assert_problem(response, 400, "Invalid Resource")["detail"]


def test_real_looking_address_is_accepted(api: httpx.Client) -> None:
    assert put(api, "tester.lee@charity.org.uk", status_if_new="subscribed").status_code == 200


# -- batch subscribe ------------------------------------------------------------------------------


def test_batch_subscribe_limit(api: httpx.Client) -> None:
    members = [{"email_address": f"p{i}@gmail.com", "status": "subscribed"} for i in range(501)]
    assert_problem(api.post(LIST, json={"members": members}), 400, "Invalid Resource")
    assert api.post(LIST, json={"members": members[:500]}).json()["total_created"] == 500


def test_batch_subscribe_without_update_existing_reports_existing(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com", merge_fields={"FNAME": "Ann"})
    body = {"members": [{"email_address": "ann@gmail.com", "status": "subscribed", "merge_fields": {"FNAME": "X"}}]}
    result = api.post(LIST, json=body).json()
    assert result["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert sim.member("ann@gmail.com").merge_fields["FNAME"] == "Ann"  # type: ignore[union-attr]


def test_batch_subscribe_tags_add_or_sync(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com", tags=["Old", "Donor"])
    add = {"members": [{"email_address": "ann@gmail.com", "tags": ["donor", "Monthly"]}], "update_existing": True}
    assert api.post(LIST, json=add).json()["total_updated"] == 1
    assert sim.member("ann@gmail.com").tags == {"Old", "Donor", "Monthly"}  # type: ignore[union-attr]
    sync = {**add, "sync_tags": True}
    api.post(LIST, json=sync)
    assert sim.member("ann@gmail.com").tags == {"Donor", "Monthly"}  # type: ignore[union-attr]


def test_batch_subscribe_status_applies_to_existing_members(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    body = {"members": [{"email_address": "ann@gmail.com", "status": "unsubscribed"}], "update_existing": True}
    result = api.post(LIST, json=body).json()
    assert result["updated_members"][0]["status"] == "unsubscribed"


# -- tags and segments -------------------------------------------------------------------------------


def test_member_tags_endpoint_is_case_insensitive(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com")
    path = member_path("ann@gmail.com") + "/tags"
    assert api.post(path, json={"tags": [{"name": "Donor", "status": "active"}]}).status_code == 204
    api.post(path, json={"tags": [{"name": "donor", "status": "active"}, {"name": "Monthly", "status": "active"}]})
    assert [t["name"] for t in api.get(path).json()["tags"]] == ["Donor", "Monthly"]
    api.post(path, json={"tags": [{"name": "DONOR", "status": "inactive"}]})
    assert sim.member("ann@gmail.com").tags == {"Monthly"}  # type: ignore[union-attr]
    assert_problem(api.post(path, json={"tags": [{"name": "x", "status": "on"}]}), 400, "Invalid Resource")


def test_tags_and_static_segments_are_the_same_data(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com", tags=["Donor"])
    sim.add_member("bob@gmail.com")
    [segment] = api.get(f"{LIST}/segments", params={"type": "static"}).json()["segments"]
    assert (segment["name"], segment["member_count"]) == ("Donor", 1)
    change = api.post(f"{LIST}/segments/{segment['id']}", json={
        "members_to_add": ["BOB@gmail.com", "stranger@gmail.com"], "members_to_remove": ["ann@gmail.com"]})
    result = change.json()
    assert (result["total_added"], result["total_removed"]) == (1, 1)
    assert result["errors"] == [{"email_addresses": ["stranger@gmail.com"], "error": result["errors"][0]["error"]}]
    assert sim.member("stranger@gmail.com") is None
    assert sim.member("bob@gmail.com").tags == {"Donor"}  # type: ignore[union-attr]
    assert api.get(member_path("ann@gmail.com") + "/tags").json()["tags"] == []
    created = api.post(f"{LIST}/segments", json={"name": "Lapsed", "static_segment": ["ann@gmail.com"]}).json()
    assert created["member_count"] == 1
    assert [t["name"] for t in api.get(member_path("ann@gmail.com")).json()["tags"]] == ["Lapsed"]
    assert_problem(api.post(f"{LIST}/segments", json={"name": "lapsed", "static_segment": []}), 400, "Invalid Resource")
    assert api.get(f"{LIST}/segments", params={"type": "saved"}).json()["total_items"] == 0


def test_segment_changes_are_limited_to_500_each(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.add_member("ann@gmail.com", tags=["Donor"])
    segment_id = api.get(f"{LIST}/segments").json()["segments"][0]["id"]
    many = [f"p{i}@gmail.com" for i in range(501)]
    for field in ("members_to_add", "members_to_remove"):
        assert_problem(api.post(f"{LIST}/segments/{segment_id}", json={field: many}), 400, "Invalid Resource")
    assert api.post(f"{LIST}/segments/{segment_id}", json={"members_to_add": many[:500]}).status_code == 200


# -- listing changes ------------------------------------------------------------------------------------


def test_since_last_changed_pages_through_changes(api: httpx.Client, sim: MailchimpSimulator, clock: Clock) -> None:
    for index in range(30):
        sim.add_member(f"p{index}@gmail.com")
    clock.advance(3600)
    since = clock.now.isoformat()
    for index in range(0, 30, 6):
        sim.unsubscribe(f"p{index}@gmail.com")
    seen: list[str] = []
    offset = 0
    while True:
        body = api.get(f"{LIST}/members", params={
            "since_last_changed": since, "count": 2, "offset": offset,
            "fields": "members.email_address,members.status,total_items"}).json()
        assert body["total_items"] == 5 and set(body) == {"members", "total_items"}
        if not body["members"]:
            break
        seen += [m["email_address"] for m in body["members"] if m["status"] == "unsubscribed"]
        offset += 2
    assert seen == [f"p{index}@gmail.com" for index in range(0, 30, 6)]
    unsubscribed = api.get(f"{LIST}/members", params={"status": "unsubscribed", "count": 1000}).json()
    assert unsubscribed["total_items"] == 5


def test_listing_count_and_time_are_checked(api: httpx.Client) -> None:
    assert_problem(api.get(f"{LIST}/members", params={"count": 1001}), 400, "Invalid Resource")
    # "+00:00" sent without encoding arrives as " 00:00".
    assert_problem(api.get(f"{LIST}/members?since_last_changed=2024-01-01T00:00:00+00:00"), 400, "Invalid Resource")


# -- batch operations ------------------------------------------------------------------------------------


def read_archive(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    response = client.get(url)
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        entries = archive.getmembers()
        # The raw header says "./"; tarfile strips a directory's trailing slash when reading.
        assert gzip.decompress(response.content).startswith(b"./\0")
        assert entries[0].name == "." and entries[0].isdir()
        results: list[dict[str, Any]] = []
        for entry in entries[1:]:
            handle = archive.extractfile(entry)
            assert handle is not None
            results += json.load(handle)
    return results


def test_batch_lifecycle_and_archive(clock: Clock) -> None:
    sim = MailchimpSimulator(batch_steps=4, clock=clock)
    api = httpx.Client(transport=sim.transport(), base_url=BASE, auth=("u", KEY))
    operations = [
        {"method": "PUT", "path": member_path(f"p{i}@gmail.com"), "operation_id": f"op{i}",
         "body": json.dumps({"email_address": f"p{i}@gmail.com", "status_if_new": "subscribed"})}
        for i in range(250)
    ]
    operations.append({"method": "GET", "path": "/3.0/lists/sim-audience/members/nobody", "operation_id": "missing"})
    batch = api.post("/batches", json={"operations": operations}).json()
    assert (batch["status"], batch["total_operations"]) == ("pending", 251)
    stages = []
    for _ in range(4):
        stages.append(api.get(f"/batches/{batch['id']}").json()["status"])
        if stages[-1] != "finished":
            assert sim.members == {}  # nothing runs before it finishes
    assert stages == ["preprocessing", "started", "finalizing", "finished"]
    done = api.get(f"/batches/{batch['id']}").json()
    assert (done["finished_operations"], done["errored_operations"]) == (251, 1)
    assert done["response_body_url"].startswith("https://us21.api.mailchimp.com/_sim/")
    results = read_archive(api, done["response_body_url"])
    assert len(results) == 251 and {"status_code", "operation_id", "response"} == set(results[0])
    assert json.loads(results[0]["response"])["email_address"] == "p0@gmail.com"
    assert [r["status_code"] for r in results if r["operation_id"] == "missing"] == [404]
    assert len(sim.members) == 250
    assert sim.count_requests(path_contains="/batches/") == 0
    assert sim.count_requests(path_contains="/batches/", exclude_batch_polls=False) == 5
    assert api.get("/batches").json()["total_items"] == 1
    sim.expire_batch_results()
    assert api.get(done["response_body_url"]).status_code == 403


def test_batch_operation_body_must_be_a_json_string(api: httpx.Client) -> None:
    operation = {"method": "PUT", "path": member_path("ann@gmail.com"), "body": {"email_address": "ann@gmail.com"}}
    assert_problem(api.post("/batches", json={"operations": [operation]}), 400, "Invalid Resource")


def test_at_most_500_pending_batches(api: httpx.Client) -> None:
    ids = [api.post("/batches", json={"operations": []}).json()["id"] for _ in range(500)]
    assert_problem(api.post("/batches", json={"operations": []}), 400, "Invalid Resource")
    while api.get(f"/batches/{ids[0]}").json()["status"] != "finished":
        pass
    assert api.post("/batches", json={"operations": []}).status_code == 200


# -- limits, failures, transports ---------------------------------------------------------------------------


def parallel_statuses(url: str, count: int) -> list[httpx.Response]:
    barrier = threading.Barrier(count)
    responses: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(auth=("u", KEY), timeout=10) as client:
            barrier.wait()
            responses.append(client.get(url))

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_eleven_simultaneous_connections_over_loopback() -> None:
    sim = MailchimpSimulator(latency=0.4)
    with sim.serve() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.api_url == server.url + "/3.0"
        responses = parallel_statuses(server.api_url + "/ping", 11)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(429) >= 1 and statuses.count(200) <= 10 and len(statuses) == 11
    problem = next(r for r in responses if r.status_code == 429).json()
    assert problem["detail"] == "You have exceeded the limit of 10 simultaneous connections."
    assert sim.peak_in_flight == 11


def test_ten_simultaneous_connections_are_fine() -> None:
    sim = MailchimpSimulator(latency=0.3)
    with sim.serve() as server:
        responses = parallel_statuses(server.api_url + "/ping", 10)
    assert [r.status_code for r in responses] == [200] * 10


def test_connection_limit_in_process() -> None:
    sim = MailchimpSimulator(latency=0.3, max_connections=3)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def call() -> None:
        client = httpx.Client(transport=sim.transport(), auth=("u", KEY))
        barrier.wait()
        statuses.append(client.get(BASE + "/ping").status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200, 200, 429]


def test_whole_flow_over_loopback_http() -> None:
    sim = MailchimpSimulator()
    with sim.serve() as server, httpx.Client(base_url=server.api_url, auth=("u", KEY)) as api:
        assert put(api, "ann@gmail.com", status_if_new="subscribed").status_code == 200
        assert_problem(put(api, "test@gmail.com", status_if_new="subscribed"), 400, "Invalid Resource")
        operation = {"method": "GET", "path": member_path("ann@gmail.com"), "operation_id": "a"}
        batch = api.post("/batches", json={"operations": [operation]}).json()
        while batch["status"] != "finished":
            batch = api.get(f"/batches/{batch['id']}").json()
        assert batch["response_body_url"].startswith(server.url + "/_sim/")
        with httpx.Client() as plain:  # like S3: the link needs no key
            [result] = read_archive(plain, batch["response_body_url"])
    assert json.loads(result["response"])["status"] == "subscribed"
    assert sim.count_requests(method="PUT") == 2


def test_fail_next(api: httpx.Client, sim: MailchimpSimulator) -> None:
    sim.fail_next()
    assert_problem(api.get("/ping"), 500, "Internal Server Error")
    assert api.get("/ping").status_code == 200
    sim.fail_next(2, status=429, path_contains="/members")
    assert api.get("/ping").status_code == 200
    assert_problem(api.get(f"{LIST}/members"), 429, "Too Many Requests")
    assert api.get(f"{LIST}/members").status_code == 429
    assert api.get(f"{LIST}/members").status_code == 200
    sim.fail_next(status=429, bare=True)
    bare = api.get("/ping")
    assert bare.status_code == 429 and bare.content == b""


def test_request_log_counts(api: httpx.Client, sim: MailchimpSimulator) -> None:
    api.get("/ping")
    put(api, "ann@gmail.com", status_if_new="subscribed")
    put(api, "bob@gmail.com", status_if_new="subscribed")
    assert sim.count_requests() == 3
    assert sim.count_requests(method="put", path_contains="/members/") == 2
    assert [entry.status for entry in sim.request_log] == [200, 200, 200]
    sim.reset_log()
    assert sim.count_requests() == 0


@pytest.mark.slow
def test_command_line_serves_and_prints_the_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "supportersync.testing.mailchimp_sim", "--port", "0", "--latency", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/3.0")
        response = httpx.get(url + "/ping", auth=("u", KEY))
        assert response.json() == {"health_status": "Everything's Chimpy!"}
    finally:
        process.terminate()
        process.wait(timeout=5)
