"""A small Mailchimp Marketing API v3 client on httpx: the nine endpoints we need.

Why not the SDK: see /docs/mailchimp.md. The transport is injected (tests pass the
simulator's `MockTransport`, or use pytest-httpx). Retries live in :meth:`_send`
only: back off on 429, 5xx, an empty 403 and transport errors, honouring
Retry-After; GET/PUT/PATCH/DELETE are retried, a POST only when Mailchimp refused it
outright (429, empty 403), because it was then not processed.

The API key goes out only to the API's own origin (never to a batch archive link),
and no message, log line or repr contains it.

Errors, all `supportersync.errors.PluginError` (exit 4 from `supportersync run`)::

    MailchimpError                    the plugin could not talk to Mailchimp
    ├── MailchimpAuthError            401/403: key invalid, disabled, missing, wrong datacenter
    ├── MailchimpNotFound             404: the audience (or another resource) does not exist
    ├── MailchimpUnavailable          network, 429, 5xx: still failing after all retries
    └── MailchimpRequestError         any other refusal (400...): .status .title .detail .errors

Member-level refusals inside bulk calls are not exceptions: they come back as data
(:class:`OpResult`, `errors[]`), so one person's problem never fails a push.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from supportersync import __version__
from supportersync.config import Secret
from supportersync.errors import PluginError
from supportersync.mailchimp.settings import ENV_API_KEY, MAX_CONNECTIONS, MailchimpSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

PAGE_SIZE = 1000
"""Mailchimp's largest `count`."""
SEGMENT_CHUNK = 500
"""At most 500 members_to_add (and as many members_to_remove) per segment call."""
OPS_PER_BATCH = 1000
DIRECT_LIMIT = 10
"""Up to this many member operations go out as plain requests: a batch is not worth its polling."""
IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD"})


# -- errors -------------------------------------------------------------------------


class MailchimpError(PluginError):
    """Something the Mailchimp plugin could not do."""


class MailchimpAuthError(MailchimpError):
    """Mailchimp refused the API key (invalid, disabled, missing, other datacenter)."""


class MailchimpNotFound(MailchimpError):
    """A resource (usually the audience) does not exist in this account."""


class MailchimpUnavailable(MailchimpError):
    """Mailchimp could not be reached, or kept answering 429/5xx after every retry."""


