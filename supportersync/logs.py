"""Logging to stderr as text or JSON lines, every line of a run carrying its job id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone

current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_job", default=None)


class _JobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
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
