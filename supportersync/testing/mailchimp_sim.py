"""A simulated Mailchimp account that speaks Marketing API v3 and enforces its rules.

Use it in-process (`httpx.Client(transport=sim.transport())`), over loopback HTTP
(`with sim.serve() as server: ... server.api_url`), or from a shell, which prints the
base API URL and serves until killed:

    python -m supportersync.testing.mailchimp_sim --port 0 --latency 0.05

The rules live with the state they protect:

    mailchimp_model     Member, Event, SimRequest, ApiError, subscriber_hash
    mailchimp_rules     fake addresses, merge-field values and definitions
    mailchimp_audience  members, tags (= static segments), the status rules
    mailchimp_batches   batch lifecycle and the result archive
    mailchimp_http      auth header, paging, `fields`, responses
    mailchimp_server    the threaded loopback server
    mailchimp_sim       this module: routing, limits, and the helpers tests call
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from supportersync.testing.mailchimp_audience import Audience
from supportersync.testing.mailchimp_batches import Batch, batch_json, build_archive, new_batch, stage_after
from supportersync.testing.mailchimp_http import (
    Call,
    api_key_from,
    json_body,
    json_response,
    origin,
    page,
    pick_fields,
    problem_response,
    time_param,
)
from supportersync.testing.mailchimp_model import (
    STATUS_TITLES,
    STATUSES,
    ApiError,
    Event,
    Member,
    SimRequest,
    invalid,
    iso,
    not_found,
    schema_error,
    subscriber_hash,
)
from supportersync.testing.mailchimp_rules import check_merge_values, require_status
from supportersync.testing.mailchimp_server import RunningServer

__all__ = ["MailchimpSimulator", "Member", "RunningServer", "SimRequest", "main", "subscriber_hash"]

SIM_PREFIX = "/_sim/"  # not Mailchimp: where batch archives are served, like its S3 links
_BATCH_POLL = re.compile(r"/3\.0/batches/[^/]+/?")
_LIST = r"/lists/(?P<list_id>[^/]+)"
_MEMBER = _LIST + r"/members/(?P<key>[^/]+)"
_SEGMENT = _LIST + r"/segments/(?P<segment_id>[^/]+)"
_BATCH = r"/batches/(?P<batch_id>[^/]+)"

Route = tuple[str, "re.Pattern[str]", Callable[..., tuple[int, Any]]]


@dataclass
class _Failure:
    remaining: int
    status: int
    path_contains: str | None
    bare: bool


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class MailchimpSimulator:
    """One Mailchimp account with one audience. Thread-safe: all state sits behind one lock."""

    def __init__(
        self,
        *,
        api_key: str = "0123456789abcdef0123456789abcdef-us21",
        audience_id: str = "sim-audience",
        audience_name: str = "Supporters",
        account_name: str = "Simulated Charity",
        latency: float = 0.0,
        max_connections: int = 10,
        batch_steps: int = 2,
        merge_fields: list[dict[str, Any]] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if "-" not in api_key:
            raise ValueError("A Mailchimp API key ends with its datacenter, like ...-us21")
        self.api_key = api_key
        self.datacenter = api_key.rsplit("-", 1)[1]
        self.account_name = account_name
        self.latency = latency
        self.max_connections = max_connections
        self.batch_steps = batch_steps
        self.audience = Audience(
            list_id=audience_id, name=audience_name, merge_fields=merge_fields, clock=clock or _utc_now
        )
        # The audience's own containers, exposed so tests can read (and arrange) state.
        self.members: dict[str, Member] = self.audience.members
        self.merge_fields: dict[str, dict[str, Any]] = self.audience.merge_fields
        self.events: list[Event] = self.audience.events
        self.rejections = self.audience.rejections
        self.request_log: list[SimRequest] = []
        self.batches: dict[str, Batch] = {}
        self.peak_in_flight = 0
        self._lock = threading.RLock()
        self._in_flight = 0
        self._failures: list[_Failure] = []
        self._disabled = False
        self._routes = self._build_routes()

    @property
    def audience_id(self) -> str:
        return self.audience.id

    # -- transports ------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        return RunningServer(self.handle, host, port)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one HTTP request: the whole API, plus the batch-archive downloads."""
        path = request.url.path
        # Archive downloads stand in for Mailchimp's S3 links, outside the account's limit.
        counted = not path.startswith(SIM_PREFIX)
        over_limit = False
        if counted:
            with self._lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                over_limit = self._in_flight > self.max_connections
        try:
            # Sleeping inside the in-flight window is what makes parallel clients collide.
            if self.latency > 0:
                time.sleep(self.latency)
            if over_limit:
                response = problem_response(self._too_many())
            else:
                response = self._planned_failure(path) or self._answer(request)
        finally:
            if counted:
                with self._lock:
                    self._in_flight -= 1
        poll = request.method == "GET" and _BATCH_POLL.fullmatch(path) is not None
        with self._lock:
            self.request_log.append(
                SimRequest(request.method, path, response.status_code, request.url.query.decode(), poll)
            )
        return response

    def _too_many(self) -> ApiError:
        return ApiError(
            429,
            "Too Many Requests",
            f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith(SIM_PREFIX):
            return self._download(path)
        if path != "/3.0" and not path.startswith("/3.0/"):
            return problem_response(not_found())
        try:
            self._authenticate(request)
            call = Call(request.method, dict(request.url.params), json_body(request), origin(request.url))
            with self._lock:
                status, payload = self._dispatch(call, path[len("/3.0") :])
        except ApiError as error:
            return problem_response(error)
        return json_response(status, payload)

    def _authenticate(self, request: httpx.Request) -> None:
        key = api_key_from(request.headers.get("Authorization", ""))
        if not key:
            raise ApiError(401, "API Key Missing", "Your request did not include an API key.")
        host = request.url.host
        wrong_datacenter = host.endswith(".api.mailchimp.com") and host.split(".", 1)[0] != self.datacenter
        if key != self.api_key or wrong_datacenter:
            raise ApiError(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        if self._disabled:
            raise ApiError(401, "API Key Invalid", "This API key has been disabled")

    def _planned_failure(self, path: str) -> httpx.Response | None:
        with self._lock:
            for failure in self._failures:
                if failure.path_contains is None and path.startswith(SIM_PREFIX):
                    continue  # a bare fail_next() means the API, not the archive links
                if failure.path_contains is None or failure.path_contains in path:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    break
            else:
                return None
        if failure.bare:
            return httpx.Response(failure.status)
        if failure.status == 429:
            return problem_response(self._too_many())
        detail = "An unexpected internal error has occurred. Please contact Support for more information."
        return problem_response(ApiError(failure.status, STATUS_TITLES.get(failure.status, "Error"), detail))

    # -- routing -----------------------------------------------------------------------

    def _build_routes(self) -> list[Route]:
        table: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", "/", self._get_account),
            ("GET", "/ping", self._ping),
            ("GET", "/lists", self._get_lists),
            ("GET", _LIST, self._get_list),
            ("POST", _LIST, self._batch_subscribe),
            ("GET", _LIST + "/merge-fields", self._get_merge_fields),
            ("POST", _LIST + "/merge-fields", self._add_merge_field),
            ("GET", _LIST + r"/merge-fields/(?P<merge_id>[^/]+)", self._get_merge_field),
            ("GET", _LIST + "/members", self._get_members),
            ("POST", _LIST + "/members", self._post_member),
            ("GET", _MEMBER, self._get_member),
            ("PUT", _MEMBER, self._put_member),
            ("PATCH", _MEMBER, self._patch_member),
            ("DELETE", _MEMBER, self._archive_member),
            ("POST", _MEMBER + "/actions/delete-permanent", self._forget_member),
            ("GET", _MEMBER + "/tags", self._get_member_tags),
            ("POST", _MEMBER + "/tags", self._set_member_tags),
            ("GET", _LIST + "/segments", self._get_segments),
            ("POST", _LIST + "/segments", self._create_segment),
            ("GET", _SEGMENT, self._get_segment),
            ("POST", _SEGMENT, self._change_segment),
            ("DELETE", _SEGMENT, self._delete_segment),
            ("GET", "/batches", self._get_batches),
            ("POST", "/batches", self._submit_batch),
            ("GET", _BATCH, self._poll_batch),
            ("DELETE", _BATCH, self._delete_batch),
        ]
        return [(method, re.compile(pattern), handler) for method, pattern, handler in table]

    def _dispatch(self, call: Call, path: str) -> tuple[int, Any]:
        path = path.rstrip("/") or "/"
        path_known = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != call.method:
                path_known = True
                continue
            arguments = match.groupdict()
            if arguments.pop("list_id", self.audience.id) != self.audience.id:
                raise not_found()
            status, payload = handler(call, **arguments)
            if call.method == "GET":
                payload = pick_fields(payload, call.params.get("fields"), call.params.get("exclude_fields"))
            return status, payload
        if path_known:
            raise ApiError(405, "Method Not Allowed", "The requested method and resource are not compatible.")
        raise not_found()

    # -- account and audience ----------------------------------------------------------

    def _ping(self, call: Call) -> tuple[int, Any]:
        return 200, {"health_status": "Everything's Chimpy!"}

    def _get_account(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "account_id": hashlib.md5(self.api_key.encode()).hexdigest()[:20],
            "login_id": "1",
            "account_name": self.account_name,
            "email": "owner@simulated-charity.org",
            "first_name": "Sim",
            "last_name": "Owner",
            "username": "sim-owner",
            "role": "owner",
            "member_since": iso(self.audience.created_at),
            "pricing_plan_type": "monthly",
            "account_timezone": "UTC",
            "contact": {"company": self.account_name, "country": "US"},
            "pro_enabled": False,
            "total_subscribers": self.audience.stats()["member_count"],
        }

    def _list_json(self) -> dict[str, Any]:
        return {
            "id": self.audience.id,
            "web_id": 1,
            "name": self.audience.name,
            "contact": {"company": self.account_name, "country": "US"},
            "permission_reminder": "You gave to us and asked to hear from us.",
            "campaign_defaults": {"from_name": self.account_name, "from_email": "hello@simulated-charity.org"},
            "date_created": iso(self.audience.created_at),
            "list_rating": 0,
            "email_type_option": False,
            "double_optin": False,
            "visibility": "prv",
            "stats": self.audience.stats(),
        }

    def _get_lists(self, call: Call) -> tuple[int, Any]:
        return 200, {"lists": [self._list_json()], "total_items": 1}

    def _get_list(self, call: Call) -> tuple[int, Any]:
        return 200, self._list_json()

    def _get_merge_fields(self, call: Call) -> tuple[int, Any]:
        fields = list(self.merge_fields.values())
        return 200, {"merge_fields": page(call.params, fields), "list_id": self.audience.id, "total_items": len(fields)}

    def _get_merge_field(self, call: Call, merge_id: str) -> tuple[int, Any]:
        for definition in self.merge_fields.values():
            if str(definition["merge_id"]) == merge_id:
                return 200, definition
        raise not_found()

    def _add_merge_field(self, call: Call) -> tuple[int, Any]:
        return 200, self.audience.add_merge_field(call.body)

    # -- members -------------------------------------------------------------------------

    def _get_members(self, call: Call) -> tuple[int, Any]:
        status = call.params.get("status") or None
        if status is not None and status not in (*STATUSES, "archived"):
            raise schema_error("status", f"Unknown status {status!r}.")
        found = self.audience.list_members(
            status=status,
            since=time_param(call.params, "since_last_changed"),
            before=time_param(call.params, "before_last_changed"),
        )
        sort_field = call.params.get("sort_field")
        if sort_field in ("last_changed", "timestamp_opt", "timestamp_signup"):
            attribute = "last_changed" if sort_field == "last_changed" else "timestamp_opt"
            found.sort(key=lambda member: getattr(member, attribute), reverse=call.params.get("sort_dir") == "DESC")
        members = [self.audience.member_json(member) for member in page(call.params, found)]
        return 200, {"members": members, "list_id": self.audience.id, "total_items": len(found)}

    def _get_member(self, call: Call, key: str) -> tuple[int, Any]:
        return 200, self.audience.member_json(self.audience.get(key))

    def _put_member(self, call: Call, key: str) -> tuple[int, Any]:
        return 200, self.audience.member_json(self.audience.put(key, call.body, call.how))

    def _patch_member(self, call: Call, key: str) -> tuple[int, Any]:
        return 200, self.audience.member_json(self.audience.patch(key, call.body, call.how))

    def _post_member(self, call: Call) -> tuple[int, Any]:
        return 200, self.audience.member_json(self.audience.post(call.body, call.how))

    def _archive_member(self, call: Call, key: str) -> tuple[int, Any]:
        self.audience.archive(key, call.how)
        return 204, None

    def _forget_member(self, call: Call, key: str) -> tuple[int, Any]:
        self.audience.get(key)
        self.audience.forget(key, call.how + " delete-permanent")
        return 204, None

    def _batch_subscribe(self, call: Call) -> tuple[int, Any]:
        return 200, self.audience.batch_subscribe(call.body, call.via + "batch-subscribe")

    # -- tags and segments -----------------------------------------------------------------

    def _get_member_tags(self, call: Call, key: str) -> tuple[int, Any]:
        member = self.audience.get(key)
        tags = [self.audience.tag_named(name, create=False) for name in sorted(member.tags)]
        items = [{"id": t.id, "name": t.name, "date_added": iso(t.created_at)} for t in tags if t is not None]
        return 200, {"tags": page(call.params, items), "total_items": len(items)}

    def _set_member_tags(self, call: Call, key: str) -> tuple[int, Any]:
        self.audience.set_member_tags(key, call.body)
        return 204, None

    def _get_segments(self, call: Call) -> tuple[int, Any]:
        # Tags are Mailchimp's static segments; saved and fuzzy segments are not simulated.
        kind = call.params.get("type")
        tags = self.audience.segments() if kind in (None, "", "static") else []
        segments = [self.audience.segment_json(tag) for tag in page(call.params, tags)]
        return 200, {"segments": segments, "list_id": self.audience.id, "total_items": len(tags)}

    def _create_segment(self, call: Call) -> tuple[int, Any]:
        return 200, self.audience.segment_json(self.audience.create_segment(call.body))

    def _get_segment(self, call: Call, segment_id: str) -> tuple[int, Any]:
        return 200, self.audience.segment_json(self.audience.segment(segment_id))

    def _change_segment(self, call: Call, segment_id: str) -> tuple[int, Any]:
        return 200, self.audience.change_segment(segment_id, call.body)

    def _delete_segment(self, call: Call, segment_id: str) -> tuple[int, Any]:
        self.audience.delete_segment(segment_id)
        return 204, None

    # -- batch operations ---------------------------------------------------------------------

    def _get_batches(self, call: Call) -> tuple[int, Any]:
        batches = [batch_json(batch) for batch in self.batches.values()]
        return 200, {"batches": page(call.params, batches), "total_items": len(batches)}

    def _submit_batch(self, call: Call) -> tuple[int, Any]:
        if call.via:
            raise invalid("A batch operation cannot submit another batch.")
        pending = sum(1 for batch in self.batches.values() if batch.status != "finished")
        batch = new_batch(call.body, self.audience.now(), pending)
        self.batches[batch.id] = batch
        return 200, batch_json(batch)

    def _poll_batch(self, call: Call, batch_id: str) -> tuple[int, Any]:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise not_found()
        if batch.status != "finished" and not call.via:
            batch.polls += 1
            stage = stage_after(batch.polls, self.batch_steps)
            if stage == "finished":
                self._run_batch(batch, call.base_url)
            else:
                batch.status = stage
        return 200, batch_json(batch)

    def _delete_batch(self, call: Call, batch_id: str) -> tuple[int, Any]:
        if self.batches.pop(batch_id, None) is None:
            raise not_found()
        return 204, None

    def _run_batch(self, batch: Batch, base_url: str) -> None:
        results = []
        for operation in batch.operations:
            status, payload = self._run_operation(operation, base_url)
            results.append(
                {
                    "status_code": status,
                    "operation_id": operation.get("operation_id"),
                    "response": "" if payload is None else json.dumps(payload),
                }
            )
        batch.results = results
        batch.finished_operations = len(results)
        batch.errored_operations = sum(1 for result in results if result["status_code"] >= 400)
        batch.archive = build_archive(results)
        batch.response_body_url = f"{base_url}{SIM_PREFIX}batch-results/{batch.id}.tar.gz"
        batch.completed_at = self.audience.now()
        batch.status = "finished"

    def _run_operation(self, operation: dict[str, Any], base_url: str) -> tuple[int, Any]:
        """Run one operation as if it were its own request (minus auth, limits and latency)."""
        path, _, query = operation["path"].partition("?")
        if path == "/3.0" or path.startswith("/3.0/"):
            path = path[len("/3.0") :]
        params = dict(httpx.QueryParams(query))
        params.update({str(key): str(value) for key, value in (operation.get("params") or {}).items()})
        try:
            body = json.loads(operation["body"]) if operation.get("body") else None
        except ValueError:
            return 400, ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.").problem()
        try:
            return self._dispatch(Call(operation["method"], params, body, base_url, via="batch-op "), path)
        except ApiError as error:
            return error.status, error.problem()

    def _download(self, path: str) -> httpx.Response:
        match = re.fullmatch(re.escape(SIM_PREFIX) + r"batch-results/([^/]+)\.tar\.gz", path)
        with self._lock:
            batch = self.batches.get(match.group(1)) if match else None
        if batch is None or batch.archive is None:
            return httpx.Response(404, text="<Error><Code>NoSuchKey</Code></Error>")
        if batch.expired:
            return httpx.Response(403, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
        return httpx.Response(200, content=batch.archive, headers={"Content-Type": "application/x-gzip"})

    # -- helpers: acting as the person, an admin, or Mailchimp itself ------------------------------

    def add_member(
        self,
        email: str,
        *,
        status: str = "subscribed",
        merge_fields: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        unsubscribed_by: str = "self",
    ) -> Member:
        """Put someone in the audience directly (a sign-up form, an import), replacing any record."""
        email = email.strip()
        with self._lock:
            require_status(status, "status")
            values = check_merge_values(self.merge_fields, merge_fields or {}, creating=False)
            hashed = subscriber_hash(email)
            self.audience.forgotten.discard(hashed)  # people may always sign up again themselves
            old = self.members.get(hashed)
            now = self.audience.now()
            member = Member(
                email_address=email,
                status=status,
                merge_fields=values,
                tags=set(),
                last_changed=now,
                timestamp_opt=now,
                unsubscribe_reason=unsubscribed_by if status == "unsubscribed" else None,
            )
            self.members[hashed] = member
            self.events.append(Event(hashed, old.visible_status if old else None, status, "sim"))
            self.audience.tag(member, tags)
            return member

    def unsubscribe(self, email: str, *, by: str = "self") -> None:
        """The person unsubscribes ("self": a compliance state) or an admin does ("admin")."""
        if by not in ("self", "admin"):
            raise ValueError("by must be 'self' or 'admin'")
        with self._lock:
            member = self._require(email)
            self.audience.set_status(member, "unsubscribed", by, reason=by)

    def clean(self, email: str) -> None:
        """The address hard-bounced."""
        with self._lock:
            self.audience.set_status(self._require(email), "cleaned", "bounce")

    def forget(self, email: str) -> None:
        """Permanently delete the address (GDPR erasure): it can never be imported again."""
        with self._lock:
            self.audience.forget(email.strip(), "forget")

    def flag_for_compliance_review(self, email: str) -> None:
        with self._lock:
            self._require(email).compliance_review = True

    def confirm_opt_in(self, email: str) -> None:
        """The person clicks the double opt-in link that "pending" sent them."""
        with self._lock:
            member = self._require(email)
            if member.status != "pending":
                raise ValueError(f"{email} is {member.status}, not pending")
            member.compliance_review = False
            self.audience.set_status(member, "subscribed", "double-opt-in")

    def disable_key(self) -> None:
        with self._lock:
            self._disabled = True

    def fail_next(
        self, n: int = 1, *, status: int = 500, path_contains: str | None = None, bare: bool = False
    ) -> None:
        """Answer the next `n` matching requests with `status` (`bare`: no body at all); 0 adds nothing."""
        if n <= 0:
            return
        with self._lock:
            self._failures.append(_Failure(n, status, path_contains, bare))

    def expire_batch_results(self) -> None:
        """Every response_body_url handed out so far stops working, as Mailchimp's links do."""
        with self._lock:
            for batch in self.batches.values():
                batch.expired = True

    def member(self, email: str) -> Member | None:
        with self._lock:
            return self.members.get(subscriber_hash(email))

    def resubscribed(self) -> list[Event]:
        """Every time someone who had unsubscribed or bounced was set back to subscribed."""
        with self._lock:
            return [e for e in self.events if e.old in ("unsubscribed", "cleaned") and e.new == "subscribed"]

    def count_requests(
        self, *, method: str | None = None, path_contains: str | None = None, exclude_batch_polls: bool = True
    ) -> int:
        with self._lock:
            return sum(
                1
                for entry in self.request_log
                if (method is None or entry.method == method.upper())
                and (path_contains is None or path_contains in entry.path)
                and not (exclude_batch_polls and entry.batch_poll)
            )

    def reset_log(self) -> None:
        with self._lock:
            self.request_log.clear()
            self.peak_in_flight = 0

    def _require(self, email: str) -> Member:
        member = self.members.get(subscriber_hash(email))
        if member is None:
            raise KeyError(f"{email} is not in the simulated audience")
        return member


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m supportersync.testing.mailchimp_sim",
        description="Serve a simulated Mailchimp account on loopback; prints the API base URL, then serves until killed.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--api-key", default="0123456789abcdef0123456789abcdef-us21")
    parser.add_argument("--audience-id", default="sim-audience")
    parser.add_argument("--max-connections", type=int, default=10)
    parser.add_argument("--batch-steps", type=int, default=2)
    args = parser.parse_args(argv)
    sim = MailchimpSimulator(
        api_key=args.api_key,
        audience_id=args.audience_id,
        latency=args.latency,
        max_connections=args.max_connections,
        batch_steps=args.batch_steps,
    )
    with sim.serve(args.host, args.port) as server:
        print(server.api_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
