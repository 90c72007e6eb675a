"""Engines (one per URL, cached) and the unit of work that service functions use."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from services.config import get_settings

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: MARKETPLACE_DATABASE_URL), created once per process."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                path = url.split("///", 1)[-1].split("?", 1)[0]
                if path and path != ":memory:":
                    from pathlib import Path

                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            _engines[url] = engine
            _factories[url] = sessionmaker(engine, expire_on_commit=False)
        return engine


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    url = url or get_settings().database_url
    get_engine(url)
    return _factories[url]


def reset_engines() -> None:
    """Dispose every cached engine (tests switch databases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()


class UnitOfWork:
    """One transaction. Use as `with uow: ...; uow.commit()`; leaving without commit rolls back.

    A UnitOfWork can be entered again after it is left (each `with` is a new session), so pages
    and the API can hold one and pass it to several service calls.
    """

    def __init__(self, url: str | None = None):
        self.url = url
        self.session: Session = None  # type: ignore[assignment]
        self._depth = 0

    def __enter__(self) -> UnitOfWork:
        if self._depth == 0:
            self.session = session_factory(self.url)()
        self._depth += 1
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._depth -= 1
        if self._depth == 0:
            try:
                self.session.rollback()
            finally:
                self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def flush(self) -> None:
        self.session.flush()
