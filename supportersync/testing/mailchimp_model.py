"""Plain data shared by the simulated Mailchimp account.

The member record, the status event and request log entry that tests read back, and
`ApiError`, which every rule raises and the HTTP layer turns into problem+json.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

#: Statuses a client may set. "archived" is only ever reported, never set.
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")

ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"

STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Resource Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the trimmed, lowercased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def iso(moment: datetime | None) -> str:
    """Mailchimp's timestamp format: whole seconds, explicit UTC offset."""
    if moment is None:
        return ""
    return as_utc(moment).replace(microsecond=0).isoformat()


def as_utc(moment: datetime) -> datetime:
    # A naive clock is taken to be UTC so injected test clocks stay simple.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass
class Member:
    """One contact in the audience, as Mailchimp itself would hold it."""

    email_address: str
    status: str
    merge_fields: dict[str, Any]
    tags: set[str]  # canonical (case-preserved) tag names
    last_changed: datetime
    timestamp_opt: datetime
    unsubscribe_reason: str | None = None  # "self", "admin" or None
    archived: bool = False
    compliance_review: bool = False

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)

    @property
    def visible_status(self) -> str:
        # Archiving keeps the underlying status so a restore cannot launder it.
        return "archived" if self.archived else self.status

    @property
    def in_compliance_state(self) -> bool:
        return (
            self.compliance_review
            or self.status == "cleaned"
            or (self.status == "unsubscribed" and self.unsubscribe_reason == "self")
        )


class Event(NamedTuple):
    """A status transition. `old` is None on creation; `new` may be "archived" or "forgotten"."""

    subscriber_hash: str
    old: str | None
    new: str
    how: str  # "PUT", "batch-subscribe", "batch-op PUT", "self", "admin", "bounce", ...


class Rejection(NamedTuple):
    """A write Mailchimp refused for one person (so tests can see retries of hopeless writes)."""

    email_address: str
    title: str
    how: str


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    status: int
    query: str = ""
    batch_poll: bool = False


class ApiError(Exception):
    """A Mailchimp error response; raised by the rules, rendered by the HTTP layer."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": ERROR_DOCS,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found() -> ApiError:
    return ApiError(404, "Resource Not Found", "The requested resource could not be found.")


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, errors)


def schema_error(field: str, message: str) -> ApiError:
    return invalid(
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        [{"field": field, "message": message}],
    )
