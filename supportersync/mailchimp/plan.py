"""The push plan: a pure diff between what Mailchimp should hold and what we last applied.

Input: supporters (with their statistics), what we know of each audience member
(:class:`~supportersync.mailchimp.state.MemberState`), the settings, and the merge
tags the audience has. Output: a :class:`Plan` (upsert, tag, untag, unsubscribe,
archive, skip with reasons) that push.py applies and `--dry-run` prints. No I/O.

Who belongs in the audience: a supporter with a valid email, email consent
(`email_opt_in` true) and not deleted at the source. Emails are trimmed and
lowercased before hashing. Several supporters sharing one email: the one not deleted,
then the most recently updated, then the lowest id speaks for the address (the most
recent record carries the person's latest choice); the others are reported.

Status safety lives in what the plan can express: an upsert carries `status_if_new`
only (it never changes an existing member's status), the only status ever set is
"unsubscribed", and members Mailchimp reports unsubscribed, cleaned or archived are
not written at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from supportersync.mailchimp.settings import MailchimpSettings
from supportersync.mailchimp.source import SupporterRecord
from supportersync.mailchimp.state import MemberState

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
BLOCKED = {"unsubscribed": "unsubscribed in Mailchimp", "cleaned": "cleaned (bounced) in Mailchimp",
           "archived": "archived in Mailchimp"}
"""Remote statuses we never write to (and never try to subscribe again)."""
UNSUBSCRIBABLE = ("subscribed", "pending")


def normalize_email(raw: str | None) -> str | None:
    """Trimmed and lowercased; None when empty."""
    if raw is None:
        return None
    email = raw.strip().lower()
    return email or None


def is_valid_email(email: str) -> bool:
    return len(email) <= 254 and _EMAIL.match(email) is not None


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the trimmed, lowercased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def tag_key(name: str) -> str:
    """Tags compare case-insensitively (and Mailchimp trims them)."""
    return name.strip().casefold()


@dataclass(frozen=True)
class Desired:
    """What one member should look like in Mailchimp."""

    supporter_id: int
    email: str
    subscriber_hash: str
    merge_fields: Mapping[str, Any]
    tags: tuple[str, ...]
    data_hash: str
    """Digest of email and merge fields: what change detection compares."""


@dataclass(frozen=True)
class Upsert:
    desired: Desired
    new: bool
    """True when we do not know the member to exist (counted as a create)."""


@dataclass(frozen=True)
class TagDiff:
    subscriber_hash: str
    email: str
    add: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True)
class StatusChange:
    """An unsubscribe or an archive of a member this tool manages."""

    supporter_id: int
    email: str
    subscriber_hash: str


@dataclass(frozen=True)
class Skip:
    supporter_id: int
    email: str | None
    reason: str


@dataclass(frozen=True)
class Duplicate:
    email: str
    supporter_ids: tuple[int, ...]
    chosen: int


@dataclass(frozen=True)
class Conflict:
    """Opted in at Classy, but unsubscribed or cleaned in Mailchimp: for staff to look at."""

    supporter_id: int
    email: str
    status: str
    reason: str | None
    changed_at: datetime | None


@dataclass
class Plan:
    upserts: list[Upsert] = field(default_factory=list)
    tag_diffs: list[TagDiff] = field(default_factory=list)
    unsubscribes: list[StatusChange] = field(default_factory=list)
    archives: list[StatusChange] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    unchanged: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    desired: dict[str, Desired] = field(default_factory=dict)
    """Every eligible member's desired state, by subscriber hash."""

    @property
    def creates(self) -> list[Upsert]:
        return [u for u in self.upserts if u.new]

    @property
    def updates(self) -> list[Upsert]:
        return [u for u in self.upserts if not u.new]

    def skip_reasons(self) -> Counter[str]:
        return Counter(_reason_group(skip.reason) for skip in self.skipped)

    def tag_changes(self) -> dict[str, tuple[list[str], list[str]]]:
        """Tag name -> (emails to add, emails to remove), tags compared case-insensitively."""
        names: dict[str, str] = {}
        changes: dict[str, tuple[list[str], list[str]]] = {}
        for diff in self.tag_diffs:
            for index, tags in ((0, diff.add), (1, diff.remove)):
                for tag in tags:
                    key = tag_key(tag)
                    name = names.setdefault(key, tag.strip())
                    changes.setdefault(name, ([], []))[index].append(diff.email)
        return changes

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.creates),
            "updated": len(self.updates),
            "tagged": sum(1 for d in self.tag_diffs if d.add),
            "untagged": sum(1 for d in self.tag_diffs if d.remove),
            "unsubscribed": len(self.unsubscribes),
            "archived": len(self.archives),
            "skipped": len(self.skipped),
            "unchanged": self.unchanged,
        }

    @property
    def writes(self) -> int:
        return len(self.upserts) + len(self.tag_diffs) + len(self.unsubscribes) + len(self.archives)


