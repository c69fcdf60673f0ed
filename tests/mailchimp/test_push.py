"""The Mailchimp push against the simulated Mailchimp: the issue's acceptance tests and the
rules around them. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import logging
from datetime import datetime
import httpx
import pytest
import sqlalchemy as sa

from supportersync.db.schema import mailchimp_audiences, mailchimp_members
from supportersync.errors import ConfigError
from supportersync.hookspecs import SyncResult
from supportersync.mailchimp.plan import subscriber_hash
from supportersync.testing.mailchimp_sim import MailchimpSimulator
from supportersync.timeutil import UTC

from .conftest import ORG, World, managed_tags

LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


def never_resubscribed(sim: MailchimpSimulator) -> None:
    assert sim.resubscribed() == []
    assert not [e for e in sim.events if e.old is not None and e.old != "subscribed" and e.new == "subscribed"]


# -- the first push, and change detection ---------------------------------------------------


def test_first_push_creates_members_with_merge_fields_and_four_managed_tags(world: World) -> None:
    world.supporters(range(1, 4))
    world.supporter(4, opt_in=False)
    world.supporter(5, email=None)
    world.supporter(6, email="not an email")

    outcome = world.push()

    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["created"] == 3 and outcome.counts["tagged"] == 3
    assert outcome.counts["skipped"] == 3
    assert len(world.sim.members) == 3
    member = world.sim.member("person1@supporters.org")
    assert member is not None and member.status == "subscribed"
    assert member.merge_fields["FNAME"] == "First1"
    assert member.merge_fields["GIFTTOTAL"] == 150
    assert member.merge_fields["GIFTCOUNT"] == 3
    assert member.merge_fields["GIFTLAST"] == "2025-05-22"
    assert member.merge_fields["VALUETIER"] == "Regular"
    assert world.tags("person1@supporters.org") == managed_tags()
    assert {"GIFTTOTAL", "GIFTMONTH", "ENGAGEMENT", "FREQUENCY"} <= set(world.sim.merge_fields)
    state = world.state()["person1@supporters.org"]
    assert state["managed"] and state["remote_status"] == "subscribed" and state["supporter_id"] == 1


def test_new_members_get_status_if_new_pending(world: World) -> None:
    world.supporters(range(1, 3))
    world.push(status_if_new="pending")
    assert {m.status for m in world.sim.members.values()} == {"pending"}


@pytest.mark.parametrize("size", [3, 40], ids=["direct", "batch"])
def test_a_second_push_without_changes_sends_zero_write_requests(world: World, size: int) -> None:
    world.supporters(range(1, size + 1))
    first = world.push()
    assert first.counts["created"] == size
    world.sim.reset_log()

    second = world.push()

    assert world.writes() == 0, world.sim.request_log
    assert second.status == "succeeded"
    assert second.counts["unchanged"] == size
    assert second.counts["created"] == second.counts["updated"] == second.counts["tagged"] == 0


def test_a_data_change_sends_one_update_and_nothing_else(world: World) -> None:
    world.supporters(range(1, 6))
    world.push()
    world.update(2, first_name="Renamed")
    world.sim.reset_log()

    outcome = world.push()

    assert outcome.counts["updated"] == 1 and outcome.counts["unchanged"] == 4
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in world.sim.request_log if r.method != "GET"] == [
        ("PUT", subscriber_hash("person2@supporters.org"))]
    assert world.sim.member("person2@supporters.org").merge_fields["FNAME"] == "Renamed"  # type: ignore[union-attr]


# -- tags ------------------------------------------------------------------------------------


def test_a_segment_change_moves_the_tag_and_leaves_foreign_tags_alone(world: World) -> None:
    world.supporters(range(1, 4))
    world.push()
    email = "person2@supporters.org"
    member = world.sim.member(email)
    assert member is not None
    world.sim.audience.tag(member, ["VIP", "Gala 2024"])
    world.stats(2, value_tier="Major", lifetime_amount=2500)
    world.sim.reset_log()

    outcome = world.push()

    assert outcome.counts["tagged"] == 1 and outcome.counts["untagged"] == 1 and outcome.counts["updated"] == 1
    assert world.tags(email) == managed_tags("Major") | {"VIP", "Gala 2024"}
    assert world.tags("person1@supporters.org") == managed_tags()
    tag_writes = [r for r in world.sim.request_log if r.method == "POST" and "/segments/" in r.path]
    assert len(tag_writes) == 2  # one segment call adds "Classy: Major", one removes "Classy: Regular"
    world.sim.reset_log()
    world.push()
    assert world.writes() == 0


def test_tags_compare_case_insensitively(world: World) -> None:
    tag = world.sim.audience.tag_named("CLASSY: REGULAR", create=True)  # made by a person, in capitals
    world.supporters(range(1, 3))

    world.push()

    assert tag is not None
    assert world.tags("person1@supporters.org") == {"supportersync", "CLASSY: REGULAR", "Classy: Recent",
                                                    "Classy: Repeat"}
    assert sum(1 for t in world.sim.audience.segments() if t.name.lower() == "classy: regular") == 1
    world.sim.reset_log()
    world.push()
    assert world.writes() == 0


def test_a_full_push_repairs_managed_tags_from_mailchimp_and_keeps_foreign_ones(world: World) -> None:
    world.supporters(range(1, 3))
    world.push()
    email = "person1@supporters.org"
    member = world.sim.member(email)
    assert member is not None
    world.sim.audience.untag(member, ["Classy: Recent"])  # someone removed one of ours by hand
    world.sim.audience.tag(member, ["classy: lapsed", "VIP"])  # and added a stale one of ours, and their own

    world.sim.reset_log()
    world.push()
    assert world.writes() == 0  # an incremental push trusts what it applied

    outcome = world.push(full=True)

    assert outcome.status == "succeeded"
    assert world.tags(email) == managed_tags() | {"VIP"}
    never_resubscribed(world.sim)


# -- status safety -----------------------------------------------------------------------------


def _leave(sim: MailchimpSimulator, email: str, how: str) -> None:
    if how == "cleaned":
        sim.clean(email)
    else:
        sim.unsubscribe(email, by=how)


HOW_THEY_LEFT = {2: "self", 3: "admin", 4: "cleaned"}


@pytest.mark.parametrize("direct_limit", [10, 0], ids=["direct", "batch"])
def test_members_who_left_are_never_set_to_subscribed(world: World, direct_limit: int) -> None:
    """Unsubscribed by themselves, by an admin, or bounced: no push of any kind brings them back."""
    world.client_options["direct_limit"] = direct_limit
    world.supporters(range(1, 5))
    world.push()
    for supporter_id, how in HOW_THEY_LEFT.items():
        _leave(world.sim, f"person{supporter_id}@supporters.org", how)
        world.update(supporter_id, first_name="Changed")  # their data changes after they left
        world.stats(supporter_id, value_tier="Major")
    world.sim.reset_log()

    outcomes = [world.push(), world.push(full=True), world.push(status_if_new="pending"),
                world.push(full=True, status_if_new="pending")]

    never_resubscribed(world.sim)
    for supporter_id, how in HOW_THEY_LEFT.items():
        email = f"person{supporter_id}@supporters.org"
        expected = "cleaned" if how == "cleaned" else "unsubscribed"
        assert world.status(email) == expected
        assert not [r for r in world.sim.request_log if r.method != "GET" and subscriber_hash(email) in r.path]
        assert world.state()[email]["remote_status"] == expected
    assert all(o.counts["unsubscribed_in_mailchimp"] == 3 for o in outcomes)
    report = {d["supporter_id"]: d["status"] for d in outcomes[0].details if d["kind"] == "unsubscribed_in_mailchimp"}
    assert report == {2: "unsubscribed", 3: "unsubscribed", 4: "cleaned"}
    assert world.status("person1@supporters.org") == "subscribed"


@pytest.mark.parametrize("direct_limit", [10, 0], ids=["direct", "batch"])
def test_members_who_left_unknown_to_us_are_never_set_to_subscribed(world: World, direct_limit: int) -> None:
    """Our pull missed them (they left between our pull and our write): the write still cannot."""
    world.client_options["direct_limit"] = direct_limit
    world.supporters(range(1, 6))
    world.push()
    for supporter_id, how in {**HOW_THEY_LEFT, 5: "archived"}.items():
        email = f"person{supporter_id}@supporters.org"
        if how == "archived":  # unsubscribed by an admin, then archived
            world.sim.unsubscribe(email, by="admin")
            world.sim.audience.archive(subscriber_hash(email), "admin")
        else:
            _leave(world.sim, email, how)
        world.sim.member(email).last_changed = LONG_AGO  # type: ignore[union-attr]  # invisible to our pull
        world.update(supporter_id, first_name="Changed")
    world.push()  # we believe them subscribed: updates go out, with status_if_new only

    never_resubscribed(world.sim)
    for supporter_id, how in {**HOW_THEY_LEFT, 5: "archived"}.items():
        member = world.sim.member(f"person{supporter_id}@supporters.org")
        assert member is not None and member.status == ("cleaned" if how == "cleaned" else "unsubscribed")
    world.sim.reset_log()
    world.push()  # the answers told us: no more writes for them
    assert world.writes() == 0


@pytest.mark.parametrize("how", ["unsubscribed", "cleaned", "archived"])
def test_people_already_in_the_audience_who_left_are_never_subscribed(world: World, how: str) -> None:
    email = "person1@supporters.org"
    world.sim.add_member(email, status="cleaned" if how == "cleaned" else "unsubscribed", unsubscribed_by="admin")
    if how == "archived":
        world.sim.audience.archive(subscriber_hash(email), "admin")
    world.supporters(range(1, 3))

    outcome = world.push()

    assert outcome.counts["created"] == 1 and outcome.counts["skipped"] == 1
    never_resubscribed(world.sim)
    assert world.status(email) == how
    assert not [r for r in world.sim.request_log if r.method != "GET" and subscriber_hash(email) in r.path]


def test_consent_withdrawal_unsubscribes_and_re_consent_never_resubscribes(world: World) -> None:
    world.supporters(range(1, 4))
    world.push()
    world.update(2, email_opt_in=False)

    outcome = world.push()

    assert outcome.counts["unsubscribed"] == 1
    assert world.status("person2@supporters.org") == "unsubscribed"
    assert world.status("person1@supporters.org") == "subscribed"
    world.update(2, email_opt_in=True)  # they opt in again at Classy
    again = world.push()
    assert world.status("person2@supporters.org") == "unsubscribed"  # they must re-subscribe themselves
    assert again.counts["unsubscribed_in_mailchimp"] == 1
    never_resubscribed(world.sim)


def test_consent_withdrawal_can_be_left_alone_and_missing_consent_is_not_withdrawal(world: World) -> None:
    world.supporters(range(1, 4))
    world.push()
    world.update(2, email_opt_in=False)
    world.update(3, email_opt_in=None)  # unknown is not "no": a bad import must not unsubscribe anyone

    outcome = world.push(on_consent_withdrawn="leave")
    assert outcome.counts["unsubscribed"] == 0
    assert world.push().counts["unsubscribed"] == 1  # the default
    assert world.status("person2@supporters.org") == "unsubscribed"
    assert world.status("person3@supporters.org") == "subscribed"


def test_members_we_do_not_manage_are_never_unsubscribed(world: World) -> None:
    world.sim.add_member("person1@supporters.org", tags=["Newsletter"])  # signed up on the website
    world.supporter(1, opt_in=False)

    world.push()

    assert world.status("person1@supporters.org") == "subscribed"
    assert world.tags("person1@supporters.org") == {"Newsletter"}


def test_deleted_supporters_are_left_alone_by_default_or_archived_never_forgotten(world: World) -> None:
    world.supporters(range(1, 4))
    world.push()
    world.update(2, deleted_at=datetime(2025, 7, 1, tzinfo=UTC))
    world.update(3, deleted_at=datetime(2025, 7, 1, tzinfo=UTC))

    left = world.push()
    assert left.counts["archived"] == 0
    assert world.status("person2@supporters.org") == "subscribed"

    archived = world.push(on_deleted="archive")
    assert archived.counts["archived"] == 2
    assert world.status("person2@supporters.org") == "archived"
    assert world.sim.member("person2@supporters.org") is not None  # kept, restorable
    assert not [e for e in world.sim.events if e.new == "forgotten"]
    assert not [r for r in world.sim.request_log if "delete-permanent" in r.path]
    world.sim.reset_log()
    world.push(on_deleted="archive")
    assert world.writes() == 0


# -- rejections and transient failures -----------------------------------------------------------


def test_rejections_are_recorded_reported_and_not_retried_until_the_data_changes(world: World) -> None:
    world.supporters(range(1, 4))
    world.supporter(10, email="test@example.com")  # looks fake
    world.supporter(11, email="gone@supporters.org")  # permanently deleted from Mailchimp earlier
    world.supporter(12, last_name="Smith")  # not one of the audience's choices for LNAME: an invalid value
    world.sim.merge_fields["LNAME"].update(type="dropdown", options={"choices": [f"Last{i}" for i in range(20)]})
    world.sim.forget("gone@supporters.org")

    outcome = world.push()

    assert outcome.status == "partial"
    assert outcome.counts["created"] == 3 and outcome.counts["rejected"] == 3
    rejected = {d["supporter_id"]: d["reason"] for d in outcome.details if d["kind"] == "rejected"}
    assert set(rejected) == {10, 11, 12}
    assert "looks fake" in rejected[10]
    assert rejected[11].startswith("Forgotten Email Not Subscribed")
    assert "LNAME" in rejected[12]
    state = world.state()
    assert state["test@example.com"]["rejected_reason"] == rejected[10]
    assert state["test@example.com"]["supporter_id"] == 10
    assert len(world.sim.rejections) == 3

    world.sim.reset_log()
    again = world.push()
    assert again.status == "succeeded"  # nothing new went wrong
    assert len(world.sim.rejections) == 3  # nobody was retried
    assert world.writes() == 0
    assert again.counts["skipped"] == 3

    world.update(12, last_name="Last12")
    fixed = world.push()
    assert fixed.counts["created"] == 1 and fixed.counts["rejected"] == 0
    assert world.state()["person12@supporters.org"]["rejected_reason"] is None
    assert world.tags("person12@supporters.org") == managed_tags()


def test_invalid_merge_field_rejections_do_not_fail_the_run(world: World) -> None:
    world.sim.audience.add_merge_field({"tag": "VALUETIER", "name": "Tier number", "type": "number"})
    world.supporters(range(1, 3))
    world.supporter(3, stats={"value_tier": "7"})

    outcome = world.push()

    assert outcome.status == "partial"
    assert outcome.counts["rejected"] == 2 and outcome.counts["created"] == 1
    assert all("VALUETIER" in d["reason"] for d in outcome.details if d["kind"] == "rejected")


def test_transient_failures_are_retried_on_the_next_run(world: World) -> None:
    world.supporters(range(1, 5))
    world.sim.fail_next(4, status=503, path_contains="/segments/")  # 4 tags; POSTs are not retried on 5xx

    first = world.push()

    assert first.status == "partial"
    assert first.counts["created"] == 4 and first.counts["failed"] == 4
    assert all(d["kind"] != "rejected" for d in first.details)
    assert world.tags("person1@supporters.org") == set()

    second = world.push()

    assert second.status == "succeeded"
    assert second.counts["tagged"] == 4 and second.counts["created"] == 0
    assert world.tags("person1@supporters.org") == managed_tags()


def test_429_and_server_errors_are_retried_within_the_run(world: World) -> None:
    world.supporters(range(1, 4))
    world.sim.fail_next(2, status=429, path_contains="/segments/")
    world.sim.fail_next(2, status=500, path_contains="/members/")
    world.sim.fail_next(1, status=403, bare=True, path_contains="merge-fields")

    outcome = world.push()

    assert outcome.status == "succeeded", outcome.details
    assert world.tags("person3@supporters.org") == managed_tags()


def test_lost_batch_results_are_redone_next_run_without_duplicates(world: World) -> None:
    world.client_options["direct_limit"] = 0
    world.supporters(range(1, 6))
    world.sim.fail_next(1, status=403, path_contains="batch-results")  # the archive link expired

    first = world.push()

    assert first.status == "partial" and first.counts["failed"] == 5
    assert len(world.sim.members) == 5  # Mailchimp did the work; we could not read the results
    second = world.push()
    assert second.status == "succeeded" and second.counts["created"] == 5
    assert sum(1 for e in world.sim.events if e.old is None) == 5
    assert world.tags("person5@supporters.org") == managed_tags()


# -- the key ----------------------------------------------------------------------------------------


def test_a_disabled_key_fails_the_push_loudly_naming_the_key(world: World) -> None:
    world.supporters(range(1, 3))
    world.sim.disable_key()

    outcome = world.push()

    assert outcome.status == "failed"
    assert "disabled" in (outcome.message or "")
    assert "SUPPORTERSYNC_MAILCHIMP_API_KEY" in (outcome.message or "")
    assert world.sim.api_key not in repr(outcome)
    assert world.state() == {}


def test_hook_after_a_sync_pushes_everything_missed_from_the_database(world: World) -> None:
    world.supporters(range(1, 4))  # synced while the plugin was down: no hook ran
    result = SyncResult(job_id=1, organization_id=ORG, org_name="default", entity="supporters",
                        mode="incremental", status="succeeded", counts={})

    outcome = world.plugin().on_sync_completed(result=result, context=world.context())

    assert outcome.counts["created"] == 3
    assert len(world.sim.members) == 3


# -- interruption -----------------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies here (BaseException: nothing in our code may catch it)."""


class CrashingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, when: str, after: int) -> None:
        self.inner = inner
        self.when = when
        self.after = after

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.when in str(request.url) and request.method in ("POST", "GET"):
            self.after -= 1
            if self.after < 0:
                raise Crash()
        return self.inner.handle_request(request)


@pytest.mark.parametrize("when, after", [
    ("batch-results", 1),  # one batch recorded, the second ran at Mailchimp but its results were never read
    ("/batches/", 0),  # batches submitted, never polled
    ("/segments/1", 3),  # members written, some tags written
], ids=["between-batches", "before-polling", "during-tags"])
def test_an_interrupted_push_completes_on_the_next_run_without_duplicates(world: World, when: str,
                                                                         after: int) -> None:
    world.client_options.update(direct_limit=0, ops_per_batch=10)
    world.supporters(range(1, 26))
    plugin = world.plugin()
    plugin.transport = CrashingTransport(world.sim.transport(), when, after)
    with pytest.raises(Crash):
        plugin.push(world.context(), full=False, dry_run=False)

    outcome = world.push()

    assert outcome.status == "succeeded", outcome.details
    assert len(world.sim.members) == 25
    created = [e.subscriber_hash for e in world.sim.events if e.old is None]
    assert len(created) == len(set(created)) == 25
    assert all(set(m.tags) == managed_tags() for m in world.sim.members.values())
    never_resubscribed(world.sim)
    world.sim.reset_log()
    world.push()
    assert world.writes() == 0


