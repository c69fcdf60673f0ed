from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from supportersync.db.engine import current_revision, head_revision, open_engine, require_current_schema
from supportersync.db.schema import metadata
from supportersync.errors import DatabaseUnavailable, SchemaOutOfDate


def test_migrations_create_exactly_the_declared_schema(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_empty_database_is_refused_with_the_fix(db_url: str) -> None:
    eng = open_engine(db_url)
    with pytest.raises(SchemaOutOfDate, match="supportersync db upgrade"):
        require_current_schema(eng)
    eng.dispose()


def test_database_behind_is_refused(db_url: str) -> None:
    from supportersync.db.engine import upgrade

    eng = open_engine(db_url)
    upgrade(eng, "0001_core")
    if head_revision() == "0001_core":
        pytest.skip("only one migration so far")
    with pytest.raises(SchemaOutOfDate, match="behind"):
        require_current_schema(eng)
    eng.dispose()


def test_unopenable_database_url_hides_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        open_engine("postgresql+psycopg://someone:hunter2@127.0.0.1:1/nowhere")
    assert "hunter2" not in str(info.value)
    assert "SUPPORTERSYNC_DATABASE_URL" in str(info.value)
