"""The data set the figures run on: seeded once per scale and seed version, then reused.

SQLite: `<data dir>/<scale>.db`. PostgreSQL: schema `bench_<scale>` in MARKETPLACE_BENCH_POSTGRES_URL.
Beside each sits a marker (`<scale>.<backend>.json`) holding the seed version it was made with, how
long seeding took and its peak memory, and the row counts. A marker whose version differs from the
code's (seed, models or migrations changed) means the data set is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, text

from services.config import ROOT
from services.db.engine import get_engine, reset_engines

DEFAULT_DATA_DIR = ROOT / ".marketplace" / "bench"
# Nodes that the heartbeat figure's agents speak for (each gets a known token; see agent_token).
AGENT_NODES = 2_000
COUNTED_TABLES = ("users", "providers", "nodes", "node_metrics", "deployments", "ledger_entries", "ledger_transactions")


def seed_version(scale: str) -> str:
    """A digest of everything that decides what the seed writes: its code, the models, the migrations."""
    from services.seed import SCALES

    digest = hashlib.sha256(repr(SCALES[scale]).encode())
    files = [ROOT / "services" / "seed.py"]
    files += sorted((ROOT / "services").glob("*/models.py"))
    files += sorted((ROOT / "services" / "db" / "migrations").rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def postgres_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@dataclass
class Dataset:
    backend: str  # sqlite | postgresql
    scale: str
    url: str
    version: str
    reused: bool
    seeded_at: str
    seed_seconds: float | None
    seed_peak_rss_mb: float | None
    seed_cpu_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        out["url"] = self.url.split("@")[-1]  # no user name in reports
        return out


def _marker_path(data_dir: Path, scale: str, backend: str) -> Path:
    return data_dir / f"{scale}.{backend}.json"


def _counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as conn:
        return {t: int(conn.scalar(text(f"SELECT COUNT(*) FROM {t}"))) for t in COUNTED_TABLES}


def _looks_seeded(url: str) -> bool:
    try:
        with get_engine(url).connect() as conn:
            return bool(conn.scalar(text("SELECT COUNT(*) FROM (SELECT 1 FROM users LIMIT 1) x")))
    except Exception:
        return False
    finally:
        reset_engines()  # the seed runs in another process; hold no connection to a file it replaces


def _wipe(backend: str, url: str, pg_base: str | None, schema: str | None) -> None:
    if backend == "sqlite":
        path = url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    engine = create_engine(pg_base)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()


def _run_seed(url: str, scale: str, log) -> tuple[float, float, float]:
    """`python -m services.seed --scale <scale>` in a child process: (seconds, peak RSS in MB, CPU seconds)."""
    env = {
        **os.environ,
        "MARKETPLACE_DATABASE_URL": url,
        "MARKETPLACE_METERING_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "services.seed", "--scale", scale],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        log("    " + line.rstrip())
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    if child.returncode != 0:
        raise RuntimeError(f"seeding {scale} failed (exit {child.returncode})")
    return seconds, round(usage.ru_maxrss / 1024, 1), round(usage.ru_utime + usage.ru_stime, 1)


def _analyze(backend: str, url: str, *, vacuum: bool = False) -> None:
    """PostgreSQL: gather planner statistics now (and with `vacuum`, clear dead rows), as autovacuum would.

    Autovacuum may be off on a development or CI server (it is on these machines), while in production
    it runs. Figures that write and roll back (metering, webhooks) or update in place (heartbeats)
    leave dead rows behind; without a vacuum the next figure would plan and scan around them.
    """
    if backend != "postgresql":
        return
    from services.db import models as m

    command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
    with get_engine(url).connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in m.Base.metadata.sorted_tables:  # this schema's tables only, not the whole database
            conn.execute(text(f'{command} "{table.name}"'))


def tidy(dataset: Dataset) -> None:
    """After a figure: vacuum and analyze the PostgreSQL data set (nothing to do on SQLite)."""
    _analyze(dataset.backend, dataset.url, vacuum=True)


def prepare(
    backend: str,
    scale: str,
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    pg_base: str | None = None,
    pg_schema: str | None = None,
    fresh: bool = False,
    reuse_stale: bool = False,
    log=print,
) -> Dataset:
    """The seeded data set for (backend, scale): reused when its marker matches the code, made otherwise."""
    data_dir.mkdir(parents=True, exist_ok=True)
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{data_dir / f'{scale}.db'}"
    else:
        if not pg_base:
            raise ValueError("PostgreSQL needs MARKETPLACE_BENCH_POSTGRES_URL")
        schema = pg_schema or f"bench_{scale}"
        url = postgres_url(pg_base, schema)
    marker_path = _marker_path(data_dir, scale, backend if schema is None else f"{backend}.{schema}")
    version = seed_version(scale)
    marker = json.loads(marker_path.read_text()) if marker_path.exists() else None
    current = marker and (marker.get("version") == version or reuse_stale)
    if not fresh and current and _looks_seeded(url):
        stale = "" if marker["version"] == version else f", STALE: the code's seed version is now {version}"
        log(
            f"  reusing the {scale} data set on {backend} (seeded {marker['seeded_at']}, version {marker['version']}{stale})"
        )
        return Dataset(
            backend=backend,
            scale=scale,
            url=url,
            version=marker["version"],
            reused=True,
            seeded_at=marker["seeded_at"],
            seed_seconds=marker.get("seed_seconds"),
            seed_peak_rss_mb=marker.get("seed_peak_rss_mb"),
            seed_cpu_seconds=marker.get("seed_cpu_seconds"),
            counts=marker.get("counts", {}),
        )
    log(f"  seeding the {scale} data set on {backend} (version {version}) ...")
    marker_path.unlink(missing_ok=True)
    _wipe(backend, url, pg_base, schema)
    seconds, rss, cpu = _run_seed(url, scale, log)
    _analyze(backend, url)
    dataset = Dataset(
        backend=backend,
        scale=scale,
        url=url,
        version=version,
        reused=False,
        seeded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seed_seconds=round(seconds, 1),
        seed_peak_rss_mb=rss,
        seed_cpu_seconds=cpu,
        counts=_counts(url),
    )
    marker_path.write_text(
        json.dumps(
            {k: v for k, v in asdict(dataset).items() if k not in ("url", "reused", "backend", "scale")}, indent=2
        )
    )
    return dataset


def drop_postgres_schema(pg_base: str, schema: str, data_dir: Path, scale: str) -> None:
    """Remove a PostgreSQL data set and its marker (the smoke test's clean-up)."""
    engine = create_engine(pg_base)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
    _marker_path(data_dir, scale, f"postgresql.{schema}").unlink(missing_ok=True)


# --- what figures need before they run ---------------------------------------------------------


def refresh_heartbeats(url: str) -> int:
    """Mark every seeded online node as seen just now (one UPDATE), so placement finds candidates."""
    from services.db.base import UTCDateTime, utcnow

    stmt = text("UPDATE nodes SET last_heartbeat_at = :now WHERE status = 'online'").bindparams(
        bindparam("now", value=utcnow(), type_=UTCDateTime())
    )
    with get_engine(url).begin() as conn:
        return conn.execute(stmt).rowcount


def agent_token(node_id: int) -> str:
    """The node token the benchmark's agents use for `node_id` (deterministic, shaped like a real one)."""
    return "cmn_" + hashlib.sha256(f"bench-agent:{node_id}".encode()).hexdigest()[:44]


def ensure_agent_tokens(url: str, count: int = AGENT_NODES) -> list[tuple[int, str]]:
    """Give the last `count` online nodes known tokens (stored hashed, as the app does); (node id, token) pairs."""
    from services.nodes.tokens import hash_token

    with get_engine(url).begin() as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                text("SELECT id FROM nodes WHERE status = 'online' ORDER BY id DESC LIMIT :n"), {"n": count}
            )
        ]
        pairs = [(nid, agent_token(nid)) for nid in ids]
        conn.execute(
            text("UPDATE nodes SET token_hash = :h WHERE id = :i AND (token_hash IS NULL OR token_hash != :h)"),
            [{"h": hash_token(tok), "i": nid} for nid, tok in pairs],
        )
    return pairs