# -- audience membership rules ------------------------------------------------------------------------


def test_two_supporters_sharing_an_email_are_resolved_deterministically_and_reported(world: World) -> None:
    world.supporter(1, email="  Ann@Charity.ORG ", first_name="Old")
    world.supporter(2, email="ann@charity.org", first_name="Ann")  # updated later: speaks for the address

    outcome = world.push()

    assert outcome.counts["created"] == 1 and outcome.counts["duplicates"] == 1
    duplicate = next(d for d in outcome.details if d["kind"] == "duplicate_email")
    assert duplicate == {"kind": "duplicate_email", "email": "ann@charity.org", "supporter_ids": [1, 2],
                         "chosen": 2}
    member = world.sim.member("ann@charity.org")
    assert member is not None and member.merge_fields["FNAME"] == "Ann"
    assert world.state()["ann@charity.org"]["supporter_id"] == 2
    world.sim.reset_log()
    world.push()
    assert world.writes() == 0


def test_supporters_without_statistics_wait_for_them(world: World) -> None:
    world.supporter(1, stats=None)
    outcome = world.push()
    assert outcome.counts["created"] == 0
    assert len(world.sim.members) == 0


def test_dry_run_prints_the_plan_and_sends_and_changes_nothing(world: World) -> None:
    world.supporters(range(1, 4))
    world.supporter(4, opt_in=False)

    outcome = world.push(dry_run=True)

    assert {r.method for r in world.sim.request_log} == {"GET"}
    assert world.sim.members == {}
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mailchimp_members)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(mailchimp_audiences)).scalar_one() == 0
    assert outcome.counts["created"] == 3 and outcome.counts["tagged"] == 3 and outcome.counts["skipped"] == 1
    message = outcome.message or ""
    assert "nothing was sent" in message
    assert "create" in message and "no email consent" in message and "GIFTTOTAL" in message


