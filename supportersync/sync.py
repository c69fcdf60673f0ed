"""Pulling one entity: the incremental walk, the full crawl, and storing a page.

Incremental guarantee: after a successful run, every record whose `updated_at` at the
source is older than the run's start minus the safety lag is stored in its latest
version. How:

- Records are read sorted by `updated_at, id` with a *closed* lower bound
  (`updated_at>=T`) and always from page 1: after each page we re-anchor T at the
  page's largest `updated_at` instead of trusting page N, so records that move while
  we read can not shift past us. Records at exactly T are read again and found
  unchanged by their hash: re-reading is idempotent, skipping is not.
- A page entirely inside one second (more records share one `updated_at` than fit a
  page) is read with `updated_at=T` page by page, and read again until one whole pass
  sees a stable `total` (records can only leave that second, never silently join it),
  then the walk goes on with `updated_at>T`.
- Each page's rows and the cursor are committed in one transaction; the stored cursor
  never passes run start minus the safety lag, so late commits at the source are read
  again next time. A killed run loses at most the page in flight.

Full crawl: pages sorted by `id` (insertions land at the end and updates do not move
records), fetched concurrently within the request budget; ids seen go to `sync_seen`,
and rows we hold that were not seen are confirmed gone one by one before being marked
`deleted_at`, unless the source returned far fewer records than we hold (delete guard).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from supportersync.classy.client import ClassyClient, Page
from supportersync.classy.entities import EntitySpec, MalformedRecord, source_id_of
from supportersync.config import SyncSettings
from supportersync.db.schema import sync_cursors, sync_seen
from supportersync.db.upsert import BulkUpsert, insert_ignore
from supportersync.errors import SourceResponseError, SyncAborted
from supportersync.jobs import Counts, RecordError, heartbeat, record_errors
from supportersync.timeutil import format_classy, isoformat, parse_datetime, utcnow

log = logging.getLogger(__name__)

INCREMENTAL_SORT = "updated_at:asc,id:asc"
FULL_SORT = "id:asc"
MAX_DENSE_PASSES = 5
MAX_CRAWLS = 2
VERIFY_DELETIONS_UP_TO = 500
GROUP_PAGES = 20
GROUP_SECONDS = 2.0

Progress = Callable[[str, Counts, int | None], None]


@dataclass
class EntityResult:
    entity: str
    mode: str
    counts: Counts = field(default_factory=Counts)
    cursor_before: dict[str, Any] | None = None
    cursor_after: dict[str, Any] | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    inserted_ids: set[int] = field(default_factory=set)
    updated_ids: set[int] = field(default_factory=set)
    deleted_ids: set[int] = field(default_factory=set)
    affected_supporters: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def as_details(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "records": self.counts.as_dict(),
            "cursor_before": self.cursor_before,
            "cursor_after": self.cursor_after,
            "notes": self.notes,
        }


@dataclass
class EntitySync:
    """Pulls one entity for one organization within one job."""

    engine: Engine
    client: ClassyClient
    spec: EntitySpec
    organization_id: int
    job_id: int
    settings: SyncSettings
    per_page: int = 100
    concurrency: int = 4
    progress: Progress | None = None
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self._last_beat = datetime.min.replace(tzinfo=self.clock().tzinfo)
        self._crawl_failed = 0
        self._bulk: BulkUpsert | None = None
        self._empty_crawl = False
        # Filled as pages commit, so a failed run still reports what it did.
        self.result = EntityResult(self.spec.key, "incremental")

    # -- entry point ----------------------------------------------------------------

    def run(self, mode: str) -> EntityResult:
        self.run_start = self.clock()
        self.cap = (self.run_start - timedelta(seconds=self.settings.safety_lag_seconds)).replace(microsecond=0)
        cursor = self._read_cursor()
        self.result.cursor_before = cursor
        if mode == "incremental" and cursor is None:
            self.result.notes.append("no cursor yet: the first run of an entity is a full sync")
            mode = "full"
        self.result.mode = mode
        if mode == "full":
            self._full()
        else:
            assert cursor is not None
            self._incremental(parse_datetime(cursor["updated_at"]), bool(cursor.get("strict")))  # type: ignore[arg-type]
        return self.result

    # -- incremental ----------------------------------------------------------------

    def _incremental(self, cursor_at: datetime, strict: bool) -> None:
        if self.settings.lookback_seconds:
            anchor, strict = cursor_at - timedelta(seconds=self.settings.lookback_seconds), False
        else:
            anchor = cursor_at
        self.result.window_start = anchor
        while True:
            op = ">" if strict else ">="
            page = self.client.list_page(self.spec.key, page=1, per_page=self.per_page, sort=INCREMENTAL_SORT,
                                         filter=f"updated_at{op}{format_classy(anchor)}")
            stamps = self._ordered_stamps(page)
            newest = max(stamps) if stamps else None
            if newest is not None and newest > anchor:
                self._store(page.data, cursor_at=newest, total=page.total)
            else:
                # Nothing newer: a strict anchor means the whole second at `anchor` is stored.
                self._store(page.data, cursor_at=anchor, total=page.total, strict=strict)
            if len(page.data) < self.per_page or page.last_page <= 1:
                break
            if newest is None:
                raise SourceResponseError(
                    f"Classy returned a full page of {self.spec.key} without any valid updated_at; cannot page on."
                )
            if newest > anchor:
                anchor, strict = newest, False
                continue
            # More records share this second than fit a page: read the second by itself.
            self._read_dense_second(anchor)
            strict = True
        self.result.window_end = self.cap
        self._finish_cursor()

    def _read_dense_second(self, second: datetime) -> None:
        query = f"updated_at={format_classy(second)}"
        for _ in range(MAX_DENSE_PASSES):
            first = self.client.list_page(self.spec.key, page=1, per_page=self.per_page,
                                          sort=INCREMENTAL_SORT, filter=query)
            totals = {first.total}
            self._store(first.data, cursor_at=second, total=first.total)
            for number in range(2, first.last_page + 1):
                page = self.client.list_page(self.spec.key, page=number, per_page=self.per_page,
                                             sort=INCREMENTAL_SORT, filter=query)
                totals.add(page.total)
                self._store(page.data, cursor_at=second, total=page.total)
            last = self.client.list_page(self.spec.key, page=1, per_page=1, sort=INCREMENTAL_SORT, filter=query)
            totals.add(last.total)
            if len(totals) == 1:
                return
            log.info("%s: records left the second %s while we read it; reading it again",
                     self.spec.key, isoformat(second))
        raise SourceResponseError(
            f"The {self.spec.key} sharing updated_at {isoformat(second)} kept changing while we read them "
            f"({MAX_DENSE_PASSES} passes); the next run will try again from there."
        )

    def _ordered_stamps(self, page: Page) -> list[datetime]:
        stamps = []
        for record in page.data:
            try:
                stamp = parse_datetime(record.get("updated_at")) if isinstance(record, dict) else None
            except (ValueError, TypeError):
                stamp = None
            if stamp is not None:
                stamps.append(stamp)
        if any(b < a for a, b in zip(stamps, stamps[1:])):
            # The walk is only correct on sorted pages; refuse rather than skip records.
            raise SourceResponseError(f"Classy returned {self.spec.key} out of updated_at order.")
        return stamps

    def _cursor_value(self, at: datetime, strict: bool = False) -> dict[str, Any]:
        if at > self.cap:
            return {"updated_at": isoformat(self.cap)}
        return {"updated_at": isoformat(at), "strict": True} if strict else {"updated_at": isoformat(at)}

    def _finish_cursor(self) -> None:
        self.result.cursor_after = read_cursor(self.engine, self.organization_id, self.spec.key)

    # -- full -----------------------------------------------------------------------

    def _full(self) -> None:
        self.result.window_start = None
        for attempt in range(1, MAX_CRAWLS + 1):
            totals, seen = self._crawl()
            # With pages sorted by id, new records land at the end and cannot hide others;
            # only a total that shrank mid-crawl (a deletion) can have shifted one past us.
            if seen + self._crawl_failed >= totals[0] and min(totals) >= totals[0]:
                break
            if attempt == MAX_CRAWLS:
                raise SyncAborted(
                    f"The full {self.spec.key} crawl is incomplete: Classy reported {max(totals)} records but we "
                    f"received {seen} distinct ones (the data changed while we read it, or a response was "
                    "truncated). Nothing was marked deleted; run the full sync again."
                )
            log.info("%s: the source changed during the crawl; crawling again", self.spec.key)
        self._mark_deleted(seen, totals)
        with self.engine.begin() as conn:
            self._write_cursor(conn, self._cursor_value(self.cap), full=True)
        self.result.window_end = self.cap
        self._finish_cursor()

    def _crawl(self) -> tuple[list[int], int]:
        self._crawl_failed = 0
        table = self.spec.table
        with self.engine.begin() as conn:
            # A crawl starts afresh: ids seen by an earlier, inconsistent crawl prove nothing.
            conn.execute(sa.delete(sync_seen).where(sync_seen.c.job_id == self.job_id,
                                                    sync_seen.c.entity == self.spec.key))
            self._empty_crawl = conn.execute(sa.select(table.c.id).where(
                table.c.organization_id == self.organization_id).limit(1)).first() is None
        first = self.client.list_page(self.spec.key, page=1, per_page=self.per_page, sort=FULL_SORT)
        totals = [first.total]
        self._store(first.data, cursor_at=None, total=first.total, seen=True)
        conn = self.engine.connect()
        try:
            transaction, opened, pages = conn.begin(), time.monotonic(), 0
            for page in self._pages(first.last_page):
                totals.append(page.total)
                self._store(page.data, cursor_at=None, total=first.total, seen=True, conn=conn)
                pages += 1
                # Group pages per commit: fewer fsyncs, still bounded work lost on a kill.
                if pages >= GROUP_PAGES or time.monotonic() - opened >= GROUP_SECONDS:
                    transaction.commit()
                    transaction, opened, pages = conn.begin(), time.monotonic(), 0
            transaction.commit()
        finally:
            conn.close()
        self._empty_crawl = False
        with self.engine.connect() as conn:
            seen = conn.execute(
                sa.select(sa.func.count()).select_from(sync_seen).where(
                    sync_seen.c.job_id == self.job_id, sync_seen.c.entity == self.spec.key)
            ).scalar_one()
        return totals, int(seen)

    def _pages(self, last_page: int) -> Iterator[Page]:
        """Pages 2..last, fetched concurrently, yielded in order with a bounded window."""
        numbers = iter(range(2, last_page + 1))
        window = max(1, self.concurrency) * 2
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.concurrency),
                                                   thread_name_prefix="classy-page") as pool:
            pending: list[concurrent.futures.Future[Page]] = []

            def submit_next() -> None:
                number = next(numbers, None)
                if number is not None:
                    pending.append(pool.submit(self.client.list_page, self.spec.key, page=number,
                                               per_page=self.per_page, sort=FULL_SORT))

            for _ in range(window):
                submit_next()
            try:
                while pending:
                    page = pending.pop(0).result()
                    submit_next()
                    yield page
            finally:
                for future in pending:
                    future.cancel()

    def _mark_deleted(self, seen: int, totals: list[int]) -> None:
        table = self.spec.table
        not_seen = sa.and_(
            table.c.organization_id == self.organization_id,
            table.c.deleted_at.is_(None),
            ~sa.exists().where(sync_seen.c.job_id == self.job_id, sync_seen.c.entity == self.spec.key,
                               sync_seen.c.id == table.c.id),
        )
        if self.engine.dialect.name == "postgresql":
            # sync_seen was just filled: without fresh statistics the planner takes it for
            # empty and probes it row by row (hours on 100,000 rows instead of a hash anti-join).
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE sync_seen")
                conn.exec_driver_sql(f"ANALYZE {table.name}")
        with self.engine.connect() as conn:
            held = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.organization_id == self.organization_id, table.c.deleted_at.is_(None))).scalar_one()
            candidates = conn.execute(sa.select(sa.func.count()).select_from(table).where(not_seen)).scalar_one()
        if not candidates:
            return
        if held and seen < held * self.settings.delete_guard_ratio:
            raise SyncAborted(
                f"Delete guard: Classy returned {seen} {self.spec.key} but we hold {held}; that is below "
                f"sync.delete_guard_ratio ({self.settings.delete_guard_ratio:g}). Nothing was marked deleted.",
                hint="If the records really were deleted at the source, lower sync.delete_guard_ratio for one run.",
            )
        if candidates > VERIFY_DELETIONS_UP_TO and min(totals) < totals[0]:
            self.result.notes.append(
                f"{candidates} records not seen, but the source changed during the crawl: none marked deleted"
            )
            return
        now = self.clock()
        with self.engine.connect() as conn:
            ids = list(conn.execute(sa.select(table.c.id).where(not_seen)).scalars())
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start:chunk_start + 500]
            gone = chunk
            if candidates <= VERIFY_DELETIONS_UP_TO:
                # A record can be skipped by offset paging when another is deleted mid-crawl:
                # ask for each one before declaring it gone.
                gone, present = [], []
                for record_id in chunk:
                    record = self.client.get_record(self.spec.key, record_id)
                    (present if record is not None else gone).append(record if record is not None else record_id)
                if present:
                    self._store(present, cursor_at=None, total=None)
            with self.engine.begin() as conn:
                if gone:
                    conn.execute(sa.update(table).where(
                        table.c.organization_id == self.organization_id, table.c.id.in_(gone),
                        table.c.deleted_at.is_(None)).values(deleted_at=now))
                    if self.spec.supporter_column:
                        self.result.affected_supporters.update(conn.execute(
                            sa.select(table.c[self.spec.supporter_column]).where(
                                table.c.organization_id == self.organization_id, table.c.id.in_(gone))
                        ).scalars().all())
            self.result.counts.deleted += len(gone)
            if self.spec.key == "supporters":
                self.result.deleted_ids.update(gone)
        self.result.affected_supporters.discard(None)  # type: ignore[arg-type]

    # -- storing --------------------------------------------------------------------

    def _store(self, records: list[Any], *, cursor_at: datetime | None, total: int | None,
               seen: bool = False, strict: bool = False, conn: Connection | None = None) -> None:
        """Validate, upsert and (optionally) move the cursor, all in one transaction.

        With `conn`, the caller's transaction is used (a full crawl groups pages: it
        moves no cursor, and a crawl cut short is simply started again).
        """
        spec, counts = self.spec, self.result.counts
        synced_at = self.clock()
        rows: dict[int, dict[str, Any]] = {}
        errors: list[RecordError] = []
        for record in records:
            try:
                row = spec.to_row(record, organization_id=self.organization_id, synced_at=synced_at)
            except MalformedRecord as exc:
                errors.append(RecordError(spec.key, source_id_of(record), str(exc), record))
                self._crawl_failed += 1
                continue
            rows[row["id"]] = row  # a repeated id within one page: the later (newer) copy wins
        counts.fetched += len(records)
        counts.failed += len(errors)

        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.begin())
            existing = self._existing(conn, list(rows))
            changed: list[dict[str, Any]] = []
            for record_id, row in rows.items():
                before = existing.get(record_id)
                if before is None:
                    counts.inserted += 1
                    if spec.key == "supporters":
                        self.result.inserted_ids.add(record_id)
                elif before["raw_hash"] != row["raw_hash"] or before["deleted_at"] is not None:
                    counts.updated += 1
                    if spec.key == "supporters":
                        self.result.updated_ids.add(record_id)
                    if spec.supporter_column and before.get("supporter") is not None:
                        self.result.affected_supporters.add(before["supporter"])
                else:
                    counts.unchanged += 1
                    continue
                changed.append(row)
            self._upsert(conn, changed)
            self.result.affected_supporters.update(spec.supporter_ids(changed))
            if seen and rows:
                insert_ignore(conn, sync_seen, [{"job_id": self.job_id, "entity": spec.key, "id": i} for i in rows])
            record_errors(conn, self.job_id, self.organization_id, errors)
            if cursor_at is not None:
                self._write_cursor(conn, self._cursor_value(cursor_at, strict))
            if self.clock() - self._last_beat >= timedelta(seconds=self.settings.heartbeat_seconds) or cursor_at is None:
                heartbeat(conn, self.job_id, counts=counts, requests=self.client.requests,
                          retries=self.client.retries)
                self._last_beat = self.clock()
        if self.progress:
            self.progress(spec.key, counts, total)

    def _upsert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        if self._bulk is None or self._bulk.columns != list(columns):
            self._bulk = BulkUpsert(conn, self.spec.table, columns)
        self._bulk.execute(conn, rows)

    def _existing(self, conn: Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids or self._empty_crawl:
            # A crawl into an empty table (a first full sync) has nothing to compare with.
            return {}
        table = self.spec.table
        columns = "id, raw_hash, deleted_at"
        if self.spec.supporter_column and self.spec.supporter_column != "id":
            columns += f", {self.spec.supporter_column} AS supporter"
        # Ids inlined (they are ints): each page gets a plan for its own values. As a bound
        # list the statement is prepared after a few pages, with a generic plan made while
        # the table was still empty: a seq scan per page, quadratic over a first full sync.
        id_list = ", ".join(str(int(i)) for i in ids)
        rows = conn.exec_driver_sql(
            f"SELECT {columns} FROM {table.name} "
            f"WHERE organization_id = {int(self.organization_id)} AND id IN ({id_list})")
        return {row.id: dict(row._mapping) for row in rows}

    def _read_cursor(self) -> dict[str, Any] | None:
        cursor = read_cursor(self.engine, self.organization_id, self.spec.key)
        return cursor if cursor and cursor.get("updated_at") else None

    def _write_cursor(self, conn: Connection, cursor: dict[str, Any], *, full: bool = False) -> None:
        values: dict[str, Any] = {"cursor": cursor, "job_id": self.job_id, "updated_at": self.clock()}
        if full:
            values["last_full_sync_at"] = self.clock()
        updated = conn.execute(sa.update(sync_cursors).where(
            sync_cursors.c.organization_id == self.organization_id,
            sync_cursors.c.entity == self.spec.key).values(**values))
        if not updated.rowcount:
            conn.execute(sa.insert(sync_cursors).values(
                organization_id=self.organization_id, entity=self.spec.key, **values))


def read_cursor(engine: Engine, organization_id: int, entity: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_cursors.c.cursor).where(
            sync_cursors.c.organization_id == organization_id, sync_cursors.c.entity == entity)).first()
    return dict(row[0]) if row and row[0] else None
