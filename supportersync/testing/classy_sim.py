"""A simulated Classy account: the API surface supportersync uses, with its traps.

One `ClassySimulator` is one organization plus the OAuth server in front of it. Use it
in-process through `transport()` (an `httpx.MockTransport`) or over real loopback HTTP
through `serve()`; `python -m supportersync.testing.classy_sim` serves one from its own
process for benchmarks and the demo.

What it mirrors (from the Classy API notes, classy-api.md):

* ``POST /oauth2/auth`` with client credentials in a JSON or form body; credentials in
  the query string are refused with 400.
* ``GET /2.0/organizations/{org}/{supporters,transactions,recurring-donation-plans,
  campaigns}`` with Laravel's paginator envelope, ``page``/``per_page`` (20 by default,
  clamped to 100), ``sort=field[:asc|:desc][,...]`` and ``filter=<field><op><value>``.
  Paging is by offset, recomputed on every request, so records that change during a
  crawl shift between pages exactly as on the real API. The ``*_page_url`` links carry
  only ``page`` (Laravel's default), so a client following them loses its filter.
* The query string is decoded like PHP's: a literal ``+`` is a space, so a filter
  value whose ``+0000`` was not percent-encoded, or was encoded twice, is a 400.
* Single records at ``/2.0/{entity-path}/{id}``; the un-scoped list ``/2.0/transactions``
  answers 403 as observed.
* X-RateLimit-Limit / X-RateLimit-Remaining on data responses; above the limit in a
  sliding 60 s window, 429 with Retry-After and Laravel's throttle body.

Test hooks: mutations that stamp ``updated_at`` (`add`, `update`, `touch`, `refund`,
`delete`), faults (`fail_next`, `drop_connection_next`, `revoke_tokens`, `latency`),
`inject_malformed`, and `request_log`, which never holds a token or a secret.

Injected malformed records are served after the regular ones on every list request of
their entity; a filter excludes one only when its field holds a datetime (or status)
the filter can judge.
"""

from __future__ import annotations

import argparse
import http
import json
import math
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from supportersync.testing.classy_data import DEFAULT_BASE_TIME, FIELDS, Dataset
from supportersync.testing.classy_store import (
    COMPARE,
    Condition,
    SortSpec,
    Table,
    format_consent,
    format_datetime,
    parse_datetime,
)

ENTITY_PATHS = {
    "supporters": "supporters",
    "transactions": "transactions",
    "recurring_plans": "recurring-donation-plans",
    "campaigns": "campaigns",
}
_PATH_ENTITIES = {path: entity for entity, path in ENTITY_PATHS.items()}

TOKEN_PATH = "/oauth2/auth"
API_PREFIX = "/2.0/"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
RATE_WINDOW_SECONDS = 60.0

FILTERABLE = {
    "supporters": ("updated_at", "created_at"),
    "transactions": ("updated_at", "created_at", "purchased_at", "status"),
    "recurring_plans": ("updated_at", "created_at"),
    "campaigns": ("updated_at", "created_at"),
}

_ENTITY_ALTERNATIVES = "|".join(re.escape(path) for path in _PATH_ENTITIES)
_LIST_ROUTE = re.compile(rf"/2\.0/organizations/(\d+)/({_ENTITY_ALTERNATIVES})/?")
_RECORD_ROUTE = re.compile(rf"/2\.0/({_ENTITY_ALTERNATIVES})/(\d+)/?")
_UNSCOPED_ROUTE = re.compile(rf"/2\.0/({_ENTITY_ALTERNATIVES})/?")
_ORGANIZATION_ROUTE = re.compile(r"/2\.0/organizations/(\d+)/?")
_APP_ROUTE = re.compile(r"/2\.0/apps/([^/]+)/organizations/?")

