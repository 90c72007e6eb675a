"""Is the database reachable?"""

from sqlalchemy import text

from services.db.engine import get_engine


def database_ok() -> bool:
    """True when a trivial query succeeds on the configured database."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("select 1"))
    except Exception:  # any failure means unhealthy; the caller reports it, details go to the server log
        return False
    return True