class MailchimpRequestError(MailchimpError):
    """Mailchimp refused a request (a 4xx other than auth and not-found)."""

    def __init__(self, message: str, *, status: int, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []


@dataclass(frozen=True)
class Problem:
    """Mailchimp's problem+json: match on status and title, never on `type`."""

    status: int
    title: str
    detail: str
    errors: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_response(cls, status: int, body: Any) -> Problem:
        if not isinstance(body, dict):
            return cls(status, httpx.codes.get_reason_phrase(status) or "Error", "")
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        return cls(int(body.get("status") or status), str(body.get("title") or ""),
                   str(body.get("detail") or ""), tuple(e for e in errors if isinstance(e, dict)))

    def describe(self) -> str:
        """`Invalid Resource: Your merge fields were invalid. (GIFTFIRST: Please enter a date)`"""
        text = f"{self.title}: {self.detail}" if self.detail else self.title
        fields = [f"{e.get('field')}: {e.get('message')}" for e in self.errors if e.get("field") or e.get("message")]
        if fields:
            text += f" ({'; '.join(fields)})"
        return text


@dataclass(frozen=True)
class Operation:
    """One member write, sent alone or inside a batch."""

    method: str
    path: str
    operation_id: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class OpResult:
    operation_id: str
    status: int
    """HTTP status of the operation; 0 when it never got an answer."""
    body: Any = None
    transient: bool = False
    """True: it may work next time (network, 429, 5xx, results lost); not the member's fault."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def problem(self) -> Problem:
        return Problem.from_response(self.status, self.body)


class _Retry(Exception):
    """A response worth trying again (429, 5xx, empty 403)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _KeyAuth(httpx.Auth):
    """HTTP Basic with the key as password, for the API's origin only."""

    def __init__(self, key: Secret, origin: tuple[str, str, int | None]) -> None:
        self._key = key
        self._origin = origin

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if (request.url.scheme, request.url.host, request.url.port) == self._origin:
            token = base64.b64encode(f"supportersync:{self._key.reveal()}".encode()).decode()
            request.headers["Authorization"] = f"Basic {token}"
        yield request

    def __repr__(self) -> str:
        return "_KeyAuth(********)"


# -- the client ----------------------------------------------------------------------


class MailchimpClient:
    """Talks to one Mailchimp account; at most `max_connections` requests at once."""

    def __init__(
        self,
        api_key: Secret,
        api_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = 60.0,
        max_retries: int = 5,
        batch_timeout: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        poll_delays: Iterable[float] | None = None,
        direct_limit: int = DIRECT_LIMIT,
        ops_per_batch: int = OPS_PER_BATCH,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        base = httpx.URL(self.api_url + "/")
        self.max_connections = max(1, min(max_connections, MAX_CONNECTIONS))
        self._http = httpx.Client(
            base_url=base,
            auth=_KeyAuth(api_key, (base.scheme, base.host, base.port)),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=self.max_connections,
                                max_keepalive_connections=self.max_connections),
            headers={"User-Agent": f"supportersync/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.max_connections, thread_name_prefix="mailchimp")
        self.max_retries = max_retries
        self.batch_timeout = batch_timeout
        self._sleep = sleep
        self._poll_delays = poll_delays
        self.direct_limit = direct_limit
        self.ops_per_batch = ops_per_batch
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: MailchimpSettings, **kwargs: Any) -> MailchimpClient:
        kwargs.setdefault("max_connections", settings.max_connections)
        kwargs.setdefault("timeout", settings.timeout_seconds)
        kwargs.setdefault("max_retries", settings.max_retries)
        kwargs.setdefault("batch_timeout", settings.batch_timeout_seconds)
        return cls(settings.api_key, settings.api_url, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> MailchimpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MailchimpClient({self.api_url!r})"

    # -- plumbing ----------------------------------------------------------------------

    def _send(self, method: str, url: str, *, params: dict[str, Any] | None = None,
              body: Any = None) -> httpx.Response:
        """One request with backoff; returns any final response, raises MailchimpUnavailable."""
        idempotent = method in IDEMPOTENT

        def worth_retrying(exc: BaseException) -> bool:
            if isinstance(exc, _Retry):
                refused = exc.response.status_code == 429 or (exc.response.status_code == 403
                                                              and not exc.response.content)
                return idempotent or refused
            return idempotent and isinstance(exc, httpx.TransportError)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    with self._lock:
                        self.requests += 1
                    response = self._http.request(method, url, params=params,
                                                  content=None if body is None else json.dumps(body),
                                                  headers={"Content-Type": "application/json"} if body is not None
                                                  else None)
                    log.debug("mailchimp %s %s -> %s", method, _path(url), response.status_code)
                    status = response.status_code
                    if status == 429 or status >= 500 or (status == 403 and not response.content):
                        raise _Retry(response)
                    return response
        except _Retry as exc:
            problem = Problem.from_response(exc.response.status_code, _json(exc.response))
            raise MailchimpUnavailable(
                f"Mailchimp kept failing: {method} {_path(url)} answered {problem.status} "
                f"{problem.describe()}".rstrip() + f" after {self._attempts(idempotent, exc)}.",
                hint="It is retried on the next run; nothing was lost.",
            ) from None
        except httpx.TransportError as exc:
            raise MailchimpUnavailable(
                f"Cannot reach Mailchimp at {self.api_url} ({type(exc).__name__}: {exc or 'no answer'}) "
                f"after {self._attempts(idempotent, exc)}.",
                hint="Check the network (and SUPPORTERSYNC_MAILCHIMP_API_URL if set); the next run catches up.",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempts(self, idempotent: bool, exc: BaseException) -> str:
        retried = idempotent or (isinstance(exc, _Retry) and exc.response.status_code in (429, 403))
        return f"{self.max_retries + 1} attempts" if retried and self.max_retries else "1 attempt (not retried)"

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry):
            after = exc.response.headers.get("Retry-After")
            if after and after.strip().isdigit():
                return min(float(after), 120.0)
        return wait_random_exponential(multiplier=0.5, max=30)(state)

    def _count_retry(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """Send one call; return the JSON answer (None for 204) or raise a MailchimpError."""
        response = self._send(method, path.lstrip("/"), params=params, body=body)
        payload = _json(response)
        if response.is_success:
            return payload
        raise error_for(response.status_code, payload, f"{method} {path}")

    def map(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run `func` over `items` with at most max_connections at once; results in order."""
        items = list(items)
        if len(items) <= 1:
            return [func(item) for item in items]
        return list(self._pool.map(func, items))

    # -- account and audience ---------------------------------------------------------

    def ping(self) -> str:
        return str((self.request("GET", "ping") or {}).get("health_status", ""))

    def account(self) -> dict[str, Any]:
        return self.request("GET", "", params={"fields": "account_id,account_name,email"}) or {}

    def audience(self, list_id: str) -> dict[str, Any]:
        return self.request("GET", f"lists/{list_id}", params={"fields": "id,name,stats"}) or {}

    def merge_fields(self, list_id: str) -> list[dict[str, Any]]:
        return self._all(f"lists/{list_id}/merge-fields", "merge_fields",
                         "merge_fields.merge_id,merge_fields.tag,merge_fields.name,merge_fields.type,"
                         "merge_fields.required")

    def create_merge_field(self, list_id: str, tag: str, name: str, kind: str) -> dict[str, Any]:
        body: dict[str, Any] = {"tag": tag, "name": name, "type": kind, "required": False, "public": False}
        if kind == "date":
            body["options"] = {"date_format": "YYYY-MM-DD"}
        return self.request("POST", f"lists/{list_id}/merge-fields", body=body) or {}

    def static_segments(self, list_id: str) -> list[dict[str, Any]]:
        """Tags, as Mailchimp exposes them: static segments with an id."""
        return self._all(f"lists/{list_id}/segments", "segments", "segments.id,segments.name",
                         extra={"type": "static"})

    def create_static_segment(self, list_id: str, name: str) -> dict[str, Any]:
        return self.request("POST", f"lists/{list_id}/segments", body={"name": name, "static_segment": []}) or {}

    def change_segment(self, list_id: str, segment_id: int | str, add: Sequence[str] = (),
                       remove: Sequence[str] = ()) -> dict[str, Any]:
        """Add and remove one tag for up to 500 members each way; read `errors` for who failed."""
        if len(add) > SEGMENT_CHUNK or len(remove) > SEGMENT_CHUNK:
            raise ValueError(f"at most {SEGMENT_CHUNK} members each way per segment call")
        return self.request("POST", f"lists/{list_id}/segments/{segment_id}",
                            body={"members_to_add": list(add), "members_to_remove": list(remove)}) or {}

    def members(self, list_id: str, *, status: str | None = None, since: datetime | None = None,
                fields: str = "members.email_address,members.status,members.last_changed") -> list[dict[str, Any]]:
        """Every member (optionally one status, changed since an instant); pages fetched in parallel."""
        extra: dict[str, Any] = {}
        if status:
            extra["status"] = status
        if since is not None:
            extra["since_last_changed"] = since.replace(microsecond=0).isoformat()
        return self._all(f"lists/{list_id}/members", "members", fields, extra=extra)

    def _all(self, path: str, key: str, fields: str, *, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        def fetch(offset: int) -> dict[str, Any]:
            params = {**(extra or {}), "count": PAGE_SIZE, "offset": offset, "fields": f"{fields},total_items"}
            return self.request("GET", path, params=params) or {}

        first = fetch(0)
        items = list(first.get(key) or [])
        total = int(first.get("total_items") or 0)
        for page in self.map(fetch, range(PAGE_SIZE, total, PAGE_SIZE)):
            items.extend(page.get(key) or [])
        return items

    # -- member writes -----------------------------------------------------------------

    def execute(self, operations: Sequence[Operation]) -> Iterator[list[OpResult]]:
        """Run member operations, yielding each finished group's results (to record as we go).

        A few go out directly (in parallel); more go through `POST /batches`, whose
        result archive is read operation by operation. Any operation whose result we
        could not learn comes back `transient`, so the next run tries it again.
        """
        if not operations:
            return
        if len(operations) <= self.direct_limit:
            yield self.map(self._direct, operations)
            return
        chunks = [list(operations[i:i + self.ops_per_batch]) for i in range(0, len(operations), self.ops_per_batch)]
        yield from self._batches(chunks)

    def _direct(self, op: Operation) -> OpResult:
        try:
            response = self._send(op.method, op.path.lstrip("/"), body=op.body)
        except MailchimpUnavailable as exc:
            return OpResult(op.operation_id, 0, {"title": "Unavailable", "detail": exc.message}, transient=True)
        payload = _json(response)
        if response.status_code in (401, 403):
            raise error_for(response.status_code, payload, f"{op.method} {op.path}")
        return OpResult(op.operation_id, response.status_code, payload)

    def _batches(self, chunks: list[list[Operation]]) -> Iterator[list[OpResult]]:
        def submit(chunk: list[Operation]) -> tuple[list[Operation], str | None, str]:
            body = {"operations": [
                {"method": op.method, "path": "/" + op.path.lstrip("/"), "operation_id": op.operation_id,
                 **({"body": json.dumps(op.body)} if op.body is not None else {})}
                for op in chunk]}
            try:
                return chunk, str(self.request("POST", "batches", body=body)["id"]), ""
            except (MailchimpUnavailable, MailchimpRequestError) as exc:
                return chunk, None, exc.message

        def poll(batch_id: str) -> dict[str, Any]:
            try:
                return self.request("GET", f"batches/{batch_id}") or {}
            except MailchimpUnavailable:
                return {}  # polls are reads: try again on the next round

        pending: dict[str, list[Operation]] = {}
        for chunk, batch_id, problem in self.map(submit, chunks):
            if batch_id is None:
                yield _lost(chunk, f"batch not accepted: {problem}")
            else:
                pending[batch_id] = chunk
        deadline = time.monotonic() + self.batch_timeout
        delays = iter(self._poll_delays) if self._poll_delays is not None else _poll_schedule()
        while pending:
            self._sleep(next(delays, 10.0))
            ids = list(pending)
            finished = [(batch_id, status) for batch_id, status in zip(ids, self.map(poll, ids), strict=True)
                        if status.get("status") == "finished"]
            # Each batch's results are handed over as soon as they are read, to be recorded.
            futures = [self._pool.submit(self._batch_results, pending.pop(batch_id), status)
                       for batch_id, status in finished]
            for future in as_completed(futures):
                yield future.result()
            if pending and time.monotonic() > deadline:
                for batch_id, chunk in pending.items():
                    yield _lost(chunk, f"batch {batch_id} did not finish within {self.batch_timeout:g} s")
                return

    def _batch_results(self, chunk: list[Operation], status: dict[str, Any]) -> list[OpResult]:
        url = status.get("response_body_url") or ""
        if not url:
            return _lost(chunk, "the batch finished without a result archive")
        try:
            # An absolute link elsewhere (S3 for Mailchimp): _KeyAuth keeps the key off it.
            response = self._send("GET", url)
            if not response.is_success:
                return _lost(chunk, f"the batch result archive answered {response.status_code} (expired?)")
            rows = read_archive(response.content)
        except (MailchimpUnavailable, ValueError, tarfile.TarError, OSError) as exc:
            return _lost(chunk, f"the batch result archive could not be read: {exc}")
        by_id = {str(row.get("operation_id")): row for row in rows if isinstance(row, dict)}
        results = []
        for op in chunk:
            row = by_id.get(op.operation_id)
            if row is None:
                results.append(OpResult(op.operation_id, 0, {"title": "Missing",
                                                             "detail": "no result in the batch archive"}, True))
                continue
            code = int(row.get("status_code") or 0)
            results.append(OpResult(op.operation_id, code, _loads(row.get("response")),
                                    transient=code == 0 or code == 429 or code >= 500))
        return results


# -- helpers --------------------------------------------------------------------------


def error_for(status: int, payload: Any, what: str) -> MailchimpError:
    """The typed error for a refused call; never includes the key."""
    problem = Problem.from_response(status, payload)
    if status == 401:
        if "disabled" in problem.detail.lower():
            return MailchimpAuthError(
                f"Mailchimp refused the API key: it has been disabled (401 {problem.title}: {problem.detail}).",
                hint=f"Mailchimp disables keys that leaked. Create a new key and set {ENV_API_KEY}.")
        if problem.title == "API Key Missing":
            return MailchimpAuthError(f"Mailchimp received no API key (401 {problem.title}).",
                                      hint=f"Set {ENV_API_KEY}.")
        return MailchimpAuthError(
            f"Mailchimp refused the API key (401 {problem.title}): the key is wrong or revoked, or belongs "
            "to another datacenter than the one called.",
            hint=f"Check {ENV_API_KEY} (and SUPPORTERSYNC_MAILCHIMP_API_URL if set).")
    if status == 403:
        return MailchimpAuthError(f"Mailchimp forbids {what}: {problem.describe()}.",
                                  hint="Check the key's account and permissions.")
    if status == 404:
        return MailchimpNotFound(f"Mailchimp has no {what.split(' ', 1)[-1]} (404 {problem.title}).")
    return MailchimpRequestError(f"Mailchimp refused {what}: {problem.status} {problem.describe()}.",
                                 status=status, title=problem.title, detail=problem.detail,
                                 errors=list(problem.errors))


def read_archive(content: bytes) -> list[dict[str, Any]]:
    """Rows of a batch result archive: a gzipped tar of JSON arrays (plus a `./` entry)."""
    rows: list[dict[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            data = handle.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            parsed = json.loads(data or b"[]")
            rows.extend(parsed if isinstance(parsed, list) else [parsed])
    return rows


def _lost(chunk: Sequence[Operation], why: str) -> list[OpResult]:
    log.warning("mailchimp: %d operation(s) without a result: %s", len(chunk), why)
    return [OpResult(op.operation_id, 0, {"title": "No result", "detail": why}, transient=True) for op in chunk]


def _poll_schedule() -> Iterator[float]:
    # Start soon (small batches finish fast), then back off to every 10 s.
    delay = 0.1
    while True:
        yield delay
        delay = min(delay * 1.5, 10.0)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return text or None
    try:
        return json.loads(text)
    except ValueError:
        return {"detail": text[:500]}


def _path(url: str) -> str:
    # Archive links carry signatures in their query: log the path only.
    return httpx.URL(url).path if "://" in url else "/" + url.split("?", 1)[0]
