"""Statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, cast, extract, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model, index_elements: list[str] | None = None):
    """INSERT ... ON CONFLICT DO NOTHING for the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(model).on_conflict_do_nothing(index_elements=index_elements)


def epoch_seconds(session: Session, column):
    """Whole seconds since 1970 (UTC) of a UTC timestamp column, as an integer expression."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", column)), BigInteger)
    return cast(func.strftime("%s", column), Integer)