def test_missing_merge_fields_are_reported_when_not_to_be_created(world: World) -> None:
    world.supporters(range(1, 3))

    outcome = world.push(create_merge_fields=False)

    assert set(world.sim.merge_fields) == {"FNAME", "LNAME"}
    assert outcome.counts["created"] == 2
    assert "GIFTTOTAL" in (outcome.message or "")
    assert {d["tag"] for d in outcome.details if d["kind"] == "merge_field"} >= {"GIFTTOTAL", "FREQUENCY"}
    assert world.sim.member("person1@supporters.org").merge_fields["FNAME"] == "First1"  # type: ignore[union-attr]


def test_pull_records_unsubscribes_and_bounces_from_mailchimp(world: World) -> None:
    world.supporters(range(1, 5))
    world.push()
    world.sim.unsubscribe("person1@supporters.org", by="self")
    world.sim.clean("person2@supporters.org")
    world.sim.add_member("stranger@elsewhere.org", status="unsubscribed")

    outcome = world.push()

    state = world.state()
    assert state["person1@supporters.org"]["remote_status"] == "unsubscribed"
    assert "contact" in state["person1@supporters.org"]["remote_reason"]
    assert state["person2@supporters.org"]["remote_status"] == "cleaned"
    assert state["stranger@elsewhere.org"]["managed"] is False
    report = {d["supporter_id"]: d["status"] for d in outcome.details if d["kind"] == "unsubscribed_in_mailchimp"}
    assert report == {1: "unsubscribed", 2: "cleaned"}


