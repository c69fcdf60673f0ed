"""Logging to stderr as text or JSON lines, every line of a run carrying its job id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from datetime import datetime, timezone


class _CurrentJob:
    """The job a log line belongs to.

    A context variable, plus the jobs running in this process for the threads that do not
    inherit it: thread pools (full-sync page fetches, the Mailchimp client) start with an
    empty context, and their lines must still name the job.
    """

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_job", default=None)
        self._running: list[int] = []
        self._lock = threading.Lock()

    def get(self) -> int | None:
        job = self._var.get()
        if job is None:
            with self._lock:
                return self._running[-1] if self._running else None
        return job

    def set(self, job_id: int) -> tuple[contextvars.Token[int | None], int]:
        with self._lock:
            self._running.append(job_id)
        return self._var.set(job_id), job_id

    def reset(self, token: tuple[contextvars.Token[int | None], int]) -> None:
        var_token, job_id = token
        self._var.reset(var_token)
        with self._lock:
            if job_id in self._running:
                del self._running[len(self._running) - 1 - self._running[::-1].index(job_id)]


current_job = _CurrentJob()


class _JobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # An explicit `extra={"job_id": ...}` wins: lines about a job written after it ended.
        if getattr(record, "job_id", None) is None:
            record.job_id = current_job.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "job_id": getattr(record, "job_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        prefix = f"[job {job}] " if job is not None else ""
        line = f"{record.levelname.lower()}: {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str = "text", level: int = logging.WARNING) -> None:
    root = logging.getLogger("supportersync")
    for handler in list(root.handlers):
        if getattr(handler, "_supportersync", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._supportersync = True  # type: ignore[attr-defined]
    handler.addFilter(_JobFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request URL at INFO; our own lines say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
