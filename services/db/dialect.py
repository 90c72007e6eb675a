"""Statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model, index_elements: list[str] | None = None):
    """INSERT ... ON CONFLICT DO NOTHING for the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(model).on_conflict_do_nothing(index_elements=index_elements)