_CONDITION = re.compile(r"([A-Za-z_]+)(<=|>=|<>|!=|=|<|>)(.*)", re.DOTALL)
# Only the forms observed to work: a UTC offset without a colon, Z, or a bare date.
_FILTER_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(Z|[+-]\d{4}))?")
_REDACTED_PARAMS = {"client_secret", "access_token", "token"}


@dataclass(frozen=True)
class SimRequest:
    """One request the simulator answered (status 0: the connection was dropped)."""

    method: str
    path: str
    params: dict[str, str]
    status: int


class ReadOnlyRecord(dict):
    """A snapshot of a record. Changing it in place would silently change nothing the
    API serves, so it refuses; copies (``dict(r)``, ``r.copy()``, ``copy.deepcopy``)
    are plain dicts."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("simulator records are read-only snapshots: change them with ClassySimulator.update()")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def copy(self) -> dict:  # type: ignore[override]
        return dict(self)

    def __reduce_ex__(self, protocol: object) -> tuple:
        return (dict, (dict(self),))


class RecordsView(MutableMapping[int, dict]):
    """id -> record for one entity, read through the simulator's lock.

    Reads return `ReadOnlyRecord` snapshots; assigning stores a record as given
    (``updated_at`` untouched) and ``del`` hard-deletes.
    """

    def __init__(self, table: Table, lock: threading.RLock) -> None:
        self._table = table
        self._lock = lock

    def __getitem__(self, id: int) -> dict:
        with self._lock:
            record = self._table.get(id) if isinstance(id, int) else None
        if record is None:
            raise KeyError(id)
        return ReadOnlyRecord(record)

    def __setitem__(self, id: int, record: dict) -> None:
        with self._lock:
            self._table.put(id, dict(record))

    def __delitem__(self, id: int) -> None:
        with self._lock:
            self._table.remove(id)

    def __iter__(self) -> Iterator[int]:
        with self._lock:
            ids = self._table.ids()
        return iter(ids)

    def __len__(self) -> int:
        return self._table.live_count

    def __contains__(self, id: object) -> bool:
        return isinstance(id, int) and self._table.position(id) is not None


@dataclass
class _Fault:
    remaining: int
    status: int | None  # None: drop the connection
    path_contains: str | None
    retry_after: int | None

    def matches(self, path: str, is_data: bool) -> bool:
        return self.path_contains in path if self.path_contains is not None else is_data


class _BadRequest(Exception):
    def __init__(self, body: dict) -> None:
        super().__init__(body)
        self.body = body


class ClassySimulator:
    """One simulated Classy organization and its OAuth server. Thread-safe."""

    def __init__(
        self,
        *,
        organization_id: int = 1001,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        seed: int = 0,
        supporters: int = 200,
        transactions: int = 1200,
        recurring_plans: int = 40,
        campaigns: int = 8,
        token_lifetime: int = 3600,
        rate_limit_per_minute: int = 1800,
        latency: float = 0.0,
        base_time: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """
        :param base_time: every generated datetime lies before it (default 2026-11-01Z),
            so the same seed always gives the same data.
        :param clock: "now" for mutation stamps and token expiry (default: real UTC now).
        :param monotonic: seconds for the rate-limit window (default `time.monotonic`),
            kept apart from `clock` so a frozen test clock cannot freeze the window.
        :param rate_limit_per_minute: 0 or less turns rate limiting off.
        """
        self.organization_id = organization_id
        self.token_lifetime = token_lifetime
        self.rate_limit_per_minute = rate_limit_per_minute
        self.latency = latency
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic or time.monotonic
        self._lock = threading.RLock()
        self._data = Dataset(
            seed=seed,
            organization_id=organization_id,
            base_time=base_time or DEFAULT_BASE_TIME,
            supporters=supporters,
            transactions=transactions,
            recurring_plans=recurring_plans,
            campaigns=campaigns,
        )
        self._tables = self._data.tables
        self.records: dict[str, RecordsView] = {
            entity: RecordsView(self._tables[entity], self._lock) for entity in ENTITY_PATHS
        }
        self.request_log: list[SimRequest] = []
        self._tokens: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._hits: deque[float] = deque()
        self._malformed: dict[str, list[dict]] = {entity: [] for entity in ENTITY_PATHS}

    # --- serving --------------------------------------------------------------------

    def settings_env(self, server: RunningServer) -> dict[str, str]:
        """Environment variables pointing supportersync at this account, served by `server`."""
        return settings_env(server.url, client_id=self._client_id, client_secret=self._client_secret,
                            organization_id=self.organization_id)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        """Serve over HTTP from a daemon thread until `RunningServer.stop()`."""
        return RunningServer(self, host, port)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request; raises `httpx.ConnectError` for a dropped connection."""
        path = request.url.path
        params = _logged_params(request.url.params)
        is_data = path.startswith(API_PREFIX)
        with self._lock:
            fault = self._take_fault(path, is_data)
        if is_data and self.latency > 0:
            time.sleep(self.latency)  # outside the lock: slow pages overlap like real ones
        with self._lock:
            if fault is not None and fault.status is None:
                self._log(request, params, 0)
                raise httpx.ConnectError("simulated dropped connection", request=request)
            if fault is not None:
                response = self._fault_response(fault, is_data)
            elif path == TOKEN_PATH:
                response = self._token(request)
            elif is_data:
                response = self._data_call(request)
            else:
                response = _json(404, {"error": "Not Found"})
            self._log(request, params, response.status_code)
        return response

    def _log(self, request: httpx.Request, params: dict[str, str], status: int) -> None:
        self.request_log.append(SimRequest(request.method, request.url.path, params, status))

    def reset_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    # --- mutations ------------------------------------------------------------------

    def add(self, entity: str, **fields: Any) -> dict:
        """Create a record (generated defaults, `fields` on top) stamped now; an `id`
        may be given if unused, e.g. the missing supporter of an orphan transaction."""
        table = self._table(entity)
        with self._lock:
            id = fields.pop("id", None)
            id = table.next_id() if id is None else int(id)
            now = self._stamp(None)
            defaults = {"created_at": now, "updated_at": now, "purchased_at": now, "status": "success"}
            record = table.template(id, defaults)
            record.update(_json_fields(fields))
            table.put(id, record)
            return dict(record)

    def update(self, entity: str, id: int, *, at: datetime | None = None, **fields: Any) -> dict:
        """Change fields of a record; ``updated_at`` becomes `at` (default now) unless given."""
        table = self._table(entity)
        if fields.get("id", id) != id:
            raise ValueError("a record's id cannot change: delete it and add another")
        with self._lock:
            record = table.get(id)
            if record is None:
                raise KeyError(f"no {entity} record {id}")
            record.update(_json_fields(fields))
            if "updated_at" not in fields:
                record["updated_at"] = format_datetime(self._stamp(at))
            table.put(id, record)
            return dict(record)

    def delete(self, entity: str, id: int) -> None:
        """Hard delete, as Classy does: the record is simply gone from every response."""
        with self._lock:
            self._table(entity).remove(id)

    def touch(self, entity: str, ids: Iterable[int], *, at: datetime | None = None) -> None:
        """Give many records one updated_at instant: a cluster, as a bulk edit makes."""
        table = self._table(entity)
        with self._lock:
            positions = []
            for id in ids:
                p = table.position(id)
                if p is None:
                    raise KeyError(f"no {entity} record {id}")
                positions.append(p)
            table.assign(positions, {"updated_at": self._stamp(at)})

    def refund(self, transaction_id: int, *, at: datetime | None = None) -> dict:
        """Refund a transaction: status, refunded_at and updated_at change; purchased_at does not."""
        table = self._table("transactions")
        with self._lock:
            p = table.position(transaction_id)
            if p is None:
                raise KeyError(f"no transactions record {transaction_id}")
            now = self._stamp(at)
            table.assign([p], {"status": "refunded", "refunded_at": now, "updated_at": now})
            return dict(table.record_at(p))

    def inject_malformed(self, entity: str, record: dict) -> None:
        """Serve `record` as-is (no id, wrong types...) after the regular records."""
        self._table(entity)
        with self._lock:
            self._malformed[entity].append(dict(record))

    def clear_malformed(self, entity: str | None = None) -> None:
        with self._lock:
            for name in [entity] if entity else list(self._malformed):
                self._malformed[name].clear()

    def _table(self, entity: str) -> Table:
        if entity not in self._tables:
            raise ValueError(f"unknown entity {entity!r}: use one of {', '.join(ENTITY_PATHS)}")
        return self._tables[entity]

    def _stamp(self, at: datetime | None) -> int:
        """Epoch seconds of `at` (default: the clock's now), truncated to the second."""
        moment = at if at is not None else self._clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return math.floor(moment.timestamp())

    # --- faults and credentials -----------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 500, path_contains: str | None = None, retry_after: int | None = None
    ) -> None:
        """The next `n` data calls (or any calls whose path contains `path_contains`,
        the token endpoint included) answer `status`. A 429 carries Retry-After
        (`retry_after`, default 1) and Laravel's throttle body."""
        if n > 0:
            with self._lock:
                self._faults.append(_Fault(n, status, path_contains, retry_after))

    def drop_connection_next(self, n: int = 1, *, path_contains: str | None = None) -> None:
        """The next `n` data calls fail at the transport: in-process they raise
        `httpx.ConnectError`; over HTTP the socket closes without a response."""
        if n > 0:
            with self._lock:
                self._faults.append(_Fault(n, None, path_contains, None))

    def revoke_tokens(self) -> None:
        """Every token issued so far now gets 401, as an expired one would."""
        with self._lock:
            self._tokens.clear()

    def set_credentials(self, client_id: str, client_secret: str) -> None:
        """Rotate the credentials; tokens already issued stay valid until they expire."""
        with self._lock:
            self._client_id = client_id
            self._client_secret = client_secret

    def _take_fault(self, path: str, is_data: bool) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(path, is_data):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: _Fault, is_data: bool) -> httpx.Response:
        status = fault.status or 500
        headers = self._rate_headers(remaining=0 if status == 429 else None) if is_data else {}
        if status == 429:
            retry_after = fault.retry_after if fault.retry_after is not None else 1
            headers["Retry-After"] = str(retry_after)
            return _json(429, {"message": "Too Many Attempts.", "retry_after": retry_after}, headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return _json(status, {"message": "Server Error" if status == 500 else phrase}, headers)

    # --- token endpoint -------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request", "error_description": "Use POST."})
        query = request.url.params
        if "client_id" in query or "client_secret" in query:
            return _json(400, {
                "error": "invalid_request",
                "error_description": "Client credentials must be sent in the request body, not the query string.",
            })
        form = _form(request)
        if form is None:
            return _json(400, {"error": "invalid_request", "error_description": "The request body is not valid JSON or form data."})
        if form.get("grant_type") != "client_credentials":
            return _json(400, {
                "error": "unsupported_grant_type",
                "error_description": "The authorization grant type is not supported by the authorization server.",
            })
        if form.get("client_id") != self._client_id or form.get("client_secret") != self._client_secret:
            return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        token = secrets.token_urlsafe(32)
        now = self._clock().timestamp()
        self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
        self._tokens[token] = now + self.token_lifetime
        return _json(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "bearer"})

    def _authorized(self, request: httpx.Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return expiry is not None and self._clock().timestamp() < expiry

    # --- rate limiting --------------------------------------------------------------

    def _admit(self) -> float | None:
        """Count one call in the sliding window; seconds to wait if over the limit."""
        if self.rate_limit_per_minute <= 0:
            return None
        now = self._monotonic()
        while self._hits and self._hits[0] <= now - RATE_WINDOW_SECONDS:
            self._hits.popleft()
        if len(self._hits) >= self.rate_limit_per_minute:
            return self._hits[0] + RATE_WINDOW_SECONDS - now
        self._hits.append(now)
        return None

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        if self.rate_limit_per_minute <= 0:
            return {}
        if remaining is None:
            remaining = max(0, self.rate_limit_per_minute - len(self._hits))
        return {"X-RateLimit-Limit": str(self.rate_limit_per_minute), "X-RateLimit-Remaining": str(remaining)}

    # --- data endpoints -------------------------------------------------------------

    def _data_call(self, request: httpx.Request) -> httpx.Response:
        if not self._authorized(request):
            return _json(
                401,
                {"error": "invalid_token", "error_description": "The access token is missing, invalid or expired."},
                {**self._rate_headers(), "WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        wait = self._admit()
        if wait is not None:
            retry_after = max(1, math.ceil(wait))
            return _json(
                429,
                {"message": "Too Many Attempts.", "retry_after": retry_after},
                {**self._rate_headers(remaining=0), "Retry-After": str(retry_after)},
            )
        response = self._route(request)
        response.headers.update(self._rate_headers())
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return _json(405, {"error": "Method Not Allowed"})
        path = request.url.path
        params = request.url.params
        try:
            if match := _LIST_ROUTE.fullmatch(path):
                if int(match[1]) != self.organization_id:
                    return _json(404, {"error": "Organization not found"})
                return self._list(_PATH_ENTITIES[match[2]], request)
            if match := _RECORD_ROUTE.fullmatch(path):
                return self._single(_PATH_ENTITIES[match[1]], int(match[2]), params.get("fields"))
            if _UNSCOPED_ROUTE.fullmatch(path):
                return _json(403, {"error": "Forbidden"})
            if match := _ORGANIZATION_ROUTE.fullmatch(path):
                if int(match[1]) != self.organization_id:
                    return _json(404, {"error": "Organization not found"})
                return _json(200, self._organization())
            if match := _APP_ROUTE.fullmatch(path):
                if match[1] != self._client_id:
                    return _json(403, {"error": "Forbidden"})
                return _json(200, _envelope(_base_url(request), [self._organization()], 1, 0, 20, 1))
        except _BadRequest as error:
            return _json(400, error.body)
        return _json(404, {"error": "Not Found"})

    def _organization(self) -> dict:
        stamp = format_datetime(self._data.start)
        return {"id": self.organization_id, "name": "Simulated Nonprofit", "status": "active",
                "currency_code": "USD", "created_at": stamp, "updated_at": stamp}

    def _single(self, entity: str, id: int, fields: str | None) -> httpx.Response:
        table = self._tables[entity]
        p = table.position(id)
        if p is not None:
            return _json(200, _trim(table.record_at(p), fields))
        for record in self._malformed[entity]:
            if record.get("id") in (id, str(id)):
                return _json(200, _trim(record, fields))
        return _json(404, {"error": "Not Found"})

    def _list(self, entity: str, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        page = _positive_int(params.get("page"), 1)
        per_page = min(_positive_int(params.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        spec = _parse_sort(entity, params.get("sort"))
        conditions = _parse_filter(entity, params.get("filter"))
        table = self._tables[entity]
        selection = table.query(spec, conditions)
        malformed = [record for record in self._malformed[entity] if _malformed_matches(record, conditions)]
        regular = len(selection)
        offset = (page - 1) * per_page
        rows = [table.record_at(p) for p in selection.slice(offset, offset + per_page)]
        if len(rows) < per_page and malformed:
            start = max(0, offset - regular)
            rows += malformed[start : start + per_page - len(rows)]
        fields = params.get("fields")
        if fields:
            rows = [_trim(row, fields) for row in rows]
        body = _envelope(_base_url(request), rows, page, offset, per_page, regular + len(malformed))
        return _json(200, body)


# --- request parsing --------------------------------------------------------------------

def _parse_sort(entity: str, raw: str | None) -> SortSpec:
    if not raw:
        return (("id", False),)
    spec = []
    for item in raw.split(","):
        field, _, direction = item.strip().partition(":")
        if field not in FIELDS[entity]:
            raise _BadRequest({"error": f"Invalid sort field: {field}"})
        if direction.lower() not in ("", "asc", "desc"):
            raise _BadRequest({"error": f"Invalid sort direction: {direction}"})
        spec.append((field, direction.lower() == "desc"))
    return tuple(spec)


def _parse_filter(entity: str, raw: str | None) -> list[Condition]:
    """Conditions from ``filter=``; several, comma-separated, are ANDed (undocumented
    on the real API, so the sync engine should not depend on it)."""
    if raw is None or raw == "":
        return []
    conditions = []
    for text in raw.split(","):
        match = _CONDITION.fullmatch(text)
        if match is None:
            raise _BadRequest({"error": f"Invalid filter: {text}"})
        field, op, value = match.groups()
        if field not in FILTERABLE[entity]:
            raise _BadRequest({"error": f"Invalid field for filtering: {field}"})
        invalid = {"error": f"Invalid value and/or operator for {field} filtering condition."}
        if field == "status":
            if not value:
                raise _BadRequest(invalid)
            conditions.append(Condition(field, op, value.lower()))
            continue
        epoch = parse_datetime(value) if _FILTER_DATETIME.fullmatch(value) else None
        if epoch is None:
            raise _BadRequest(invalid)
        conditions.append(Condition(field, op, epoch))
    return conditions


def _malformed_matches(record: dict, conditions: list[Condition]) -> bool:
    for condition in conditions:
        value = record.get(condition.field)
        if condition.field == "status":
            judged: int | str | None = value.lower() if isinstance(value, str) else None
        else:
            judged = parse_datetime(value)
        if judged is not None and not COMPARE[condition.op](judged, condition.value):
            return False
    return True


def _positive_int(raw: str | None, default: int) -> int:
    # Laravel falls back to the default for anything that is not a positive integer.
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


def _logged_params(params: httpx.QueryParams) -> dict[str, str]:
    return {key: "[redacted]" if key.lower() in _REDACTED_PARAMS else value for key, value in params.items()}


def _form(request: httpx.Request) -> dict[str, str] | None:
    body = request.content.decode("utf-8", errors="replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(body or "null")
        except ValueError:
            return None
        return {str(k): v for k, v in data.items()} if isinstance(data, dict) else None
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


def _json_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as Classy would send them: datetimes in the ``+0000`` form (consent dates
    in their microsecond form), dates bare."""
    out = {}
    for name, value in fields.items():
        if isinstance(value, datetime):
            epoch = math.floor((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
            value = format_consent(epoch) if name == "last_email_consent_decision_date" else format_datetime(epoch)
        elif isinstance(value, date):
            value = value.isoformat()
        out[name] = value
    return out


def _trim(record: dict, fields: str | None) -> dict:
    if not fields:
        return record
    wanted = [name.strip() for name in fields.split(",")]
    return {name: record[name] for name in wanted if name in record}


# --- responses --------------------------------------------------------------------------

def _base_url(request: httpx.Request) -> str:
    return str(request.url.copy_with(query=None, fragment=None))


def _envelope(path: str, rows: list, page: int, offset: int, per_page: int, total: int) -> dict:
    """Laravel's LengthAwarePaginator, links with ``page`` only as Laravel builds them."""
    last_page = max(1, math.ceil(total / per_page))
    return {
        "current_page": page,
        "data": rows,
        "first_page_url": f"{path}?page=1",
        "from": offset + 1 if rows else None,
        "last_page": last_page,
        "last_page_url": f"{path}?page={last_page}",
        "next_page_url": f"{path}?page={page + 1}" if page < last_page else None,
        "path": path,
        "per_page": per_page,
        "prev_page_url": f"{path}?page={page - 1}" if page > 1 else None,
        "to": offset + len(rows) if rows else None,
        "total": total,
    }


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    # PHP's json_encode: compact, \\u-escaped non-ASCII, escaped slashes.
    content = json.dumps(body, separators=(",", ":")).replace("/", "\\/").encode()
    return httpx.Response(
        status, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )


# --- HTTP server ------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: benchmarks measure the API, not TCP set-up
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK
    # would add 40 ms to every response.
    disable_nagle_algorithm = True
    simulator: ClassySimulator

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        request = httpx.Request(
            self.command, f"http://{host}{self.path}", headers=list(self.headers.items()), content=body
        )
        try:
            response = self.simulator.handle(request)
        except httpx.TransportError:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        except Exception as error:  # a simulator bug must not look like a network fault
            print(f"classy simulator error: {error!r}", file=sys.stderr)
            response = _json(500, {"message": "Server Error"})
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass  # request_log is the record; stderr stays quiet


class RunningServer:
    """A simulator served over HTTP from a daemon thread; a context manager."""

    def __init__(self, simulator: ClassySimulator, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"simulator": simulator})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="classy-sim", daemon=True)
        self._thread.start()

    @property
    def api_url(self) -> str:
        return self.url + "/2.0"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def settings_env(base_url: str, *, client_id: str, client_secret: str, organization_id: int) -> dict[str, str]:
    """The SUPPORTERSYNC_CLASSY_* variables for a simulator at `base_url` (in this process or another).

    The request budget is off: the simulator is on loopback and tests and benchmarks
    measure our side, not the budget (set SUPPORTERSYNC_CLASSY_REQUESTS_PER_MINUTE to test it).
    """
    return {
        "SUPPORTERSYNC_CLASSY_CLIENT_ID": client_id,
        "SUPPORTERSYNC_CLASSY_CLIENT_SECRET": client_secret,
        "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID": str(organization_id),
        "SUPPORTERSYNC_CLASSY_API_URL": base_url + "/2.0",
        "SUPPORTERSYNC_CLASSY_TOKEN_URL": base_url + TOKEN_PATH,
        "SUPPORTERSYNC_CLASSY_REQUESTS_PER_MINUTE": "0",
    }


# --- command line -----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """Serve a simulated account until killed; the base URL is the first stdout line."""
    parser = argparse.ArgumentParser(
        prog="python -m supportersync.testing.classy_sim", description="Serve a simulated Classy account."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--organization-id", type=int, default=1001)
    parser.add_argument("--client-id", default="sim-client-id")
    parser.add_argument("--client-secret", default="sim-client-secret")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supporters", type=int, default=200)
    parser.add_argument("--transactions", type=int, default=1200)
    parser.add_argument("--recurring-plans", type=int, default=40)
    parser.add_argument("--campaigns", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each data request")
    parser.add_argument("--rate-limit", type=int, default=1800, help="requests per minute; 0 turns it off")
    parser.add_argument("--token-lifetime", type=int, default=3600)
    args = parser.parse_args(argv)
    simulator = ClassySimulator(
        organization_id=args.organization_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        seed=args.seed,
        supporters=args.supporters,
        transactions=args.transactions,
        recurring_plans=args.recurring_plans,
        campaigns=args.campaigns,
        token_lifetime=args.token_lifetime,
        rate_limit_per_minute=args.rate_limit,
        latency=args.latency,
    )
    server = simulator.serve(args.host, args.port)
    print(server.url, flush=True)
    print(
        f"classy simulator: organization {args.organization_id}, {args.supporters} supporters, "
        f"{args.transactions} transactions; token URL {server.token_url}",
        file=sys.stderr,
        flush=True,
    )
    stopped = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # so `finally` closes the socket
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
