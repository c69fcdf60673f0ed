"""Per-entity knowledge: which table, which fields, and validation of one record.

`to_row` turns one Classy record into a row or raises MalformedRecord with the reason;
the engine records that reason with the job and carries on with the rest of the page.
Unknown status values are stored as they come (the system we replace mapped them to
"active" and lost them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from supportersync.db.schema import campaigns, recurring_plans, supporters, transactions
from supportersync.db.upsert import EncodedJSON
from supportersync.timeutil import parse_date, parse_datetime


class MalformedRecord(ValueError):
    """One record cannot be stored; the message says why."""


ENTITIES = ("campaigns", "supporters", "recurring_plans", "transactions")
"""Also the order `run all` uses: parents before children where possible."""

CLI_NAMES = {"supporters": "supporters", "transactions": "transactions",
             "recurring-plans": "recurring_plans", "campaigns": "campaigns"}


def encode(record: dict[str, Any]) -> tuple[EncodedJSON, str]:
    """The record's canonical JSON and its digest: encoded once, stored as is."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return EncodedJSON(canonical), hashlib.sha256(canonical.encode()).hexdigest()


# -- field readers: each raises MalformedRecord naming the field ------------------


def _id(record: dict[str, Any]) -> int:
    if "id" not in record or record["id"] is None:
        raise MalformedRecord("missing id")
    return _int(record, "id", required=True)  # type: ignore[return-value]


def _int(record: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise MalformedRecord(f"missing {name}")
        return None
    if isinstance(value, bool):
        raise MalformedRecord(f"{name} is a boolean, expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MalformedRecord(f"{name} is not an integer: {value!r}"[:200])


def _str(record: dict[str, Any], name: str, limit: int = 255) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise MalformedRecord(f"{name} is a {type(value).__name__}, expected text")
    text = str(value).strip()
    return text[:limit]


def _bool(record: dict[str, Any], name: str) -> bool | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise MalformedRecord(f"{name} is not a boolean: {value!r}"[:200])


def _money(record: dict[str, Any], name: str) -> Decimal | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedRecord(f"{name} is a boolean, expected an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MalformedRecord(f"{name} is not an amount: {value!r}"[:200]) from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e18"):
        raise MalformedRecord(f"{name} is out of range: {value!r}"[:200])
    return amount.quantize(Decimal("0.01"))


def _dt(record: dict[str, Any], name: str, *, required: bool = False) -> datetime | None:
    try:
        value = parse_datetime(record.get(name))
    except (ValueError, TypeError):
        raise MalformedRecord(f"{name} is not a date-time: {record.get(name)!r}"[:200]) from None
    if value is None and required:
        raise MalformedRecord(f"missing {name}")
    return value


def _date(record: dict[str, Any], name: str) -> Any:
    try:
        return parse_date(record.get(name))
    except (ValueError, TypeError):
        raise MalformedRecord(f"{name} is not a date: {record.get(name)!r}"[:200]) from None


def _common(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _id(record),
        "created_at": _dt(record, "created_at"),
        "updated_at": _dt(record, "updated_at", required=True),
    }


def _supporter(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **_common(record),
        "member_id": _int(record, "member_id"),
        "email_address": _str(record, "email_address", 320),
        "first_name": _str(record, "first_name"),
        "last_name": _str(record, "last_name"),
        "phone": _str(record, "phone", 64),
        "address1": _str(record, "address1"),
        "address2": _str(record, "address2"),
        "city": _str(record, "city"),
        "state": _str(record, "state"),
        "postal_code": _str(record, "postal_code", 64),
        "country": _str(record, "country", 64),
        # Classy calls email consent `opt_in`; reading `email_opt_in` once cut an audience from 5,254 to 65.
        "email_opt_in": _bool(record, "opt_in"),
        "sms_opt_in": _bool(record, "sms_opt_in"),
        "email_consent_at": _dt(record, "last_email_consent_decision_date"),
        "source_campaign_id": _int(record, "source_campaign_id"),
        "origin": _str(record, "origin"),
    }


def _transaction(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **_common(record),
        "supporter_id": _int(record, "supporter_id"),
        "campaign_id": _int(record, "campaign_id"),
        "recurring_plan_id": _int(record, "recurring_donation_plan_id"),
        "parent_transaction_id": _int(record, "parent_transaction_id"),
        "status": _str(record, "status", 64),
        "currency": _str(record, "currency_code", 16),
        "total_gross_amount": _money(record, "total_gross_amount"),
        "donation_gross_amount": _money(record, "donation_gross_amount"),
        "fees_amount": _money(record, "fees_amount"),
        "donation_net_amount": _money(record, "donation_net_amount"),
        "purchased_at": _dt(record, "purchased_at"),
        "refunded_at": _dt(record, "refunded_at"),
    }


def _recurring_plan(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **_common(record),
        "supporter_id": _int(record, "supporter_id"),
        "campaign_id": _int(record, "campaign_id"),
        "status": _str(record, "status", 64),
        "frequency": _str(record, "frequency", 64),
        "amount": _money(record, "donation_amount"),
        "currency": _str(record, "currency_code", 16),
        "next_processing_date": _date(record, "next_processing_date"),
        "canceled_at": _dt(record, "canceled_at"),
        "cancel_reason": _str(record, "cancel_reason_text", 4000),
    }


def _campaign(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **_common(record),
        "name": _str(record, "name", 512),
        "type": _str(record, "type", 64),
        "status": _str(record, "status", 64),
        "goal": _money(record, "goal"),
        "raw_goal": _str(record, "raw_goal", 64),
        "started_at": _dt(record, "started_at"),
        "ended_at": _dt(record, "ended_at"),
    }


@dataclass(frozen=True)
class EntitySpec:
    key: str
    table: sa.Table
    fields: Callable[[dict[str, Any]], dict[str, Any]]
    supporter_column: str | None
    """The column naming the supporter a row belongs to (for stats and plugins)."""

    def to_row(self, record: Any, *, organization_id: int, synced_at: datetime) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise MalformedRecord(f"expected a JSON object, got {type(record).__name__}")
        row = self.fields(record)
        raw, digest = encode(record)
        row.update(organization_id=organization_id, synced_at=synced_at, deleted_at=None, raw=raw, raw_hash=digest)
        return row

    def supporter_ids(self, rows: Iterable[dict[str, Any]]) -> set[int]:
        if self.supporter_column is None:
            return set()
        return {r[self.supporter_column] for r in rows if r.get(self.supporter_column) is not None}


SPECS: dict[str, EntitySpec] = {
    "supporters": EntitySpec("supporters", supporters, _supporter, "id"),
    "transactions": EntitySpec("transactions", transactions, _transaction, "supporter_id"),
    "recurring_plans": EntitySpec("recurring_plans", recurring_plans, _recurring_plan, "supporter_id"),
    "campaigns": EntitySpec("campaigns", campaigns, _campaign, None),
}


def source_id_of(record: Any) -> str | None:
    if isinstance(record, dict) and record.get("id") is not None:
        return str(record["id"])[:64]
    return None
