"""Bring a database to the code's migration head; refuse a database newer than the code.

`python -m services.db.migrate` upgrades the configured database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from services.config import get_settings
from services.db.engine import get_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseNewerThanCode(RuntimeError):
    pass


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | None = None) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str | None = None) -> str:
    """Upgrade to head. Raises DatabaseNewerThanCode if the database has a revision this code lacks."""
    cfg = alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    current = current_revision(url)
    if current is not None:
        try:
            script.get_revision(current)
        except Exception as exc:  # alembic raises ResolutionError / CommandError subclasses
            raise DatabaseNewerThanCode(
                f"The database is at migration {current!r}, which this version of the code does not know: "
                "it was migrated by a newer release. Upgrade the code (or point MARKETPLACE_DATABASE_URL "
                "at another database); nothing was changed."
            ) from exc
    command.upgrade(cfg, "head")
    return script.get_current_head()


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


if __name__ == "__main__":
    print("database at", upgrade())
