"""Timestamps: everything inside the program is timezone-aware UTC.

Classy sends datetimes in several shapes (`+0000`, `Z`, `.000000Z`, plain dates);
we parse them all and only ever compare datetimes, never strings.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

UTC = timezone.utc

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_datetime(value: object) -> datetime | None:
    """Parse a Classy datetime or date into aware UTC; None for empty values.

    Raises ValueError for anything else, so the caller can record the record as
    malformed instead of storing a guess.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return ensure_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a datetime string, got {type(value).__name__}")
    # Python 3.11 reads every shape Classy sends: +0000, Z, .000000Z and plain dates.
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        # Classy documents UTC; a naive value is taken as UTC rather than local time.
        return parsed.replace(tzinfo=UTC)
    if parsed.utcoffset():
        return parsed.astimezone(UTC)
    return parsed if parsed.tzinfo is UTC else parsed.replace(tzinfo=UTC)


def parse_date(value: object) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def ensure_utc(value: datetime) -> datetime:
    """Aware UTC from a datetime; naive values (SQLite returns them) are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_classy(value: datetime) -> str:
    """The filter format Classy accepts: `YYYY-MM-DDTHH:MM:SS+0000`, no fractions."""
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%S+0000")


def isoformat(value: datetime | None) -> str | None:
    return ensure_utc(value).isoformat() if value is not None else None


def parse_duration(text: str) -> timedelta:
    """`90d`, `15m`, `2h`, `30s`, `1w` -> timedelta."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h, 90d or 1w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
