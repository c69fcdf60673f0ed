"""One lock per organization and entity, released by the OS when its holder dies.

PostgreSQL: a session-level advisory lock on a dedicated connection. Every host that
shares the database sees it, and the server drops it when the connection goes away
(process killed, machine rebooted).

SQLite: an exclusive `flock` on a small file beside the database file. The kernel
releases it when the process exits, however it exits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from supportersync.errors import LockHeld


class _Held(Protocol):
    def release(self) -> None: ...


def lock_key(organization_id: int, entity: str, namespace: str = "") -> int:
    """A stable signed 64-bit key (PostgreSQL advisory locks take a bigint).

    Advisory locks are per database; the namespace (the schema) keeps two copies of
    supportersync in different schemas of one database from blocking each other.
    """
    digest = hashlib.blake2b(f"supportersync:{namespace}:{organization_id}:{entity}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _PostgresLock:
    def __init__(self, conn: Connection, key: int) -> None:
        self.conn = conn
        self.key = key

    def release(self) -> None:
        try:
            self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self.conn.commit()
        finally:
            self.conn.close()


class _FileLock:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def release(self) -> None:
        import fcntl

        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        finally:
            self.handle.close()


def _try_postgres(engine: Engine, organization_id: int, entity: str) -> _PostgresLock | None:
    conn = engine.connect()
    try:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one() or ""
        key = lock_key(organization_id, entity, schema)
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        conn.commit()  # the lock is session-level: it outlives this transaction
    except Exception:
        conn.close()
        raise
    if not got:
        conn.close()
        return None
    return _PostgresLock(conn, key)


def lock_dir(engine: Engine) -> Path:
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        # Only tests use in-memory databases; one process, so a temp folder suffices.
        import tempfile

        return Path(tempfile.gettempdir()) / f"supportersync-locks-{os.getpid()}"
    path = Path(database).expanduser().resolve()
    return path.with_name(path.name + ".locks")


def _try_file(engine: Engine, organization_id: int, entity: str) -> _FileLock | None:
    import fcntl

    folder = lock_dir(engine)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / f"{organization_id}-{entity}.lock", "a+b")  # noqa: SIM115 - held until release
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return _FileLock(handle)


@contextlib.contextmanager
def hold_locks(engine: Engine, organization_id: int, entities: Sequence[str]) -> Iterator[None]:
    """Take the locks for these entities (all or none), or raise LockHeld."""
    held: list[_Held] = []
    try:
        for entity in entities:
            if engine.dialect.name == "postgresql":
                lock: _Held | None = _try_postgres(engine, organization_id, entity)
            else:
                lock = _try_file(engine, organization_id, entity)
            if lock is None:
                raise LockHeld(
                    f"Another run for organization {organization_id} holds the lock for {entity}; "
                    "this run was skipped.",
                    hint="This is normal when runs overlap; if it persists, see `supportersync jobs list --status running`.",
                )
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            with contextlib.suppress(Exception):
                lock.release()