def test_connections_stay_within_mailchimps_limit(world: World) -> None:
    world.client_options["ops_per_batch"] = 12  # 13 batches submitted and polled in parallel
    world.supporters(range(1, 151))
    world.sim.latency = 0.01  # long enough for parallel requests to overlap
    outcome = world.push()
    assert outcome.status == "succeeded"
    assert 5 <= world.sim.peak_in_flight <= 10
    assert not [r for r in world.sim.request_log if r.status == 429]


def test_a_second_push_for_the_organization_is_skipped_while_one_runs(world: World) -> None:
    from supportersync.locking import hold_locks

    world.supporters(range(1, 3))
    with hold_locks(world.engine, ORG, ["mailchimp"]):
        outcome = world.push()
    assert outcome.status == "skipped" and "Another Mailchimp push" in (outcome.message or "")
    assert world.sim.members == {}
    assert world.push().counts["created"] == 2


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_the_key_never_appears_in_logs_outcomes_errors_or_state(world: World) -> None:
    key = world.sim.api_key
    secret_part = key.rsplit("-", 1)[0]
    token = base64.b64encode(f"supportersync:{key}".encode()).decode()
    collect = _Collect()
    loggers = [logging.getLogger(name) for name in ("", "supportersync", "httpx", "httpcore")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(collect)
        lg.setLevel(logging.DEBUG)
    try:
        world.supporters(range(1, 4))
        world.supporter(4, email="test@example.com")
        plugin = world.plugin()
        texts = [repr(plugin.plugin_status(world.context())), repr(plugin.check(world.context()))]
        texts += [repr(world.push(dry_run=True)), repr(world.push()), repr(world.push(full=True))]
        world.sim.fail_next(3, status=503, path_contains="/members/")
        texts.append(repr(world.push(full=True)))
        world.sim.disable_key()
        texts += [repr(world.push()), repr(plugin.check(world.context()))]
        with pytest.raises(ConfigError) as bad:
            world.push(api_url="https://us6.api.mailchimp.com/3.0")
        texts.append(str(bad.value))
        texts.append(repr(plugin.plugin_status(world.context(api_key=key[:-5]))))
    finally:
        for lg, level in saved:
            lg.removeHandler(collect)
            lg.setLevel(level)
    with world.engine.connect() as conn:
        for table in (mailchimp_members, mailchimp_audiences):
            texts += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    texts += collect.lines
    assert len(collect.lines) > 20
    for text in texts:
        assert secret_part not in text and token not in text, text
