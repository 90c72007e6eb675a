"""Shared fixtures. `db` runs a test on SQLite and on PostgreSQL, each on a fresh schema."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MARKETPLACE_ENV", "test")
os.environ.setdefault("MARKETPLACE_METERING_ENABLED", "false")

from services.db.engine import UnitOfWork, reset_engines  # noqa: E402
from services.db.migrate import upgrade  # noqa: E402
from tests.support.db import (  # noqa: E402
    SqliteTemplate,
    drop_pg_schema,
    fresh_heartbeats,
    new_pg_schema,
    require_postgres,
    use_database,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    return SqliteTemplate(tmp_path_factory.mktemp("templates"))


def _make_db(request, backend: str, seeded: bool, tmp_path, monkeypatch, sqlite_template) -> str:
    if backend == "sqlite":
        url = sqlite_template.copy_to(tmp_path / "test.db", seeded)
        use_database(url, monkeypatch)
        if seeded:
            fresh_heartbeats(url)  # the template may be older than the offline threshold
        return url
    require_postgres()
    url, schema = new_pg_schema()
    request.addfinalizer(lambda: (reset_engines(), drop_pg_schema(schema)))
    use_database(url, monkeypatch)
    upgrade(url)
    if seeded:
        from services.seed import seed

        seed("test", url, log=lambda *a: None)
    return url


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path, monkeypatch, sqlite_template) -> str:
    """An empty, migrated database on each backend; returns its URL (the app is pointed at it)."""
    return _make_db(request, request.param, False, tmp_path, monkeypatch, sqlite_template)


@pytest.fixture(params=BACKENDS)
def seeded_db(request, tmp_path, monkeypatch, sqlite_template) -> str:
    """A migrated database with the small `test` seed, on each backend."""
    return _make_db(request, request.param, True, tmp_path, monkeypatch, sqlite_template)


@pytest.fixture
def sqlite_db(request, tmp_path, monkeypatch, sqlite_template) -> str:
    """An empty migrated SQLite database (for tests whose backend does not matter, e.g. pages)."""
    return _make_db(request, "sqlite", False, tmp_path, monkeypatch, sqlite_template)


@pytest.fixture
def seeded_sqlite(request, tmp_path, monkeypatch, sqlite_template) -> str:
    """A seeded SQLite database (page tests)."""
    return _make_db(request, "sqlite", True, tmp_path, monkeypatch, sqlite_template)


@pytest.fixture
def uow(request) -> UnitOfWork:
    """A unit of work on whichever database fixture the test asked for."""
    for name in ("db", "seeded_db", "sqlite_db", "seeded_sqlite"):
        if name in request.fixturenames:
            return UnitOfWork(request.getfixturevalue(name))
    raise RuntimeError("uow needs one of the db fixtures")