def make_plan(
    supporters: Iterable[SupporterRecord],
    members: Mapping[str, MemberState],
    settings: MailchimpSettings,
    *,
    merge_tags: Mapping[str, str] | None = None,
    full: bool = False,
) -> Plan:
    """Diff desired against last applied. `merge_tags`: field -> tag the audience has (default: all
    configured); `full`: ignore what was last applied and earlier rejections."""
    merge_tags = dict(settings.merge_fields if merge_tags is None else merge_tags)
    plan = Plan()
    by_email: dict[str, list[SupporterRecord]] = {}
    for supporter in supporters:
        email = normalize_email(supporter.email)
        if email is None:
            plan.skipped.append(Skip(supporter.id, None, "no email address"))
        elif not is_valid_email(email):
            plan.skipped.append(Skip(supporter.id, email, "invalid email address"))
        else:
            by_email.setdefault(email, []).append(supporter)

    for email in sorted(by_email):
        group = by_email[email]
        chosen = min(group, key=_precedence) if len(group) > 1 else group[0]
        if len(group) > 1:
            plan.duplicates.append(Duplicate(email, tuple(sorted(s.id for s in group)), chosen.id))
            for other in sorted(group, key=lambda s: s.id):
                if other is not chosen:
                    plan.skipped.append(Skip(other.id, email, f"shares its email with supporter {chosen.id}"))
        hashed = subscriber_hash(email)
        _decide(plan, chosen, email, hashed, members.get(hashed), settings, merge_tags, full)
    return plan


def _precedence(supporter: SupporterRecord) -> tuple[bool, float, int]:
    updated = supporter.updated_at.timestamp() if supporter.updated_at else float("-inf")
    return (supporter.deleted, -updated, supporter.id)


def _decide(plan: Plan, supporter: SupporterRecord, email: str, hashed: str, state: MemberState | None,
            settings: MailchimpSettings, merge_tags: Mapping[str, str], full: bool) -> None:
    managed_live = state is not None and state.managed and state.remote_status in UNSUBSCRIBABLE
    if supporter.deleted:
        if state is not None and state.managed and state.remote_status not in (None, "archived"):
            if settings.on_deleted == "archive":
                plan.archives.append(StatusChange(supporter.id, email, hashed))
            else:
                plan.skipped.append(Skip(supporter.id, email, "deleted at the source (left alone: on_deleted = leave)"))
            return
        plan.skipped.append(Skip(supporter.id, email, "deleted at the source"))
        return
    if supporter.email_opt_in is not True:
        # Only an explicit "no" withdraws consent: a missing value (a bad import, a renamed
        # field) must never unsubscribe thousands of people.
        if supporter.email_opt_in is False and managed_live:
            if settings.on_consent_withdrawn == "unsubscribe":
                plan.unsubscribes.append(StatusChange(supporter.id, email, hashed))
            else:
                plan.skipped.append(Skip(supporter.id, email,
                                         "consent withdrawn (left alone: on_consent_withdrawn = leave)"))
            return
        plan.skipped.append(Skip(supporter.id, email, "no email consent"))
        return
    if supporter.stats is None:
        # Pushing before the statistics exist would blank totals and strip segment tags.
        plan.skipped.append(Skip(supporter.id, email, "giving statistics not computed yet"))
        return

    desired = desired_member(supporter, email, settings, merge_tags, hashed)
    plan.desired[hashed] = desired
    if state is not None and state.remote_status in BLOCKED:
        plan.skipped.append(Skip(supporter.id, email, BLOCKED[state.remote_status]))
        if state.remote_status != "archived":
            plan.conflicts.append(Conflict(supporter.id, email, state.remote_status, state.remote_reason,
                                           state.remote_changed_at))
        return
    if not full and state is not None and state.rejected_hash == desired.data_hash:
        plan.skipped.append(Skip(supporter.id, email, f"rejected earlier: {state.rejected_reason}"))
        return

    upsert = full or state is None or not state.managed or state.applied_hash != desired.data_hash
    if upsert:
        plan.upserts.append(Upsert(desired, new=state is None or state.remote_status is None))
    applied = state.applied_tags if state is not None and state.applied_tags is not None else ()
    applied_keys = {tag_key(tag) for tag in applied}
    wanted_keys = {tag_key(tag) for tag in desired.tags}
    add = tuple(tag for tag in desired.tags if tag_key(tag) not in applied_keys)
    remove = tuple(sorted({tag for tag in applied if tag_key(tag) not in wanted_keys}, key=tag_key))
    if add or remove:
        plan.tag_diffs.append(TagDiff(hashed, email, add, remove))
    if not upsert and not add and not remove:
        plan.unchanged += 1


