"""The simulated audience: members, merge fields, tags, and the rules that protect people.

Every write that can change a status goes through `_check_transition`, whichever
endpoint it arrived by (PUT, PATCH, POST, batch subscribe, or an operation inside a
batch), so no path can quietly re-subscribe someone who left. Methods raise
`ApiError`; the caller holds the simulator's lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supportersync.testing.mailchimp_model import (
    ApiError,
    Event,
    Member,
    Rejection,
    as_utc,
    invalid,
    iso,
    not_found,
    schema_error,
    subscriber_hash,
)
from supportersync.testing.mailchimp_rules import (
    check_address,
    check_merge_values,
    check_new_merge_field,
    require_status,
)

MAX_BATCH_MEMBERS = 500
MAX_SEGMENT_CHANGE = 500
DEFAULT_MERGE_FIELDS = [
    {"tag": "FNAME", "name": "First Name", "type": "text"},
    {"tag": "LNAME", "name": "Last Name", "type": "text"},
]
UNSUBSCRIBE_REASONS = {"self": "N/A (Unsubscribed by the contact)", "admin": "N/A (Unsubscribed by an admin)"}


@dataclass
class Tag:
    """A tag, which Mailchimp also exposes as a static segment."""

    id: int
    name: str
    created_at: datetime
    updated_at: datetime


class Audience:
    def __init__(
        self,
        *,
        list_id: str,
        name: str,
        merge_fields: list[dict[str, Any]] | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.id = list_id
        self.name = name
        self.clock = clock
        self.created_at = self.now()
        self.members: dict[str, Member] = {}
        self.merge_fields: dict[str, dict[str, Any]] = {}
        self.forgotten: set[str] = set()
        self.events: list[Event] = []
        self.rejections: list[Rejection] = []
        self._tags: dict[str, Tag] = {}  # keyed by lowercased name: tag names ignore case
        self._next_merge_id = 1
        self._next_tag_id = 10001
        for definition in DEFAULT_MERGE_FIELDS if merge_fields is None else merge_fields:
            self.add_merge_field(definition)

    def now(self) -> datetime:
        # Mailchimp reports whole seconds; storing them keeps since_last_changed exact.
        return as_utc(self.clock()).replace(microsecond=0)

    # -- lookups ---------------------------------------------------------------

    def find(self, key: str) -> Member | None:
        """A member by subscriber hash or by email address (archived ones included)."""
        return self.members.get(_hash_of(key))

    def get(self, key: str) -> Member:
        member = self.find(key)
        if member is None:
            raise not_found()
        return member

    def list_members(
        self,
        *,
        status: str | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> list[Member]:
        found = []
        for member in self.members.values():
            if status is None and member.archived:
                continue  # archived contacts only show when asked for by status
            if status is not None and member.visible_status != status:
                continue
            if since is not None and member.last_changed < since:
                continue
            if before is not None and member.last_changed >= before:
                continue
            found.append(member)
        return found

    # -- member writes through the API ------------------------------------------

    def put(self, key: str, body: Any, how: str) -> Member:
        """Upsert: `status_if_new` only when creating, `status` also changes existing members."""
        body = _object(body)
        email = _email(body)
        if subscriber_hash(email) != _hash_of(key):
            raise invalid("The subscriber hash in the URL does not match the email_address in the body.")
        member = self.members.get(subscriber_hash(email))
        with self._recording(email, how):
            if member is None:
                status = body.get("status_if_new") or body.get("status")
                return self._create(email, status, body.get("merge_fields"), how, "status_if_new")
            self._update(member, body.get("status"), body.get("merge_fields"), how)
            return member

    def patch(self, key: str, body: Any, how: str) -> Member:
        member = self.get(key)
        body = _object(body)
        if "email_address" in body and subscriber_hash(str(body["email_address"])) != member.id:
            raise invalid("The simulator does not support changing a member's email address.")
        with self._recording(member.email_address, how):
            self._update(member, body.get("status"), body.get("merge_fields"), how)
        return member

    def post(self, body: Any, how: str) -> Member:
        body = _object(body)
        email = _email(body)
        tags = _tag_names(body.get("tags", []))
        member = self.members.get(subscriber_hash(email))
        with self._recording(email, how):
            if member is None:
                return self._create(email, body.get("status"), body.get("merge_fields"), how, "status", tags)
            if not member.archived:
                raise _member_exists(email)
            self._update(member, require_status(body.get("status"), "status"), body.get("merge_fields"), how)
            self.tag(member, tags)
            return member

    def archive(self, key: str, how: str) -> None:
        """DELETE: the contact is hidden but kept, status and all, and can come back."""
        member = self.get(key)
        if member.archived:
            return
        member.archived = True
        member.last_changed = self.now()
        self.events.append(Event(member.id, member.status, "archived", how))

    def forget(self, key: str, how: str) -> None:
        """Permanent deletion: the address can never be imported again."""
        hashed = _hash_of(key)
        member = self.members.pop(hashed, None)
        self.forgotten.add(hashed)
        self.events.append(Event(hashed, member.visible_status if member else None, "forgotten", how))

    def batch_subscribe(self, body: Any, how: str) -> dict[str, Any]:
        """`POST /lists/{id}`: one person's rejection never fails the call."""
        body = _object(body)
        items = body.get("members")
        if not isinstance(items, list):
            raise schema_error("members", "Schema describes array, " + type(items).__name__ + " found instead")
        if len(items) > MAX_BATCH_MEMBERS:
            raise invalid(f"You can add or update at most {MAX_BATCH_MEMBERS} members in one batch subscribe call.")
        update_existing = bool(body.get("update_existing", False))
        sync_tags = bool(body.get("sync_tags", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for item in items:
            email = str(item.get("email_address", "")).strip() if isinstance(item, dict) else ""
            try:
                with self._recording(email, how):
                    was_new, member = self._subscribe_one(item, update_existing, sync_tags, how)
            except ApiError as error:
                errors.append(_batch_error(email, error))
                continue
            (created if was_new else updated).append(self.member_json(member))
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
        }

    def _subscribe_one(self, item: Any, update_existing: bool, sync_tags: bool, how: str) -> tuple[bool, Member]:
        item = _object(item)
        email = _email(item)
        tags = _tag_names(item.get("tags", []))
        member = self.members.get(subscriber_hash(email))
        if member is None:
            return True, self._create(email, item.get("status"), item.get("merge_fields"), how, "status", tags)
        if not (update_existing or member.archived):
            raise _member_exists(email)
        # There is no status_if_new here: a status sent for an existing member is applied.
        self._update(member, item.get("status"), item.get("merge_fields"), how)
        if sync_tags:
            member.tags.clear()
        self.tag(member, tags)
        return False, member

    # -- the rules ---------------------------------------------------------------

    def _create(
        self,
        email: str,
        status: Any,
        merge_values: Any,
        how: str,
        status_field: str,
        tags: Iterable[str] = (),
    ) -> Member:
        hashed = subscriber_hash(email)
        if hashed in self.forgotten:
            raise ApiError(
                400,
                "Forgotten Email Not Subscribed",
                f"{email} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
            )
        check_address(email)
        status = require_status(status, status_field)
        values = check_merge_values(self.merge_fields, {} if merge_values is None else merge_values, creating=True)
        now = self.now()
        member = Member(
            email_address=email,
            status=status,
            merge_fields=values,
            tags=set(),
            last_changed=now,
            timestamp_opt=now,
            unsubscribe_reason="admin" if status == "unsubscribed" else None,
        )
        self.members[hashed] = member
        self.events.append(Event(hashed, None, status, how))
        self.tag(member, tags)
        return member

    def _update(self, member: Member, status: Any, merge_values: Any, how: str) -> None:
        # Validate everything before changing anything: a refused write changes nothing.
        if status is not None:
            require_status(status, "status")
            self._check_transition(member, status)
        values = {} if merge_values is None else check_merge_values(self.merge_fields, merge_values, creating=False)
        if member.archived:
            member.archived = False
            self.events.append(Event(member.id, "archived", member.status, how))
            member.last_changed = self.now()
        changed = False
        for tag, value in values.items():
            if member.merge_fields.get(tag, "") != value:
                member.merge_fields[tag] = value
                changed = True
        if status is not None and status != member.status:
            self.set_status(member, status, how, reason="admin")
        elif changed:
            member.last_changed = self.now()

    def _check_transition(self, member: Member, new: str) -> None:
        if new == "subscribed" and member.status != "subscribed" and member.in_compliance_state:
            raise ApiError(
                400,
                "Member In Compliance State",
                f"{member.email_address} is in a compliance state due to unsubscribe, bounce, "
                "or compliance review and cannot be subscribed.",
            )

    def set_status(self, member: Member, new: str, how: str, *, reason: str | None = None) -> None:
        """Change a status without the API's rules (helpers acting as the person or Mailchimp)."""
        old = member.status
        member.status = new
        member.unsubscribe_reason = reason if new == "unsubscribed" else None
        member.last_changed = self.now()
        if new == "subscribed":
            member.timestamp_opt = member.last_changed
        self.events.append(Event(member.id, old, new, how))

    @contextmanager
    def _recording(self, email: str, how: str) -> Iterator[None]:
        try:
            yield
        except ApiError as error:
            self.rejections.append(Rejection(email, error.title, how))
            raise

    # -- tags and static segments ------------------------------------------------

    def tag_named(self, name: str, *, create: bool) -> Tag | None:
        key = name.strip().lower()
        found = self._tags.get(key)
        if found is None and create:
            now = self.now()
            found = Tag(self._next_tag_id, name.strip(), now, now)
            self._next_tag_id += 1
            self._tags[key] = found
        return found

    def tag(self, member: Member, names: Iterable[str]) -> None:
        for name in names:
            tag = self.tag_named(name, create=True)
            assert tag is not None
            member.tags.add(tag.name)

    def untag(self, member: Member, names: Iterable[str]) -> None:
        for name in names:
            tag = self.tag_named(name, create=False)
            if tag is not None:
                member.tags.discard(tag.name)

    def set_member_tags(self, key: str, body: Any) -> None:
        """`POST .../members/{hash}/tags` with `{tags: [{name, status}]}`."""
        member = self.get(key)
        items = _object(body).get("tags")
        if not isinstance(items, list):
            raise schema_error("tags", "Schema describes array")
        changes: list[tuple[str, str]] = []
        for item in items:
            if not isinstance(item, dict) or item.get("status") not in ("active", "inactive"):
                raise schema_error("tags.status", "Data did not match any of the allowed values (active, inactive).")
            changes.append((_tag_names([item.get("name")])[0], item["status"]))
        for name, status in changes:
            (self.tag if status == "active" else self.untag)(member, [name])

    def segments(self) -> list[Tag]:
        return sorted(self._tags.values(), key=lambda tag: tag.id)

    def segment(self, segment_id: str) -> Tag:
        for tag in self._tags.values():
            if str(tag.id) == segment_id:
                return tag
        raise not_found()

    def create_segment(self, body: Any) -> Tag:
        body = _object(body)
        if "options" in body:
            raise invalid("The simulator supports only static segments (tags), not saved segments.")
        name = _tag_names([body.get("name")])[0]
        if self.tag_named(name, create=False) is not None:
            raise invalid(f"A tag or segment named \"{name}\" already exists.")
        emails = _email_list(body, "static_segment")
        tag = self.tag_named(name, create=True)
        assert tag is not None
        for email in emails:
            member = self.find(email)
            if member is not None and not member.archived:
                member.tags.add(tag.name)
        return tag

    def change_segment(self, segment_id: str, body: Any) -> dict[str, Any]:
        """`POST /segments/{id}`: add or remove one tag for up to 500 people each way."""
        tag = self.segment(segment_id)
        body = _object(body)
        to_add = _email_list(body, "members_to_add")
        to_remove = _email_list(body, "members_to_remove")
        added: list[Member] = []
        removed: list[Member] = []
        missing_add: list[str] = []
        missing_remove: list[str] = []
        for email in to_add:
            member = self.find(email)
            if member is None or member.archived:
                missing_add.append(email)
            elif tag.name not in member.tags:
                member.tags.add(tag.name)
                added.append(member)
        for email in to_remove:
            member = self.find(email)
            if member is None or member.archived:
                missing_remove.append(email)
            elif tag.name in member.tags:
                member.tags.discard(tag.name)
                removed.append(member)
        tag.updated_at = self.now()
        errors = [
            {"email_addresses": emails, "error": "These email addresses are not in the audience."}
            for emails in (missing_add, missing_remove)
            if emails
        ]
        return {
            "members_added": [self.member_json(member) for member in added],
            "members_removed": [self.member_json(member) for member in removed],
            "errors": errors,
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": len(missing_add) + len(missing_remove),
        }

    def delete_segment(self, segment_id: str) -> None:
        tag = self.segment(segment_id)
        del self._tags[tag.name.lower()]
        for member in self.members.values():
            member.tags.discard(tag.name)

    # -- merge fields --------------------------------------------------------------

    def add_merge_field(self, body: Any) -> dict[str, Any]:
        definition = check_new_merge_field(self.merge_fields, body, self._next_merge_id)
        definition["list_id"] = self.id
        self.merge_fields[definition["tag"]] = definition
        self._next_merge_id += 1
        return definition

    # -- rendering -----------------------------------------------------------------

    def member_json(self, member: Member) -> dict[str, Any]:
        values = {tag: member.merge_fields.get(tag, "") for tag in self.merge_fields}
        tags = [self._tags[name.lower()] for name in sorted(member.tags) if name.lower() in self._tags]
        body: dict[str, Any] = {
            "id": member.id,
            "email_address": member.email_address,
            "unique_email_id": member.id[:10],
            "contact_id": member.id,
            "full_name": f"{values.get('FNAME', '')} {values.get('LNAME', '')}".strip(),
            "email_type": "html",
            "status": member.visible_status,
            "merge_fields": values,
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": iso(member.timestamp_opt),
            "member_rating": 2,
            "last_changed": iso(member.last_changed),
            "language": "",
            "vip": False,
            "source": "API - Generic",
            "tags_count": len(tags),
            "tags": [{"id": tag.id, "name": tag.name} for tag in tags],
            "list_id": self.id,
        }
        if member.status == "unsubscribed" and member.unsubscribe_reason:
            body["unsubscribe_reason"] = UNSUBSCRIBE_REASONS[member.unsubscribe_reason]
        return body

    def segment_json(self, tag: Tag) -> dict[str, Any]:
        count = sum(1 for m in self.members.values() if not m.archived and tag.name in m.tags)
        return {
            "id": tag.id,
            "name": tag.name,
            "member_count": count,
            "type": "static",
            "created_at": iso(tag.created_at),
            "updated_at": iso(tag.updated_at),
            "list_id": self.id,
        }

    def stats(self) -> dict[str, Any]:
        counts = Counter(member.status for member in self.members.values() if not member.archived)
        return {
            "member_count": counts["subscribed"],
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "total_contacts": sum(counts.values()),
            "merge_field_count": len(self.merge_fields),
        }


def _hash_of(key: str) -> str:
    # Mailchimp accepts the address itself wherever a subscriber hash goes.
    return subscriber_hash(key) if "@" in key else key.lower()


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise schema_error("", f"Schema describes object, {type(body).__name__} found instead")
    return body


def _email(body: dict[str, Any]) -> str:
    email = body.get("email_address")
    if not isinstance(email, str) or not email.strip():
        raise schema_error("email_address", "This value should not be blank.")
    return email.strip()


def _tag_names(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise schema_error("tags", f"Schema describes array, {type(value).__name__} found instead")
    names = []
    for name in value:
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            raise schema_error("tags", "A tag name must be a non-empty string of at most 100 characters.")
        names.append(name.strip())
    return names


def _email_list(body: dict[str, Any], field: str) -> list[str]:
    emails = body.get(field, [])
    if not isinstance(emails, list) or not all(isinstance(email, str) for email in emails):
        raise schema_error(field, "Schema describes an array of email addresses")
    if len(emails) > MAX_SEGMENT_CHANGE:
        raise invalid(f"{field} may contain at most {MAX_SEGMENT_CHANGE} email addresses.")
    return emails


def _member_exists(email: str) -> ApiError:
    return ApiError(400, "Member Exists", f"{email} is already a list member. Use PUT to insert or update list members.")


def _batch_error(email: str, error: ApiError) -> dict[str, str]:
    first = (error.errors or [{}])[0]
    return {
        "email_address": email,
        "error": error.detail,
        "error_code": "ERROR_CONTACT_EXISTS" if error.title == "Member Exists" else "ERROR_GENERIC",
        "field": first.get("field", ""),
        "field_message": first.get("message", ""),
    }
