"""One push: learn from Mailchimp, plan, then apply the plan in bulk and record every result.

The steps, each safe to interrupt (the next run starts again from the recorded state):

1. merge fields: find the configured ones the audience lacks; create them (when
   `create_merge_fields`) or leave them out and report them;
2. pull: member changes since the last pull (unsubscribes, bounces, archives; with
   `full`, the whole audience and its tags) into mailchimp_members;
3. plan (plan.py), from the database: supporters + supporter_stats + mailchimp_members;
4. member writes (upserts with `status_if_new`, unsubscribes, archives) through
   `POST /batches`, or plain requests when there are only a few; results are read
   operation by operation and recorded per finished batch;
5. tags: one `POST /segments/{id}` per tag per 500 members, both ways.

A member Mailchimp refuses (compliance state, forgotten, fake address, bad merge
field) is recorded with the reason and the digest of the data refused, and not tried
again until that data changes. A transient failure is not recorded: the next run
simply finds the same difference again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from supportersync.hookspecs import PluginOutcome
from supportersync.mailchimp.client import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpError,
    MailchimpNotFound,
    MailchimpRequestError,
    OpResult,
    Operation,
    SEGMENT_CHUNK,
)
from supportersync.mailchimp.plan import (
    BLOCKED,
    Desired,
    Plan,
    StatusChange,
    Upsert,
    describe,
    make_plan,
    normalize_email,
    subscriber_hash,
    tag_key,
)
from supportersync.mailchimp.settings import MailchimpSettings
from supportersync.mailchimp.source import load_supporters
from supportersync.mailchimp.state import MemberState, Store
from supportersync.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)

PULL_OVERLAP = timedelta(minutes=10)
"""Each pull re-reads this much before the last one: clock skew and changes in flight."""
PULL_STATUSES = ("unsubscribed", "cleaned", "archived")
MEMBER_FIELDS = ("members.email_address,members.status,members.last_changed,members.unsubscribe_reason")
DETAILS_LIMIT = 200

COUNT_KEYS = ("created", "updated", "tagged", "untagged", "unsubscribed", "archived", "skipped", "rejected",
              "unchanged", "failed")


@dataclass
class PushReport:
    """What a push did (or, for a dry run, would do)."""

    audience_id: str
    dry_run: bool = False
    full: bool = False
    plan: Plan | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    merge_fields_created: list[str] = field(default_factory=list)
    merge_fields_to_create: list[str] = field(default_factory=list)
    merge_fields_missing: dict[str, str] = field(default_factory=dict)
    """Merge tag -> why it is left out (missing, could not be created)."""
    pulled: int = 0

    def outcome(self, *, error: MailchimpError | None = None) -> PluginOutcome:
        details: list[dict[str, Any]] = [*self.rejected, *self.failed]
        details += [{"kind": "merge_field", "tag": tag, "problem": problem}
                    for tag, problem in self.merge_fields_missing.items()]
        if self.plan is not None:
            details += [{"kind": "duplicate_email", "email": d.email, "supporter_ids": list(d.supporter_ids),
                         "chosen": d.chosen} for d in self.plan.duplicates]
            details += [{"kind": "unsubscribed_in_mailchimp", "supporter_id": c.supporter_id, "email": c.email,
                         "status": c.status, "reason": c.reason,
                         "changed_at": c.changed_at.isoformat() if c.changed_at else None}
                        for c in self.plan.conflicts]
        counts = dict(self.counts)
        if self.plan is not None:
            counts["duplicates"] = len(self.plan.duplicates)
            counts["unsubscribed_in_mailchimp"] = len(self.plan.conflicts)
        if error is not None:
            return PluginOutcome("failed", counts, str(error), tuple(details[:DETAILS_LIMIT]))
        status = "partial" if self.counts["rejected"] or self.counts["failed"] else "succeeded"
        return PluginOutcome(status, counts, self.message(), tuple(details[:DETAILS_LIMIT]))

    def message(self) -> str:
        if self.dry_run and self.plan is not None:
            return "Dry run: nothing was sent.\n" + describe(
                self.plan, audience=self.audience_id, merge_fields_to_create=self.merge_fields_to_create,
                merge_fields_missing=list(self.merge_fields_missing))
        c = self.counts
        parts = [f"{c[k]} {k}" for k in COUNT_KEYS if c[k]]
        text = f"Mailchimp audience {self.audience_id}: " + (", ".join(parts) if parts else "nothing to do") + "."
        if c["rejected"]:
            text += f" {c['rejected']} member(s) refused by Mailchimp (recorded; not retried until their data changes)."
        if c["failed"]:
            text += f" {c['failed']} member(s) not written this time (retried on the next run)."
        if self.merge_fields_created:
            text += f" Created merge fields {', '.join(self.merge_fields_created)}."
        if self.merge_fields_missing:
            text += (f" Merge fields {', '.join(self.merge_fields_missing)} are missing in the audience and were "
                     "left out.")
        if self.plan is not None and self.plan.conflicts:
            text += (f" {len(self.plan.conflicts)} supporter(s) are opted in at Classy but unsubscribed or cleaned "
                     "in Mailchimp (listed in the details; never re-subscribed by this tool).")
        return text


class Pusher:
    """Runs one push for one organization and audience."""

    def __init__(self, engine: Engine, organization_id: int, settings: MailchimpSettings,
                 client: MailchimpClient, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client
        self.clock = clock
        self.store = Store(engine, organization_id, settings.audience_id)
        self.organization_id = organization_id
        self.list_id = settings.audience_id

    def run(self, *, full: bool = False, dry_run: bool = False, report: PushReport | None = None) -> PushReport:
        report = report or PushReport(self.settings.audience_id, dry_run=dry_run, full=full)
        started = self.clock()
        merge_tags = self.merge_fields(report)
        members = self.store.load_members()
        report.pulled = self.pull(members, full=full, dry_run=dry_run)
        supporters = load_supporters(self.engine, self.organization_id)
        plan = make_plan(supporters, members, self.settings, merge_tags=merge_tags, full=full)
        report.plan = plan
        report.counts["skipped"] = len(plan.skipped)
        report.counts["unchanged"] = plan.unchanged
        if dry_run:
            report.counts.update({k: v for k, v in plan.counts().items() if k in report.counts})
            return report
        failed_members = self.write_members(plan, members, report)
        self.write_tags(plan, members, failed_members, report)
        self.store.save_audience(last_push_at=started, **({"last_full_push_at": started} if full else {}))
        return report

    # -- 1. merge fields ------------------------------------------------------------------

    def merge_fields(self, report: PushReport) -> dict[str, str]:
        """Field -> merge tag for the fields the audience has (after creating missing ones)."""
        try:
            existing = {str(f.get("tag", "")).upper() for f in self.client.merge_fields(self.list_id)}
        except MailchimpNotFound:
            raise MailchimpNotFound(
                f"The Mailchimp audience {self.list_id!r} does not exist in this account.",
                hint="Check SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID (`supportersync plugins test mailchimp`).") from None
        types = self.settings.merge_tag_types()
        available: dict[str, str] = {}
        to_create: list[tuple[str, str]] = []
        for name, tag in self.settings.merge_fields.items():
            if tag in existing:
                available[name] = tag
            elif not self.settings.create_merge_fields:
                report.merge_fields_missing[tag] = "missing in the audience (create_merge_fields = false)"
            elif report.dry_run:
                report.merge_fields_to_create.append(tag)
                available[name] = tag
            else:
                to_create.append((name, tag))

        def create(item: tuple[str, str]) -> str | None:
            tag = item[1]
            kind, title = types[tag]
            try:
                self.client.create_merge_field(self.list_id, tag, title, kind)
            except MailchimpRequestError as exc:
                return f"could not be created: {exc.title}: {exc.detail}"
            return None

        for (name, tag), problem in zip(to_create, self.client.map(create, to_create), strict=True):
            if problem is None:
                report.merge_fields_created.append(tag)
                available[name] = tag
            else:
                report.merge_fields_missing[tag] = problem
        return available

    # -- 2. pull ----------------------------------------------------------------------------

    def pull(self, members: dict[str, MemberState], *, full: bool, dry_run: bool) -> int:
        """Learn unsubscribes, bounces and archives (everything, with tags, when `full`)."""
        audience = self.store.load_audience()
        started = self.clock()
        seen: dict[str, MemberState] = {}
        if full:
            fields = MEMBER_FIELDS + ",members.tags"
            remote = self.client.members(self.list_id, fields=fields)
            remote += self.client.members(self.list_id, status="archived", fields=fields)
        else:
            since = audience.pulled_until - PULL_OVERLAP if audience.pulled_until else None
            remote = [member for status in PULL_STATUSES
                      for member in self.client.members(self.list_id, status=status, since=since, fields=MEMBER_FIELDS)]
        for item in remote:
            state = self._learn(members, item, with_tags=full)
            if state is not None:
                seen[state.subscriber_hash] = state
        if full:
            for hashed, state in members.items():
                if hashed not in seen and state.remote_status is not None:
                    state.remote_status = None  # gone from the audience (permanently deleted)
                    state.applied_tags = None
                    seen[hashed] = state
        if not dry_run:
            self.store.save_members(seen.values())
            self.store.save_audience(pulled_until=started)
        return len(remote)

    def _learn(self, members: dict[str, MemberState], item: dict[str, Any], *, with_tags: bool) -> MemberState | None:
        email = normalize_email(item.get("email_address"))
        if email is None:
            return None
        hashed = subscriber_hash(email)
        state = members.get(hashed)
        if state is None:
            state = members[hashed] = MemberState(hashed, email)
        state.remote_status = item.get("status") or state.remote_status
        reason = item.get("unsubscribe_reason")
        state.remote_reason = str(reason)[:255] if reason and state.remote_status == "unsubscribed" else None
        try:
            state.remote_changed_at = parse_datetime(item.get("last_changed")) or state.remote_changed_at
        except ValueError:
            pass
        if with_tags:
            names = [t.get("name", "") for t in item.get("tags") or [] if isinstance(t, dict)]
            state.applied_tags = tuple(sorted((n for n in names if self.settings.is_managed_tag(n)), key=tag_key))
        return state

    # -- 4. member writes -----------------------------------------------------------------

    def write_members(self, plan: Plan, members: dict[str, MemberState], report: PushReport) -> set[str]:
        """Upserts, unsubscribes and archives; returns the members that must not be tagged now."""
        operations: list[Operation] = []
        pending: dict[str, tuple[str, Any]] = {}
        base = f"lists/{self.list_id}/members"
        for upsert in plan.upserts:
            d = upsert.desired
            op = Operation("PUT", f"{base}/{d.subscriber_hash}", f"upsert:{d.subscriber_hash}",
                           {"email_address": d.email, "status_if_new": self.settings.status_if_new,
                            "merge_fields": dict(d.merge_fields)})
            operations.append(op)
            pending[op.operation_id] = ("upsert", upsert)
        for kind, changes, method, body in (("unsubscribe", plan.unsubscribes, "PATCH", {"status": "unsubscribed"}),
                                            ("archive", plan.archives, "DELETE", None)):
            for change in changes:
                op = Operation(method, f"{base}/{change.subscriber_hash}", f"{kind}:{change.subscriber_hash}", body)
                operations.append(op)
                pending[op.operation_id] = (kind, change)

        no_tags: set[str] = set()
        for results in self.client.execute(operations):
            touched: list[MemberState] = []
            for result in results:
                kind, item = pending.pop(result.operation_id, (None, None))
                if kind == "upsert":
                    state = self._upserted(item, result, members, report, no_tags)
                elif kind in ("unsubscribe", "archive"):
                    state = self._status_changed(kind, item, result, members, report)
                else:
                    continue
                if state is not None:
                    touched.append(state)
            self.store.save_members(touched)
        for kind, item in pending.values():  # never answered at all
            hashed = item.desired.subscriber_hash if kind == "upsert" else item.subscriber_hash
            no_tags.add(hashed)
            self._failed(report, item.desired.supporter_id if kind == "upsert" else item.supporter_id,
                         item.desired.email if kind == "upsert" else item.email, "no result from Mailchimp")
        return no_tags

    def _upserted(self, upsert: Upsert, result: OpResult, members: dict[str, MemberState], report: PushReport,
                  no_tags: set[str]) -> MemberState | None:
        d: Desired = upsert.desired
        state = members.get(d.subscriber_hash)
        if state is None:
            state = members[d.subscriber_hash] = MemberState(d.subscriber_hash, d.email)
        now = self.clock()
        if result.ok:
            body = result.body if isinstance(result.body, dict) else {}
            state.email_address = d.email
            state.supporter_id = d.supporter_id
            state.managed = True
            state.remote_status = body.get("status") or state.remote_status or self.settings.status_if_new
            state.applied_hash = d.data_hash
            state.applied_at = now
            state.rejected_reason = state.rejected_hash = state.rejected_at = None
            report.counts["created" if upsert.new else "updated"] += 1
            if state.remote_status in BLOCKED:
                no_tags.add(d.subscriber_hash)  # it existed, unknown to us, and left: leave it be
            return state
        no_tags.add(d.subscriber_hash)
        if result.transient:
            self._failed(report, d.supporter_id, d.email, result.problem.describe())
            return None
        reason = result.problem.describe()
        state.supporter_id = d.supporter_id
        state.rejected_reason = reason
        state.rejected_hash = d.data_hash
        state.rejected_at = now
        report.counts["rejected"] += 1
        report.rejected.append({"kind": "rejected", "supporter_id": d.supporter_id, "email": d.email,
                                "reason": reason})
        return state

    def _status_changed(self, kind: str, change: StatusChange, result: OpResult, members: dict[str, MemberState],
                        report: PushReport) -> MemberState | None:
        state = members.get(change.subscriber_hash)
        if state is None:  # pragma: no cover - the plan only names members we know
            return None
        if result.ok:
            state.remote_status = "unsubscribed" if kind == "unsubscribe" else "archived"
            state.supporter_id = change.supporter_id
            report.counts["unsubscribed" if kind == "unsubscribe" else "archived"] += 1
            return state
        if result.status == 404:  # gone from the audience: nothing left to do
            state.remote_status = None
            return state
        if result.transient:
            self._failed(report, change.supporter_id, change.email, result.problem.describe())
        else:
            report.counts["rejected"] += 1
            report.rejected.append({"kind": "rejected", "supporter_id": change.supporter_id, "email": change.email,
                                    "reason": f"{kind}: {result.problem.describe()}"})
        return None

    def _failed(self, report: PushReport, supporter_id: int | None, email: str, reason: str) -> None:
        report.counts["failed"] += 1
        if len(report.failed) < DETAILS_LIMIT:
            report.failed.append({"kind": "failed", "supporter_id": supporter_id, "email": email,
                                  "reason": f"{reason} (retried on the next run)"})

    # -- 5. tags ------------------------------------------------------------------------------

    def write_tags(self, plan: Plan, members: dict[str, MemberState], skip: set[str], report: PushReport) -> None:
        diffs = [d for d in plan.tag_diffs if d.subscriber_hash not in skip]
        if not diffs:
            return
        by_email = {d.email: d for d in diffs}
        changes = Plan(tag_diffs=diffs).tag_changes()
        segments = self._segments(name for name, (add, _remove) in changes.items() if add)

        jobs: list[tuple[str, int | str | None, list[str], list[str]]] = []
        for name, (add, remove) in changes.items():
            segment_id = segments.get(tag_key(name))
            if segment_id is None and add:
                continue  # could not be created: reported in _segments
            add_chunks = _chunks(add, SEGMENT_CHUNK)
            remove_chunks = _chunks(remove, SEGMENT_CHUNK)
            for index in range(max(len(add_chunks), len(remove_chunks))):
                jobs.append((name, segment_id,
                             add_chunks[index] if index < len(add_chunks) else [],
                             remove_chunks[index] if index < len(remove_chunks) else []))

        added: dict[str, set[str]] = {}
        removed: dict[str, set[str]] = {}
        failures: dict[str, str] = {}
        for name, ok_add, ok_remove, failed in self.client.map(self._change_segment, jobs):
            for email in ok_add:
                added.setdefault(email, set()).add(name)
            for email in ok_remove:
                removed.setdefault(email, set()).add(name)
            failures.update(failed)
        for name, (add, _remove) in changes.items():
            if add and tag_key(name) not in segments:
                for email in add:
                    failures.setdefault(email, f"the tag {name!r} could not be created")

        touched = []
        for email, diff in by_email.items():
            state = members.get(diff.subscriber_hash)
            if state is None:
                continue
            applied = {tag_key(t): t for t in state.applied_tags or ()}
            for name in removed.get(email, ()):
                applied.pop(tag_key(name), None)
            for name in added.get(email, ()):
                applied[tag_key(name)] = name
            new = tuple(sorted(applied.values(), key=tag_key))
            if email in added:
                report.counts["tagged"] += 1
            if email in removed:
                report.counts["untagged"] += 1
            if email in failures:
                self._failed(report, plan.desired[diff.subscriber_hash].supporter_id
                             if diff.subscriber_hash in plan.desired else state.supporter_id, email,
                             f"tags: {failures[email]}")
            if new != (state.applied_tags or ()) or state.applied_tags is None:
                state.applied_tags = new
                touched.append(state)
        self.store.save_members(touched)

    def _segments(self, needed: Iterable[str]) -> dict[str, int | str]:
        """Tag (case-folded) -> static segment id, creating the ones needed for additions."""
        segments = {tag_key(s["name"]): s["id"] for s in self.client.static_segments(self.list_id)}
        missing = [name for name in needed if tag_key(name) not in segments]

        def create(name: str) -> int | str | None:
            try:
                return self.client.create_static_segment(self.list_id, name)["id"]
            except MailchimpRequestError as exc:
                log.warning("mailchimp: could not create the tag %r: %s", name, exc.message)
                return None

        created = self.client.map(create, missing)
        for name, segment_id in zip(missing, created, strict=True):
            if segment_id is not None:
                segments[tag_key(name)] = segment_id
        if None in created:
            # Created meanwhile (another run, a person)? Look again before giving up.
            for item in self.client.static_segments(self.list_id):
                segments.setdefault(tag_key(item["name"]), item["id"])
        return segments

    def _change_segment(self, job: tuple[str, int | str | None, list[str], list[str]]
                        ) -> tuple[str, list[str], list[str], dict[str, str]]:
        name, segment_id, add, remove = job
        if segment_id is None:  # only removals of a tag that does not exist: nothing to remove
            return name, [], list(remove), {}
        try:
            answer = self.client.change_segment(self.list_id, segment_id, add, remove)
        except MailchimpAuthError:
            raise
        except MailchimpError as exc:
            reason = f"tag {name!r}: {exc.message}"
            return name, [], [], {email: reason for email in (*add, *remove)}
        failed: dict[str, str] = {}
        for error in answer.get("errors") or []:
            for email in error.get("email_addresses") or []:
                failed[str(email).strip().lower()] = f"tag {name!r}: {error.get('error', 'refused')}"
        return (name, [e for e in add if e not in failed], [e for e in remove if e not in failed], failed)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