def desired_member(supporter: SupporterRecord, email: str, settings: MailchimpSettings,
                   merge_tags: Mapping[str, str], hashed: str | None = None) -> Desired:
    stats = supporter.stats or {}
    values: dict[str, Any] = {"first_name": supporter.first_name, "last_name": supporter.last_name, **stats}
    merge_fields = {tag: merge_value(values.get(name)) for name, tag in merge_tags.items()}
    tags = [settings.ownership_tag.strip()]
    for kind in settings.tag_segments:
        label = stats.get(kind)
        if label:
            tags.append(f"{settings.tag_prefix}{label}".strip())
    unique = {tag_key(tag): tag for tag in tags}
    digest = hashlib.sha256(json.dumps({"email": email, "merge_fields": merge_fields}, sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()
    return Desired(supporter.id, email, hashed or subscriber_hash(email), merge_fields,
                   tuple(sorted(unique.values(), key=tag_key)), digest)


def merge_value(value: Any) -> Any:
    """A value as Mailchimp takes it: amounts as exact strings, dates as YYYY-MM-DD, "" for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{Decimal(str(value)):.2f}"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return value
    return str(value).strip()


def _reason_group(reason: str) -> str:
    if reason.startswith("shares its email"):
        return "shares its email with another supporter"
    if reason.startswith("rejected earlier"):
        return "rejected earlier (not retried until the supporter's data changes)"
    return reason


def describe(plan: Plan, *, audience: str, merge_fields_to_create: Sequence[str] = (),
             merge_fields_missing: Sequence[str] = ()) -> str:
    """The plan as a few lines for people (what `--dry-run` prints)."""
    counts = plan.counts()
    tags = plan.tag_changes()
    lines = [f"Plan for Mailchimp audience {audience}:"]
    rows = [
        ("create", counts["created"], "members"),
        ("update", counts["updated"], "members"),
        ("tag", counts["tagged"], f"members ({sum(len(a) for a, _ in tags.values())} tag additions)"),
        ("untag", counts["untagged"], f"members ({sum(len(r) for _, r in tags.values())} tag removals)"),
        ("unsubscribe", counts["unsubscribed"], "members (consent withdrawn at Classy)"),
        ("archive", counts["archived"], "members (deleted at Classy)"),
        ("unchanged", counts["unchanged"], "members"),
        ("skip", counts["skipped"], "supporters"),
    ]
    for name, number, unit in rows:
        lines.append(f"  {name:<12}{number:>8}  {unit}")
    for reason, number in sorted(plan.skip_reasons().items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"    {number:>8}  {reason}")
    for name, (add, remove) in sorted(tags.items(), key=lambda item: tag_key(item[0])):
        lines.append(f"  tag {name!r}: +{len(add)} -{len(remove)}")
    if merge_fields_to_create:
        lines.append(f"  merge fields to create: {', '.join(merge_fields_to_create)}")
    if merge_fields_missing:
        lines.append(f"  merge fields missing (left out; create_merge_fields = false): "
                     f"{', '.join(merge_fields_missing)}")
    if plan.duplicates:
        lines.append(f"  {len(plan.duplicates)} email address(es) shared by several supporters")
    if plan.conflicts:
        lines.append(f"  {len(plan.conflicts)} supporter(s) opted in at Classy but unsubscribed or cleaned "
                     "in Mailchimp")
    return "\n".join(lines)
