"""Database adapter: engine, unit of work, models registry, migrations, bootstrap."""

from services.db.engine import UnitOfWork, get_engine, reset_engines  # noqa: F401
