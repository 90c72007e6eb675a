"""Databases for tests: a SQLite file per test, or a fresh PostgreSQL schema per test.

PostgreSQL: MARKETPLACE_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Without a reachable server the PostgreSQL cases skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services.config import reload_settings
from services.db.engine import reset_engines
from services.db.migrate import upgrade

PG_URL = os.environ.get("MARKETPLACE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_pg_ok: bool | None = None


def postgres_available() -> bool:
    global _pg_ok
    if _pg_ok is None:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(text("select 1"))
            eng.dispose()
            _pg_ok = True
        except Exception:
            _pg_ok = False
    return _pg_ok


def require_postgres() -> None:
    if postgres_available():
        return
    msg = f"PostgreSQL not reachable at {PG_URL} (set MARKETPLACE_TEST_POSTGRES_URL)"
    if IN_CI:
        pytest.fail(msg + ": required under CI=true")
    pytest.skip(msg)


def use_database(url: str, monkeypatch) -> None:
    """Point the whole app (settings, engines) at `url` for this test."""
    monkeypatch.setenv("MARKETPLACE_DATABASE_URL", url)
    reset_engines()
    reload_settings()


def new_pg_schema() -> tuple[str, str]:
    """Create an empty schema; returns (url with search_path, schema name)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(text(f'create schema "{schema}"'))
    eng.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(text(f'drop schema if exists "{schema}" cascade'))
    eng.dispose()


class SqliteTemplate:
    """A migrated (optionally seeded) SQLite file made once per session and copied per test."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, Path] = {}

    def get(self, seeded: bool) -> Path:
        key = "seeded" if seeded else "empty"
        if key not in self._made:
            path = self.root / f"template-{key}.db"
            url = f"sqlite:///{path}"
            upgrade(url)
            if seeded:
                from services.seed import seed

                seed("test", url, log=lambda *a: None)
            reset_engines()
            self._made[key] = path
        return self._made[key]

    def copy_to(self, dest: Path, seeded: bool) -> str:
        src = self.get(seeded)
        shutil.copyfile(src, dest)
        for suffix in ("-wal", "-shm"):
            if Path(str(src) + suffix).exists():
                shutil.copyfile(str(src) + suffix, str(dest) + suffix)
        return f"sqlite:///{dest}"


def fresh_heartbeats(url: str) -> None:
    """Seeded "online" nodes heartbeat now, as they did when the seed ran (a copied template is older)."""
    from services.db.base import utcnow
    from services.db.engine import get_engine
    from services.nodes.models import Node

    with get_engine(url).begin() as conn:
        conn.execute(Node.__table__.update().where(Node.status == "online").values(last_heartbeat_at=utcnow()))
