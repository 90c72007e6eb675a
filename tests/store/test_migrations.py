"""Migrations: empty -> head -> base -> head on both backends; a newer database is refused."""

import pytest
from sqlalchemy import inspect, text

from services.db.engine import get_engine
from services.db.migrate import DatabaseNewerThanCode, current_revision, downgrade, head_revision, upgrade
from services.db.models import Base


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_every_table_and_downgrade_removes_them(db):
    assert current_revision(db) == head_revision()
    assert _tables(db) == set(Base.metadata.tables)
    downgrade(db, "base")
    assert _tables(db) == set()
    upgrade(db)
    assert _tables(db) == set(Base.metadata.tables)


def test_upgrade_twice_is_a_no_op(db):
    assert upgrade(db) == head_revision()
    assert upgrade(db) == head_revision()


def test_a_database_newer_than_the_code_is_refused(db):
    with get_engine(db).begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'ffff_from_the_future'"))
    with pytest.raises(DatabaseNewerThanCode, match="newer release"):
        upgrade(db)
    with get_engine(db).connect() as conn:  # nothing was changed
        assert conn.scalar(text("select version_num from alembic_version")) == "ffff_from_the_future"
