"""The Mailchimp plugin's settings: the merged raw [mailchimp] table, validated once.

`OrgSettings.mailchimp` already holds the TOML table with the three environment
variables laid over it (`SUPPORTERSYNC_MAILCHIMP_API_KEY`, `_AUDIENCE_ID`, `_API_URL`)
and the key wrapped in a `Secret`. :func:`load_mailchimp_settings` turns it into a
frozen :class:`MailchimpSettings` or raises `ConfigError` naming the key at fault.
No message here ever contains the API key. docs/mailchimp.md documents every key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from supportersync.config import Secret
from supportersync.errors import ConfigError

ENV_API_KEY = "SUPPORTERSYNC_MAILCHIMP_API_KEY"
ENV_AUDIENCE_ID = "SUPPORTERSYNC_MAILCHIMP_AUDIENCE_ID"
ENV_API_URL = "SUPPORTERSYNC_MAILCHIMP_API_URL"

MAX_MERGE_TAG_LENGTH = 10
MAX_CONNECTIONS = 10
"""Mailchimp allows 10 simultaneous connections per account, across all apps."""

# Field name -> (default merge tag, Mailchimp type, name given to a field we create).
MERGE_FIELDS: dict[str, tuple[str, str, str]] = {
    "first_name": ("FNAME", "text", "First Name"),
    "last_name": ("LNAME", "text", "Last Name"),
    "lifetime_amount": ("GIFTTOTAL", "number", "Lifetime giving"),
    "gift_count": ("GIFTCOUNT", "number", "Number of gifts"),
    "monthly_recurring_amount": ("GIFTMONTH", "number", "Monthly recurring amount"),
    "first_gift_date": ("GIFTFIRST", "date", "First gift date"),
    "last_gift_date": ("GIFTLAST", "date", "Last gift date"),
    "value_tier": ("VALUETIER", "text", "Value tier"),
    "engagement": ("ENGAGEMENT", "text", "Engagement"),
    "frequency": ("FREQUENCY", "text", "Giving frequency"),
}
SEGMENT_KINDS = ("value_tier", "engagement", "frequency")
"""Segment labels that can become tags (also merge fields, above)."""

_KEYS = {
    "api_key", "audience_id", "api_url", "status_if_new", "on_consent_withdrawn", "on_deleted",
    "tag_prefix", "ownership_tag", "tag_segments", "merge_fields", "create_merge_fields",
    "max_connections", "timeout_seconds", "max_retries", "batch_timeout_seconds",
}
_KEY_SHAPE = re.compile(r"^[0-9a-zA-Z]{16,64}-(?P<dc>[a-z]{2,4}[0-9]{1,3})$")
_MERGE_TAG = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class MailchimpSettings:
    api_key: Secret
    audience_id: str
    datacenter: str
    api_url: str
    """`https://<dc>.api.mailchimp.com/3.0`, or the SUPPORTERSYNC_MAILCHIMP_API_URL override."""
    status_if_new: str = "subscribed"
    on_consent_withdrawn: str = "unsubscribe"
    on_deleted: str = "leave"
    tag_prefix: str = "Classy: "
    ownership_tag: str = "supportersync"
    tag_segments: tuple[str, ...] = SEGMENT_KINDS
    merge_fields: Mapping[str, str] = field(
        default_factory=lambda: {name: spec[0] for name, spec in MERGE_FIELDS.items()})
    """Field name -> merge tag; fields mapped to "" are not sent."""
    create_merge_fields: bool = True
    max_connections: int = MAX_CONNECTIONS
    timeout_seconds: float = 60.0
    max_retries: int = 5
    batch_timeout_seconds: float = 1800.0

    def merge_tag_types(self) -> dict[str, tuple[str, str]]:
        """Merge tag -> (Mailchimp type, display name) for every field we send."""
        return {tag: (MERGE_FIELDS[name][1], MERGE_FIELDS[name][2]) for name, tag in self.merge_fields.items()}

    def is_managed_tag(self, name: str) -> bool:
        """Tags this tool owns: the ownership tag and anything under the prefix (any case)."""
        folded = name.strip().casefold()
        return folded == self.ownership_tag.strip().casefold() or folded.startswith(self.tag_prefix.strip().casefold())

    def describe(self) -> str:
        return f"audience {self.audience_id} in datacenter {self.datacenter}"


def is_configured(raw: Mapping[str, Any]) -> bool:
    """Neither a key nor an audience: the plugin is inactive (not an error)."""
    return bool(raw.get("api_key")) or bool(raw.get("audience_id"))


def load_mailchimp_settings(raw: Mapping[str, Any]) -> MailchimpSettings:
    """Validate the merged [mailchimp] table; raise ConfigError naming the setting at fault."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(sorted(unknown))} in [mailchimp].",
                          hint="See docs/mailchimp.md for the settings that exist.")
    key = raw.get("api_key")
    if key is not None and not isinstance(key, Secret):
        key = Secret(str(key))
    audience_id = str(raw.get("audience_id") or "").strip()
    missing = [name for name, value in ((ENV_API_KEY + " / mailchimp.api_key", key),
                                        (ENV_AUDIENCE_ID + " / mailchimp.audience_id", audience_id)) if not value]
    if missing:
        raise ConfigError(f"Mailchimp is half configured: missing {' and '.join(missing)}.",
                          hint="Set both to use the Mailchimp plugin, or neither to leave it inactive.")
    assert key is not None
    datacenter = datacenter_of(key)
    api_url = _api_url(raw.get("api_url"), datacenter)

    values: dict[str, Any] = {}
    values["status_if_new"] = _choice(raw, "status_if_new", ("subscribed", "pending"), "subscribed")
    values["on_consent_withdrawn"] = _choice(raw, "on_consent_withdrawn", ("unsubscribe", "leave"), "unsubscribe")
    values["on_deleted"] = _choice(raw, "on_deleted", ("leave", "archive"), "leave")
    values["tag_prefix"] = _text(raw, "tag_prefix", "Classy: ", allow_empty=False)
    values["ownership_tag"] = _text(raw, "ownership_tag", "supportersync", allow_empty=False)
    for name in ("tag_prefix", "ownership_tag"):
        if len(values[name].strip()) > 80:
            raise ConfigError(f"mailchimp.{name} is too long: tag names are at most 100 characters.")
    values["tag_segments"] = _tag_segments(raw.get("tag_segments", list(SEGMENT_KINDS)))
    values["merge_fields"] = _merge_fields(raw.get("merge_fields", {}))
    values["create_merge_fields"] = _bool(raw, "create_merge_fields", True)
    values["max_connections"] = _number(raw, "max_connections", MAX_CONNECTIONS, int, 1, MAX_CONNECTIONS)
    values["timeout_seconds"] = _number(raw, "timeout_seconds", 60.0, float, 1, 600)
    values["max_retries"] = _number(raw, "max_retries", 5, int, 0, 20)
    values["batch_timeout_seconds"] = _number(raw, "batch_timeout_seconds", 1800.0, float, 1, 86400)
    return MailchimpSettings(api_key=key, audience_id=audience_id, datacenter=datacenter, api_url=api_url, **values)


