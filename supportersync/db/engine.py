"""Opening the database, and keeping its schema in step with the code.

`open_engine` turns any failure to connect into DatabaseUnavailable with the URL's
password hidden. `require_current_schema` is what `run` calls before touching anything:
a database behind the shipped migrations is refused with the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from supportersync.config import redact_url
from supportersync.errors import DatabaseUnavailable, SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic is imported where it is used: every cron run pays for what it imports.


def open_engine(url: str, *, create_dirs: bool = True, check: bool = True, **kwargs: Any) -> Engine:
    """An Engine for `url`, with SQLite tuned for a CLI that may run beside another."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUnavailable("The database URL is not a valid SQLAlchemy URL.") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:"):
            folder = Path(path).expanduser().parent
            if create_dirs:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DatabaseUnavailable(
                        f"Cannot create the folder {folder} for the SQLite database: {exc.strerror}.",
                        hint="Set SUPPORTERSYNC_DATABASE_URL to a writable location.",
                    ) from None
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
        engine = sa.create_engine(url, **kwargs)
    if check:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            engine.dispose()
            raise DatabaseUnavailable(
                f"Cannot open the database {redact_url(url)}: {first_line(exc)}",
                hint="Check SUPPORTERSYNC_DATABASE_URL (server running, database exists, credentials).",
            ) from None
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `jobs list` read while a sync writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".") + "."


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # The connection travels in attributes, so the URL (and its password) never
    # lands in alembic's config or logs.
    cfg.attributes["engine"] = engine
    return cfg


def _revisions() -> list[str]:
    """Revision ids from the shipped migration files, without importing alembic."""
    import re

    found = []
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        match = re.search(r'^revision\s*=\s*["\']([^"\']+)["\']', path.read_text(), re.MULTILINE)
        if match:
            found.append(match.group(1))
    return found


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's migration, read from alembic_version (None: no schema yet)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine) or ""


def _head_without_alembic() -> str | None:
    import re

    parents = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        match = re.search(r'^down_revision\s*=\s*["\']([^"\']+)["\']', path.read_text(), re.MULTILINE)
        if match:
            parents.add(match.group(1))
    heads = [r for r in _revisions() if r not in parents]
    return heads[0] if len(heads) == 1 else None


def require_current_schema(engine: Engine) -> None:
    current = current_revision(engine)
    revisions = _revisions()
    # Linear history: the head is the revision no file names as its parent.
    if current is not None and current in revisions and current == _head_without_alembic():
        return
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutOfDate(
            "The database has no supportersync tables yet.",
            hint="Run `supportersync db upgrade` once to create them.",
        )
    if current not in revisions:
        raise SchemaOutOfDate(
            f"The database is at migration {current}, which this version of supportersync does not know "
            "(it was upgraded by a newer version).",
            hint="Install the newer supportersync version.",
        )
    raise SchemaOutOfDate(
        f"The database is behind: at migration {current}, this version needs {head}.",
        hint="Run `supportersync db upgrade`.",
    )
