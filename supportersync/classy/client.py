"""The Classy API over httpx: token, request budget, retries, paging.

- The token comes from the token URL with the secret in the POST body only; it is
  renewed at 90% of `expires_in` and once more when a data call answers 401.
- Every request waits for the client-side budget (requests per minute), so we never
  cause 429s ourselves; the budget is shared by the threads of a full sync.
- 429, 5xx and transport errors are retried with exponential backoff and jitter
  (tenacity), honouring Retry-After. Nothing else is retried.
- Datetimes go out as `YYYY-MM-DDTHH:MM:SS+0000` and the query is encoded exactly once
  (httpx encodes `+` as `%2B`; a bare `+` would arrive as a space).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from supportersync import __version__
from supportersync.config import ClassySettings
from supportersync.errors import SourceAuthError, SourceError, SourceResponseError, SourceUnavailable

ENTITY_PATHS = {
    "supporters": "supporters",
    "transactions": "transactions",
    "recurring_plans": "recurring-donation-plans",
    "campaigns": "campaigns",
}
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class Page:
    data: list[Any]
    total: int
    last_page: int
    current_page: int
    per_page: int


class _Transient(Exception):
    """A failure worth retrying (429, 5xx, transport); carries Retry-After when given."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RequestBudget:
    """Spaces request starts evenly: at most `per_minute` a minute, across threads."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Push every later request back (the server asked us to wait)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


class ClassyClient:
    """A small interface over the organization-scoped endpoints the sync needs."""

    def __init__(self, settings: ClassySettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.organization_id = settings.organization_id
        self.requests = 0
        self.retries = 0
        self._sleep = sleep
        self._clock = clock
        self._budget = RequestBudget(settings.requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)),
            limits=httpx.Limits(max_connections=max(4, settings.concurrency * 2)),
            headers={"User-Agent": f"supportersync/{__version__}", "Accept": "application/json"},
        )
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._token_lock = threading.Lock()
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ClassyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls ------------------------------------------------------------

    def list_page(self, entity: str, *, page: int, per_page: int, sort: str, filter: str | None = None) -> Page:
        params: dict[str, Any] = {"page": page, "per_page": per_page, "sort": sort}
        if filter:
            params["filter"] = filter
        path = f"/organizations/{self.organization_id}/{ENTITY_PATHS[entity]}"
        body = self._get_json(path, params)
        return _parse_page(body, path)

    def get_record(self, entity: str, record_id: int) -> dict[str, Any] | None:
        """One record by id, or None when the source says it does not exist."""
        body = self._get_json(f"/{ENTITY_PATHS[entity]}/{int(record_id)}", {}, missing_ok=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise SourceResponseError(f"Classy answered a {type(body).__name__} for {entity} {record_id}.")
        return body

    def check_credentials(self) -> None:
        """Fetch a token now (raises SourceAuthError when refused)."""
        self._ensure_token(force=True)

    # -- plumbing ----------------------------------------------------------------

    def _get_json(self, path: str, params: dict[str, Any], *, missing_ok: bool = False) -> Any:
        url = self.settings.api_url.rstrip("/") + path
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(url, params, missing_ok)
        except _Transient as exc:
            raise SourceUnavailable(
                f"Classy kept failing for {path} after {self.settings.max_retries} retries: {exc.reason}.",
                hint="Check the network and Classy's status; the next run resumes from the last committed page.",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(initial=1, max=60)(state)
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), MAX_RETRY_AFTER)
            self._budget.pause(delay)
            return delay
        return backoff

    def _count_retry(self, _state: RetryCallState) -> None:
        with self._count_lock:
            self.retries += 1

    def _get_once(self, url: str, params: dict[str, Any], missing_ok: bool) -> Any:
        response = self._send("GET", url, params=params, headers={"Authorization": f"Bearer {self._ensure_token()}"})
        if response.status_code == 401:
            # Tokens can be revoked or expire early: renew once and repeat this call.
            token = self._ensure_token(force=True)
            response = self._send("GET", url, params=params, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                raise SourceAuthError(
                    "Classy refused a freshly issued token for this organization (401).",
                    hint="Check that the application behind SUPPORTERSYNC_CLASSY_CLIENT_ID has access to "
                    "SUPPORTERSYNC_CLASSY_ORGANIZATION_ID.",
                )
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (403, 404):
            raise SourceAuthError(
                f"Classy answered {response.status_code} for organization {self.organization_id}.",
                hint="Check SUPPORTERSYNC_CLASSY_ORGANIZATION_ID and that these credentials may read it.",
            )
        if response.status_code >= 400:
            raise SourceResponseError(
                f"Classy rejected the request ({response.status_code}): {_message(response)}."
            )
        try:
            return response.json()
        except ValueError:
            raise _Transient("the response was not JSON") from None

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._budget.acquire()
        with self._count_lock:
            self.requests += 1
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise _Transient(f"no answer within {self.settings.timeout_seconds:g} s") from None
        except httpx.TransportError as exc:
            raise _Transient(f"network error ({type(exc).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code} {_message(response)}", _retry_after(response))
        return response

    def _ensure_token(self, *, force: bool = False) -> str:
        with self._token_lock:
            if not force and self._token and self._clock() < self._token_renew_at:
                return self._token
            self._token, lifetime = self._fetch_token()
            # The official SDK renews at 90% of the lifetime; so do we.
            self._token_renew_at = self._clock() + lifetime * 0.9
            return self._token

    def _fetch_token(self) -> tuple[str, float]:
        secret = self.settings.client_secret
        data = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id or "",
            "client_secret": secret.reveal() if secret else "",
        }
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait, sleep=self._sleep, before_sleep=self._count_retry, reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send("POST", self.settings.token_url, data=data)
        except _Transient as exc:
            raise SourceUnavailable(
                f"Could not get a Classy token from {self.settings.token_url}: {exc.reason}.",
                hint="Check the network and SUPPORTERSYNC_CLASSY_TOKEN_URL.",
            ) from None
        if response.status_code in (400, 401, 403):
            raise SourceAuthError(
                "Classy refused the credentials (SUPPORTERSYNC_CLASSY_CLIENT_ID / SUPPORTERSYNC_CLASSY_CLIENT_SECRET).",
                hint="Copy them again from Classy's developer settings (the secret is shown only once).",
            )
        if response.status_code >= 300:
            raise SourceError(f"The Classy token endpoint answered {response.status_code}.")
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise SourceResponseError("The Classy token endpoint answered without an access_token.") from None
        return token, lifetime


def _parse_page(body: Any, path: str) -> Page:
    try:
        data = body["data"]
        if not isinstance(data, list):
            raise TypeError("data is not a list")
        return Page(
            data=data,
            total=int(body["total"]),
            last_page=int(body.get("last_page") or 1),
            current_page=int(body.get("current_page") or 1),
            per_page=int(body.get("per_page") or len(data) or 1),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceResponseError(f"Classy answered {path} without a valid page envelope ({exc}).") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        try:
            body = response.json()
            value = body.get("retry_after") if isinstance(body, dict) else None
        except ValueError:
            value = None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or ""
    if isinstance(body, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    return response.reason_phrase or ""