def datacenter_of(key: Secret) -> str:
    """The datacenter a key belongs to (`...-us21` -> `us21`); its shape is checked first."""
    match = _KEY_SHAPE.match(key.reveal().strip())
    if match is None:
        # Say what is wrong without echoing any part of the key.
        value = key.reveal().strip()
        why = ("it has no datacenter suffix (a key ends in something like -us21)" if "-" not in value
               else "a key is letters and digits followed by its datacenter, like 0123...cdef-us21")
        raise ConfigError(f"{ENV_API_KEY} does not look like a Mailchimp API key: {why}.",
                          hint="Copy the key again from Mailchimp (Profile > Extras > API keys).")
    return match.group("dc")


def _api_url(value: Any, datacenter: str) -> str:
    if not value:
        return f"https://{datacenter}.api.mailchimp.com/3.0"
    url = str(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{ENV_API_URL} / mailchimp.api_url must be an http(s) URL, got {url!r}.")
    host = parts.hostname or ""
    if host.endswith(".api.mailchimp.com") and host.split(".", 1)[0] != datacenter:
        raise ConfigError(
            f"{ENV_API_URL} points at datacenter {host.split('.', 1)[0]!r}, but the API key belongs to "
            f"{datacenter!r}.",
            hint=f"Remove the override (the key's datacenter gives https://{datacenter}.api.mailchimp.com/3.0).",
        )
    return url


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise ConfigError(f"mailchimp.{key} must be {' or '.join(map(repr, allowed))}, got {value!r}.")
    return str(value)


def _text(raw: Mapping[str, Any], key: str, default: str, *, allow_empty: bool) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ConfigError(f"mailchimp.{key} must be a non-empty string, got {value!r}.")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"mailchimp.{key} must be true or false, got {value!r}.")
    return value


def _number(raw: Mapping[str, Any], key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"mailchimp.{key} must be a{'whole ' if kind is int else ' '}number, got {value!r}.")
    if not low <= value <= high:
        raise ConfigError(f"mailchimp.{key} must be between {low:g} and {high:g}, got {value!r}.")
    return kind(value)


def _tag_segments(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError("mailchimp.tag_segments must be a list drawn from "
                          f"{', '.join(SEGMENT_KINDS)}, e.g. [\"value_tier\", \"engagement\"].")
    unknown = [item for item in value if item not in SEGMENT_KINDS]
    if unknown:
        raise ConfigError(f"mailchimp.tag_segments: unknown segment kind(s) {', '.join(map(repr, unknown))}; "
                          f"use {', '.join(SEGMENT_KINDS)}.")
    return tuple(dict.fromkeys(value))


def _merge_fields(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError("[mailchimp.merge_fields] must be a table of field = \"MERGETAG\".")
    unknown = set(value) - set(MERGE_FIELDS)
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(sorted(unknown))} in [mailchimp.merge_fields]; "
                          f"the fields are {', '.join(MERGE_FIELDS)}.")
    tags: dict[str, str] = {}
    for name, (default, _kind, _title) in MERGE_FIELDS.items():
        tag = value.get(name, default)
        if not isinstance(tag, str):
            raise ConfigError(f"mailchimp.merge_fields.{name} must be a merge tag string (or \"\" to leave it out).")
        tag = tag.strip().upper()
        if not tag:
            continue
        if len(tag) > MAX_MERGE_TAG_LENGTH or not _MERGE_TAG.match(tag):
            raise ConfigError(
                f"mailchimp.merge_fields.{name} = {tag!r} is not a valid merge tag: at most "
                f"{MAX_MERGE_TAG_LENGTH} characters, letters, digits and underscores, starting with a letter.")
        tags[name] = tag
    seen: dict[str, str] = {}
    for name, tag in tags.items():
        if tag in seen:
            raise ConfigError(f"mailchimp.merge_fields.{name} and .{seen[tag]} both use the merge tag {tag!r}.")
        seen[tag] = name
    return tags
