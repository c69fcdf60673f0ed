"""Exceptions and exit codes.

Every error that reaches the user derives from :class:`SupportersyncError`, carries
an exit code, and says what to do next. httpx and SQLAlchemy errors are wrapped where
they enter our code, so the CLI only ever maps this tree to exit codes::

    SupportersyncError                      exit 1 unless stated
    ├── ConfigError                         exit 2: a setting is missing or wrong
    ├── DatabaseError                       the database failed during work
    │   ├── DatabaseUnavailable             exit 2: the URL cannot be opened
    │   └── SchemaOutOfDate                 exit 2: migrations not applied
    ├── SourceError                         Classy failed
    │   ├── SourceAuthError                 exit 2: credentials refused
    │   ├── SourceUnavailable               retries exhausted (network, 429, 5xx)
    │   └── SourceResponseError             an answer we cannot trust
    ├── SyncAborted                         the run stopped itself (e.g. delete guard)
    ├── LockHeld                            exit 5: another run holds the lock
    └── PluginError                         a plugin failed (exit 4 from `run`)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every `supportersync` command."""

    OK = 0
    """Everything succeeded."""
    FAILED = 1
    """The run failed: the job row says why; nothing past committed data was lost."""
    USAGE = 2
    """Usage or configuration error (bad option, setting, credentials, database URL)."""
    RECORD_ERRORS = 3
    """The run finished but some records were malformed; see `jobs show`."""
    PLUGIN_FAILED = 4
    """The sync succeeded and is committed, but at least one plugin failed."""
    LOCKED = 5
    """Skipped: another run for the same organization and entity holds the lock."""


class SupportersyncError(Exception):
    """Base class. `str(error)` is a complete sentence for the user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class ConfigError(SupportersyncError):
    """A setting is missing or invalid; names the setting and how to fix it."""

    exit_code = ExitCode.USAGE


class DatabaseError(SupportersyncError):
    """The database failed while we worked with it."""


class DatabaseUnavailable(DatabaseError):
    """The database URL cannot be opened."""

    exit_code = ExitCode.USAGE


class SchemaOutOfDate(DatabaseError):
    """The database is behind the migrations this version ships."""

    exit_code = ExitCode.USAGE


class SourceError(SupportersyncError):
    """The Classy API failed."""


class SourceAuthError(SourceError):
    """Classy refused the credentials."""

    exit_code = ExitCode.USAGE


class SourceUnavailable(SourceError):
    """Classy could not be reached or kept failing after all retries."""


class SourceResponseError(SourceError):
    """Classy answered something we cannot trust (bad JSON, broken envelope)."""


class SyncAborted(SupportersyncError):
    """The run stopped itself to protect data (e.g. the delete guard)."""


class LockHeld(SupportersyncError):
    """Another run holds the lock for this organization and entity."""

    exit_code = ExitCode.LOCKED


class PluginError(SupportersyncError):
    """A plugin failed; the sync itself stays committed."""

    exit_code = ExitCode.PLUGIN_FAILED
