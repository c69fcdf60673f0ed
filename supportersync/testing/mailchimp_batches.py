"""Batch operations for the simulated Mailchimp: lifecycle, validation and the result archive.

A batch only moves forward when someone polls it, so tests decide how many polls a
client must survive (`batch_steps`). Its operations run, all at once, on the poll
that finishes it; the simulator executes them against the same state as ordinary
requests, so every rule applies inside a batch too.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from supportersync.testing.mailchimp_model import invalid, iso, schema_error

MAX_PENDING_BATCHES = 500
RESULTS_PER_FILE = 200  # Mailchimp splits big results over several files; so do we
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass
class Batch:
    id: str
    operations: list[dict[str, Any]]
    submitted_at: datetime
    status: str = "pending"
    polls: int = 0
    finished_operations: int = 0
    errored_operations: int = 0
    completed_at: datetime | None = None
    response_body_url: str = ""
    archive: bytes | None = None
    expired: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)


def new_batch(body: Any, submitted_at: datetime, pending: int) -> Batch:
    """Validate a `POST /batches` body and return the batch it describes."""
    if pending >= MAX_PENDING_BATCHES:
        raise invalid(
            f"You already have {MAX_PENDING_BATCHES} pending batches. Wait for some to finish before adding more."
        )
    if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
        raise schema_error("operations", "Schema describes array")
    operations = body["operations"]
    for index, operation in enumerate(operations):
        where = f"operations.item:{index}"
        if not isinstance(operation, dict):
            raise schema_error(where, "Schema describes object")
        if operation.get("method") not in METHODS:
            raise schema_error(f"{where}.method", f"Data did not match any of the allowed values ({', '.join(METHODS)}).")
        if not isinstance(operation.get("path"), str) or not operation["path"].startswith("/"):
            raise schema_error(f"{where}.path", "The path must be a string starting with /.")
        # The classic mistake: sending body as an object instead of a JSON string.
        if "body" in operation and not isinstance(operation["body"], str):
            raise schema_error(f"{where}.body", f"Schema describes string, {type(operation['body']).__name__} found instead")
        if "params" in operation and not isinstance(operation["params"], dict):
            raise schema_error(f"{where}.params", "Schema describes object")
    return Batch(id=uuid.uuid4().hex[:10], operations=operations, submitted_at=submitted_at)


def stage_after(polls: int, steps: int) -> str:
    """Where a batch stands after `polls` status checks, finishing on poll number `steps`."""
    if polls >= steps:
        return "finished"
    if polls <= 0:
        return "pending"
    if polls == 1:
        return "preprocessing"
    if polls == steps - 1 and steps >= 4:
        return "finalizing"
    return "started"


def build_archive(results: list[dict[str, Any]]) -> bytes:
    """A gzipped tar shaped like Mailchimp's: a `./` entry, then JSON arrays of results."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("./")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        archive.addfile(folder)
        for start in range(0, max(len(results), 1), RESULTS_PER_FILE):
            content = json.dumps(results[start : start + RESULTS_PER_FILE]).encode()
            entry = tarfile.TarInfo(f"./{uuid.uuid4().hex}.json")
            entry.size = len(content)
            entry.mode = 0o644
            archive.addfile(entry, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "total_operations": len(batch.operations),
        "finished_operations": batch.finished_operations,
        "errored_operations": batch.errored_operations,
        "submitted_at": iso(batch.submitted_at),
        "completed_at": iso(batch.completed_at),
        "response_body_url": batch.response_body_url,
    }
