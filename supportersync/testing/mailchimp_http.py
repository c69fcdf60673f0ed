"""HTTP plumbing for the simulated Mailchimp: auth header, JSON in and out, paging, `fields`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

from supportersync.testing.mailchimp_model import ApiError, as_utc, invalid

MAX_COUNT = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One API call, whether it came over HTTP or from inside a batch."""

    method: str
    params: dict[str, str]
    body: Any
    base_url: str  # where this simulator is reachable, for links it hands out
    via: str = ""  # "" for a direct request, "batch-op " inside a batch

    @property
    def how(self) -> str:
        return self.via + self.method


def api_key_from(header: str) -> str:
    """The key from HTTP Basic (any user, key as password) or Bearer; "" when absent."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    if scheme.lower() == "bearer":
        return value.strip()
    return ""


def origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def json_body(request: httpx.Request) -> Any:
    if request.method in ("GET", "DELETE") or not request.content:
        return None
    try:
        return json.loads(request.content)
    except ValueError:
        raise ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.") from None


def json_response(status: int, payload: Any) -> httpx.Response:
    if payload is None:
        return httpx.Response(status)
    return httpx.Response(status, content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def problem_response(error: ApiError) -> httpx.Response:
    return httpx.Response(
        error.status,
        content=json.dumps(error.problem()).encode(),
        headers={"Content-Type": "application/problem+json"},
    )


def int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be a whole number.") from None
    if value < 0:
        raise invalid(f"{name} must not be negative.")
    return value


def page(params: dict[str, str], items: list[T]) -> list[T]:
    """Apply Mailchimp's count/offset paging (count defaults to 10, at most 1000)."""
    count = int_param(params, "count", 10)
    if count > MAX_COUNT:
        raise invalid(f"count must be at most {MAX_COUNT}.")
    offset = int_param(params, "offset", 0)
    return items[offset : offset + count]


def time_param(params: dict[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        # An unencoded "+" in the offset arrives as a space: refuse it, as Mailchimp does.
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 time, like 2024-01-31T12:00:00+00:00 (got {raw!r}).") from None


def pick_fields(data: Any, fields: str | None, exclude: str | None) -> Any:
    """Mailchimp's `fields` / `exclude_fields`: comma-separated dotted paths."""
    if fields:
        data = _keep(data, _tree(fields))
    if exclude:
        data = _drop(data, _tree(exclude))
    return data


def _tree(spec: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in spec.split(","):
        node = tree
        for part in path.strip().split("."):
            if part:
                node = node.setdefault(part, {})
    return tree


def _keep(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_keep(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: _keep(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def _drop(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_drop(item, tree) for item in value]
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            if key not in tree:
                kept[key] = item
            elif tree[key]:
                kept[key] = _drop(item, tree[key])
        return kept
    return value
