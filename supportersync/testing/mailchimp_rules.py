"""Validation rules the simulated Mailchimp enforces on addresses and merge fields.

Each check raises `ApiError` with the title and wording Mailchimp uses, so the
plugin's tests exercise the same error handling as production.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from supportersync.testing.mailchimp_model import STATUSES, invalid, schema_error

MAX_MERGE_FIELDS = 30
MAX_TAG_LENGTH = 10
MERGE_TYPES = (
    "text",
    "number",
    "address",
    "phone",
    "date",
    "url",
    "imageurl",
    "radio",
    "dropdown",
    "birthday",
    "zip",
    "email",
)

# Mailchimp refuses addresses its heuristics think are made up; these are the
# common ones that test data and careless imports trip over.
_FAKE_LOCAL = re.compile(r"^(test|fake|asdf|qwerty|noemail|none|null|nobody)\d*$", re.IGNORECASE)
_FAKE_DOMAINS = {"example.com", "example.org", "test.com"}
_SHAPE = re.compile(r"^[^@\s]+@([^@\s.]+\.)+[A-Za-z]{2,}$")


def check_address(email: str) -> None:
    """Raise "Invalid Resource" for an address that is malformed or looks fake."""
    local, _, domain = email.rpartition("@")
    if (
        not _SHAPE.match(email)
        or _FAKE_LOCAL.match(local)
        or domain.lower() in _FAKE_DOMAINS
    ):
        raise invalid(f"{email} looks fake or invalid, please enter a real email address.")


def check_merge_values(
    definitions: dict[str, dict[str, Any]], values: Any, *, creating: bool
) -> dict[str, Any]:
    """Validate merge field values against the audience's fields; return them normalized.

    On creation every required field needs a non-empty value; on update only the
    values sent are checked (clearing a required one with "" is refused).
    """
    if not isinstance(values, dict):
        raise schema_error("merge_fields", f"Schema describes object, {type(values).__name__} found instead")
    problems: list[dict[str, str]] = []
    clean: dict[str, Any] = {}
    for tag, value in values.items():
        definition = definitions.get(tag)
        if definition is None:
            problems.append({"field": tag, "message": f"The merge field {tag} does not exist in this audience."})
            continue
        message, normalized = _check_value(definition, value)
        if message:
            problems.append({"field": tag, "message": message})
        else:
            clean[tag] = normalized
    for tag, definition in definitions.items():
        if not definition.get("required"):
            continue
        missing = (creating and tag not in values) or (tag in values and values[tag] in ("", None))
        if missing:
            problems.append({"field": tag, "message": "Please enter a value"})
    if problems:
        raise invalid("Your merge fields were invalid.", problems)
    return clean


def _check_value(definition: dict[str, Any], value: Any) -> tuple[str, Any]:
    """Return (error message or "", normalized value). Deliberately loose, like Mailchimp."""
    kind = definition["type"]
    if value is None or value == "":
        return "", ""
    if isinstance(value, bool):
        return "Booleans are not accepted; send them as strings.", None
    if kind == "address":
        if isinstance(value, dict):
            needed = [part for part in ("addr1", "city", "state", "zip") if not value.get(part)]
            return ("Please enter a complete address", None) if needed else ("", value)
        return ("", value) if isinstance(value, str) else ("Please enter a complete address", None)
    if not isinstance(value, (str, int, float)):
        return "Please enter a value", None
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return "Please enter a number", None
        if not math.isfinite(number):
            return "Please enter a number", None
        return "", int(number) if number.is_integer() else number
    text = str(value)
    if kind == "date" and not _parses(text, ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y")):
        return "Please enter a date", None
    if kind == "birthday" and not _parses(text, ("%m/%d",)):
        return "Please enter a complete birthday (MM/DD)", None
    if kind in ("radio", "dropdown"):
        choices = (definition.get("options") or {}).get("choices") or []
        if choices and text not in choices:
            return "Please choose one of the options", None
    if kind == "text" and len(text) > 255:
        return "Please enter a value of 255 characters or fewer", None
    return "", text


def _parses(text: str, formats: tuple[str, ...]) -> bool:
    for fmt in formats:
        try:
            datetime.strptime(text, fmt)
        except ValueError:
            continue
        return True
    return False


def check_new_merge_field(existing: dict[str, dict[str, Any]], body: Any, next_id: int) -> dict[str, Any]:
    """Validate a merge-field definition from `POST /lists/{id}/merge-fields`."""
    if not isinstance(body, dict):
        raise schema_error("", "Schema describes object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise schema_error("name", "This value should not be blank.")
    kind = body.get("type")
    if kind not in MERGE_TYPES:
        raise schema_error("type", f"Data did not match any of the allowed values ({', '.join(MERGE_TYPES)}).")
    tag = body.get("tag") or f"MMERGE{next_id}"
    if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9_]+", tag):
        raise invalid("A merge field tag may contain only letters, numbers and underscores.")
    if len(tag) > MAX_TAG_LENGTH:
        raise invalid(f"The merge field tag \"{tag}\" is too long: tags may be at most {MAX_TAG_LENGTH} characters.")
    tag = tag.upper()
    if tag in existing:
        raise invalid(f"A Merge Field with the tag \"{tag}\" already exists for this list.")
    if len(existing) >= MAX_MERGE_FIELDS:
        raise invalid(f"This audience already has the maximum of {MAX_MERGE_FIELDS} merge fields.")
    return {
        "merge_id": next_id,
        "tag": tag,
        "name": name.strip(),
        "type": kind,
        "required": bool(body.get("required", False)),
        "default_value": body.get("default_value", ""),
        "public": bool(body.get("public", False)),
        "display_order": next_id + 1,
        "options": body.get("options") or {},
        "help_text": body.get("help_text", ""),
    }


def require_status(value: Any, field: str) -> str:
    if value not in STATUSES:
        raise schema_error(field, f"Data did not match any of the allowed values ({', '.join(STATUSES)}).")
    return value

