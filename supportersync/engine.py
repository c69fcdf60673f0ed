"""One run: lock -> job -> pull each entity -> statistics -> finish job -> hooks.

The CLI builds the objects and calls :func:`run_sync`; everything that can go wrong
comes back as a :class:`RunOutcome` with the job's status and the exit code, except
configuration errors, which are raised before anything is touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy.engine import Engine

from supportersync import jobs
from supportersync.classy.client import ClassyClient
from supportersync.classy.entities import ENTITIES, SPECS
from supportersync.config import OrgSettings, Settings
from supportersync.errors import ExitCode, LockHeld, SupportersyncError
from supportersync.hookspecs import PluginContext, SyncResult
from supportersync.locking import hold_locks
from supportersync.logs import current_job
from supportersync.plugins import PluginRun, Plugins, notify_sync_completed
from supportersync.stats.compute import recompute
from supportersync.stats.segments import SegmentConfig, load_segments
from supportersync.sync import EntityResult, EntitySync, Progress, read_cursor
from supportersync.timeutil import utcnow

log = logging.getLogger(__name__)

STATS_ENTITIES = {"supporters", "transactions", "recurring_plans"}
RECOMPUTE_ALL_ABOVE = 20_000


@dataclass
class RunOutcome:
    job_id: int
    status: str
    exit_code: ExitCode
    entities: list[EntityResult] = field(default_factory=list)
    counts: jobs.Counts = field(default_factory=jobs.Counts)
    error: str | None = None
    plugins: list[PluginRun] = field(default_factory=list)
    stats_changed_ids: set[int] = field(default_factory=set)
    requests: int = 0
    retries: int = 0
    result: SyncResult | None = None


def entities_for(entity: str) -> list[str]:
    return list(ENTITIES) if entity == "all" else [entity]


def run_sync(settings: Settings, org: OrgSettings, engine: Engine, entity: str, mode: str, *,
             plugins: Plugins | None = None, transport: httpx.BaseTransport | None = None,
             progress: Progress | None = None, clock: Callable[[], datetime] = utcnow,
             sleep: Callable[[float], None] = time.sleep) -> RunOutcome:
    """Run one sync invocation. `entity` is an entity key or "all"; `mode` incremental or full."""
    if entity != "all" and entity not in SPECS:
        raise ValueError(f"unknown entity {entity!r}")
    org.classy.require(org.name)
    organization_id = org.organization_id
    segments = _load_segments(settings)  # a bad segment definition stops the run before it starts
    names = entities_for(entity)
    try:
        with hold_locks(engine, organization_id, names):
            client = ClassyClient(org.classy, transport=transport, sleep=sleep)
            return _locked_run(settings, org, engine, client, entity, names, mode, segments, plugins, progress,
                               clock)
    except LockHeld as exc:
        job_id = jobs.start_job(engine, organization_id=organization_id, org_name=org.name, entity=entity,
                                mode=mode, status="skipped", error=exc.message)
        log.info("skipped: %s", exc.message)
        return RunOutcome(job_id, "skipped", ExitCode.LOCKED, error=exc.message)


def _locked_run(settings: Settings, org: OrgSettings, engine: Engine, client: ClassyClient, entity: str,
                names: list[str], mode: str, segments: SegmentConfig, plugins: Plugins | None, progress: Progress | None,
                clock: Callable[[], datetime]) -> RunOutcome:
    organization_id = org.organization_id
    job_id = jobs.start_job(engine, organization_id=organization_id, org_name=org.name, entity=entity, mode=mode)
    token = current_job.set(job_id)
    try:
        # Holding these locks proves that no live process runs them (nor `all`, which takes every lock).
        abandoned = jobs.abandon_running(engine, organization_id, [*names, "all"], except_job=job_id)
        if abandoned:
            log.warning("marked job(s) %s abandoned: their process stopped without finishing",
                        ", ".join(map(str, abandoned)))
        outcome = RunOutcome(job_id, "running", ExitCode.OK)
        try:
            _pull(settings, org, engine, client, names, mode, job_id, segments, outcome, progress, clock)
        finally:
            client.close()
            outcome.requests, outcome.retries = client.requests, client.retries
        _finish(engine, org, outcome, entity, mode)
        if outcome.status in ("succeeded", "partial") and plugins is not None:
            _call_plugins(settings, org, engine, plugins, outcome)
        return outcome
    finally:
        current_job.reset(token)


def _pull(settings: Settings, org: OrgSettings, engine: Engine, client: ClassyClient, names: list[str], mode: str,
          job_id: int, segments: SegmentConfig, outcome: RunOutcome, progress: Progress | None,
          clock: Callable[[], datetime]) -> None:
    try:
        client.check_credentials()
        for name in names:
            worker = EntitySync(engine, client, SPECS[name], org.organization_id, job_id, settings.sync,
                                per_page=org.classy.per_page, concurrency=org.classy.concurrency,
                                progress=progress, clock=clock)
            outcome.entities.append(worker.result)
            worker.run(mode)
            log.info("%s: %s", name, worker.result.counts.as_dict())
        if any(r.entity in STATS_ENTITIES for r in outcome.entities):
            outcome.stats_changed_ids = _recompute(engine, org.organization_id, outcome.entities, segments, clock())
    except SupportersyncError as exc:
        outcome.status, outcome.exit_code, outcome.error = "failed", exc.exit_code, str(exc)
    except Exception as exc:  # an unexpected bug: record it, never leave the job "running"
        log.exception("unexpected error")
        outcome.status, outcome.exit_code = "failed", ExitCode.FAILED
        outcome.error = f"unexpected {type(exc).__name__}: {exc}"
    for result in outcome.entities:
        outcome.counts.add(result.counts)
        if result.cursor_after is None:  # a failed entity: record where its committed pages left the cursor
            result.cursor_after = read_cursor(engine, org.organization_id, result.entity)
    if outcome.status != "failed":
        partial = outcome.counts.failed > 0
        outcome.status = "partial" if partial else "succeeded"
        outcome.exit_code = ExitCode.RECORD_ERRORS if partial else ExitCode.OK
        if partial:
            outcome.error = f"{outcome.counts.failed} record(s) could not be stored; see `supportersync jobs show {job_id}`."


def _finish(engine: Engine, org: OrgSettings, outcome: RunOutcome, entity: str, mode: str) -> None:
    results = outcome.entities
    window_start = None if any(r.mode == "full" for r in results) else min(
        (r.window_start for r in results if r.window_start), default=None)
    window_end = min((r.window_end for r in results if r.window_end), default=None)
    single = results[0] if len(results) == 1 else None
    modes = {r.mode for r in results}
    actual_mode = modes.pop() if len(modes) == 1 else mode  # a first run is full whatever was asked
    jobs.finish_job(
        engine, outcome.job_id, status=outcome.status, counts=outcome.counts, mode=actual_mode,
        requests=outcome.requests, retries=outcome.retries, error=outcome.error,
        cursor_before=single.cursor_before if single else {r.entity: r.cursor_before for r in results},
        cursor_after=single.cursor_after if single else {r.entity: r.cursor_after for r in results},
        window_start=window_start, window_end=window_end,
        details={"entities": {r.entity: r.as_details() for r in results},
                 "stats_changed": len(outcome.stats_changed_ids)},
    )
    supporters = next((r for r in results if r.entity == "supporters"), None)
    outcome.result = SyncResult(
        job_id=outcome.job_id,
        organization_id=org.organization_id,
        org_name=org.name,
        entity=entity,
        mode=actual_mode,
        status=outcome.status,
        counts=outcome.counts.as_dict(),
        supporters_inserted=frozenset(supporters.inserted_ids) if supporters else frozenset(),
        supporters_updated=frozenset(supporters.updated_ids) if supporters else frozenset(),
        supporters_deleted=frozenset(supporters.deleted_ids) if supporters else frozenset(),
        stats_changed=frozenset(outcome.stats_changed_ids),
        window_start=window_start,
        window_end=window_end,
    ) if results else None


def _call_plugins(settings: Settings, org: OrgSettings, engine: Engine, plugins: Plugins,
                  outcome: RunOutcome) -> None:
    result = outcome.result
    if result is None:
        return
    context = PluginContext(settings=settings, org=org, engine=engine, job_id=outcome.job_id)
    outcome.plugins = notify_sync_completed(plugins, result, context)
    jobs.set_plugin_outcomes(engine, outcome.job_id, [p.as_record() for p in outcome.plugins])
    failed = [p for p in outcome.plugins if p.status == "failed"]
    for p in failed:
        log.error("plugin %s failed: %s", p.name, p.error)
    if failed:
        outcome.exit_code = ExitCode.PLUGIN_FAILED


def _load_segments(settings: Settings) -> SegmentConfig:
    return load_segments(settings.segments)


def _recompute(engine: Engine, organization_id: int, results: list[EntityResult], segments: SegmentConfig,
               now: datetime) -> set[int]:
    affected: set[int] = set()
    for r in results:
        affected |= r.affected_supporters
    if any(r.mode == "full" for r in results if r.entity in STATS_ENTITIES) or len(affected) > RECOMPUTE_ALL_ABOVE:
        ids = None  # everyone: cheaper than a huge id list, and catches anything a crash left behind
    elif not affected:
        return set()
    else:
        ids = affected
    with engine.begin() as conn:
        computed = recompute(conn, organization_id, ids, segments=segments, now=now)
    return set(computed.changed_ids)
