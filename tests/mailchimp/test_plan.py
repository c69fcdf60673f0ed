"""The plan is a pure function: examples for each rule, and properties over generated data."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from supportersync.config import Secret
from supportersync.mailchimp.plan import BLOCKED, make_plan, merge_value, normalize_email, subscriber_hash, tag_key
from supportersync.mailchimp.settings import load_mailchimp_settings
from supportersync.mailchimp.source import SupporterRecord
from supportersync.mailchimp.state import MemberState
from supportersync.timeutil import UTC

SETTINGS = load_mailchimp_settings({"api_key": Secret("0123456789abcdef0123456789abcdef-us21"), "audience_id": "a"})
T0 = datetime(2025, 1, 1, tzinfo=UTC)
STATS = {"lifetime_amount": Decimal("250.00"), "gift_count": 4, "monthly_recurring_amount": Decimal("10.00"),
         "first_gift_date": T0, "last_gift_date": T0 + timedelta(days=30), "value_tier": "Regular",
         "engagement": "Active", "frequency": "Frequent"}


def supporter(id: int, email: str | None = None, **values: Any) -> SupporterRecord:
    values = {"email_opt_in": True, "stats": STATS, "first_name": "F", "last_name": "L", **values}
    return SupporterRecord(id=id, email=f"p{id}@x.org" if email is None else email, **values)


def applied(email: str, supporter_id: int, **values: Any) -> MemberState:
    """A member exactly as the plan for `supporter(supporter_id)` would leave it."""
    desired = make_plan([supporter(supporter_id, email)], {}, SETTINGS).desired[subscriber_hash(email)]
    state = MemberState(subscriber_hash(email), email, supporter_id, managed=True, remote_status="subscribed",
                        applied_hash=desired.data_hash, applied_tags=desired.tags)
    for key, value in values.items():
        setattr(state, key, value)
    return state


def test_emails_are_trimmed_and_lowercased_before_hashing() -> None:
    assert normalize_email("  Ann@Charity.ORG \n") == "ann@charity.org"
    assert subscriber_hash(" Ann@Charity.ORG") == subscriber_hash("ann@charity.org")
    assert subscriber_hash("urist.mcvankab@freddiesjokes.com") == "62eeb292278cc15f5817cb78f7790b08"


def test_desired_member_data() -> None:
    plan = make_plan([supporter(1, " P1@X.org ")], {}, SETTINGS)
    (upsert,) = plan.upserts
    d = upsert.desired
    assert upsert.new and d.email == "p1@x.org"
    assert d.merge_fields == {"FNAME": "F", "LNAME": "L", "GIFTTOTAL": "250.00", "GIFTCOUNT": 4,
                              "GIFTMONTH": "10.00", "GIFTFIRST": "2025-01-01", "GIFTLAST": "2025-01-31",
                              "VALUETIER": "Regular", "ENGAGEMENT": "Active", "FREQUENCY": "Frequent"}
    assert set(d.tags) == {"supportersync", "Classy: Regular", "Classy: Active", "Classy: Frequent"}


def test_merge_values() -> None:
    assert merge_value(None) == "" and merge_value(Decimal("3")) == "3.00" and merge_value(True) == "yes"
    assert merge_value(T0) == "2025-01-01" and merge_value(7) == 7 and merge_value(" x ") == "x"


def test_unchanged_members_plan_nothing() -> None:
    plan = make_plan([supporter(1)], {subscriber_hash("p1@x.org"): applied("p1@x.org", 1)}, SETTINGS)
    assert plan.writes == 0 and plan.unchanged == 1


def test_full_ignores_what_was_applied_but_not_what_mailchimp_says() -> None:
    states = {subscriber_hash("p1@x.org"): applied("p1@x.org", 1),
              subscriber_hash("p2@x.org"): applied("p2@x.org", 2, remote_status="unsubscribed")}
    plan = make_plan([supporter(1), supporter(2)], states, SETTINGS, full=True)
    assert [u.desired.supporter_id for u in plan.upserts] == [1]
    assert not plan.upserts[0].new


def test_segment_change_moves_only_managed_tags() -> None:
    state = applied("p1@x.org", 1)
    changed = supporter(1, stats={**STATS, "value_tier": "Major"})
    (diff,) = make_plan([changed], {state.subscriber_hash: state}, SETTINGS).tag_diffs
    assert diff.add == ("Classy: Major",) and diff.remove == ("Classy: Regular",)


def test_tags_compare_case_insensitively() -> None:
    state = applied("p1@x.org", 1)
    state.applied_tags = tuple(t.upper() for t in state.applied_tags or ())
    plan = make_plan([supporter(1)], {state.subscriber_hash: state}, SETTINGS)
    assert plan.tag_diffs == [] and plan.unchanged == 1


def test_consent_withdrawal_unsubscribes_only_managed_live_members() -> None:
    states = {subscriber_hash(f"p{i}@x.org"): applied(f"p{i}@x.org", i) for i in (1, 2, 3)}
    states[subscriber_hash("p2@x.org")].managed = False
    states[subscriber_hash("p3@x.org")].remote_status = "cleaned"
    people = [supporter(i, email_opt_in=False) for i in (1, 2, 3, 4)] + [supporter(5, email_opt_in=None)]
    plan = make_plan(people, states, SETTINGS)
    assert [c.supporter_id for c in plan.unsubscribes] == [1]
    leave = load_mailchimp_settings({**_raw(), "on_consent_withdrawn": "leave"})
    assert make_plan(people, states, leave).unsubscribes == []


def test_deleted_supporters_are_archived_only_when_configured() -> None:
    states = {subscriber_hash("p1@x.org"): applied("p1@x.org", 1)}
    people = [supporter(1, deleted=True)]
    assert make_plan(people, states, SETTINGS).archives == []
    archive = load_mailchimp_settings({**_raw(), "on_deleted": "archive"})
    assert [c.supporter_id for c in make_plan(people, states, archive).archives] == [1]


def test_rejections_wait_for_a_data_change() -> None:
    state = applied("p1@x.org", 1, applied_hash=None, remote_status=None, managed=False)
    desired = make_plan([supporter(1)], {}, SETTINGS).desired[state.subscriber_hash]
    state.rejected_hash, state.rejected_reason = desired.data_hash, "Invalid Resource: looks fake"
    assert make_plan([supporter(1)], {state.subscriber_hash: state}, SETTINGS).upserts == []
    assert len(make_plan([supporter(1, first_name="New")], {state.subscriber_hash: state}, SETTINGS).upserts) == 1


def test_duplicates_prefer_live_then_recent_then_lowest_id_whatever_the_order() -> None:
    people = [supporter(3, "a@x.org", updated_at=T0), supporter(1, "A@x.org ", updated_at=T0),
              supporter(2, "a@x.org", updated_at=T0 + timedelta(days=1), deleted=True),
              supporter(4, "a@x.org", updated_at=None)]
    for _ in range(5):
        random.shuffle(people)
        plan = make_plan(people, {}, SETTINGS)
        (duplicate,) = plan.duplicates
        assert duplicate.chosen == 1 and duplicate.supporter_ids == (1, 2, 3, 4)


# -- properties -------------------------------------------------------------------------------------

STATUSES = (None, "subscribed", "pending", "unsubscribed", "cleaned", "archived", "transactional")
emails = st.sampled_from(["a@x.org", " A@x.org", "b@x.org", "c@x.org", "bad", "", None])
supporters = st.lists(st.builds(
    lambda i, email, opt_in, deleted, has_stats, tier: SupporterRecord(
        i, email, "F", "L", opt_in, deleted, T0 + timedelta(hours=i % 3),
        {**STATS, "value_tier": tier} if has_stats else None),
    st.integers(1, 50), emails, st.sampled_from([True, False, None]), st.booleans(), st.booleans(),
    st.sampled_from(["Regular", "Major"])), max_size=12, unique_by=lambda s: s.id)
states = st.dictionaries(
    st.sampled_from(["a@x.org", "b@x.org", "c@x.org"]),
    st.tuples(st.sampled_from(STATUSES), st.booleans(), st.sampled_from([None, ("Classy: Major", "VIP-by-us")]),
              st.booleans()),
    max_size=3)


def _raw() -> dict[str, Any]:
    return {"api_key": Secret("0123456789abcdef0123456789abcdef-us21"), "audience_id": "a"}


@settings(max_examples=200, deadline=None)
@given(supporters, states, st.booleans(), st.sampled_from(["leave", "archive"]))
def test_the_plan_never_writes_to_people_who_left_and_accounts_for_everyone(people: list[SupporterRecord],
                                                                           known: dict[str, Any], full: bool,
                                                                           on_deleted: str) -> None:
    members = {subscriber_hash(email): MemberState(subscriber_hash(email), email, None, managed, status,
                                                   applied_tags=tags,
                                                   applied_hash="old" if same else None)
               for email, (status, managed, tags, same) in known.items()}
    config = load_mailchimp_settings({**_raw(), "on_deleted": on_deleted})
    plan = make_plan(people, members, config, full=full)

    blocked = {h for h, m in members.items() if m.remote_status in BLOCKED}
    touched = ({u.desired.subscriber_hash for u in plan.upserts} | {d.subscriber_hash for d in plan.tag_diffs}
               | {c.subscriber_hash for c in plan.unsubscribes})
    assert not touched & blocked  # (archiving one we manage is allowed: it cannot subscribe anyone)
    for change in plan.unsubscribes:
        m = members[change.subscriber_hash]
        assert m.managed and m.remote_status in ("subscribed", "pending")
    if on_deleted == "leave":
        assert plan.archives == []
    for diff in plan.tag_diffs:
        state = members.get(diff.subscriber_hash)
        assert set(diff.remove) <= set(state.applied_tags or ()) if state else not diff.remove
        assert not {tag_key(t) for t in diff.add} & {tag_key(t) for t in diff.remove}
    skipped = [s.supporter_id for s in plan.skipped]
    changed = [c.supporter_id for c in (*plan.unsubscribes, *plan.archives)]
    active = [d.supporter_id for d in plan.desired.values() if d.supporter_id not in skipped]
    assert sorted(skipped + changed + active) == sorted(s.id for s in people)  # each supporter exactly once
