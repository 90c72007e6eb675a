"""Heartbeat ingest over HTTP on loopback, 50 concurrent agents, against the same writes done with the driver.

The app is served as in production by one process: `uvicorn streamlit_app:app` (the Streamlit UI
with the API mounted under /api). The load comes from another process (`bench.agents`): 50 agents
on keep-alive connections, each speaking for its own slice of 2,000 nodes that got known tokens
(stored hashed, as the app stores them). Counting is bounded in time and number.

The floor is what the database must do for the same heartbeats, and nothing else: one connection of
the bare driver (sqlite3 / psycopg) running, per heartbeat, the app's two statements (mark the node
seen, by token hash; store the sample once) and a commit, back to back.

Samples written by the benchmark are deleted afterwards, so the data set stays as seeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import httpx
from sqlalchemy import bindparam, text

from bench.core import Row, bounded, failed_row, ratio
from bench.dataset import ensure_agent_tokens
from services.config import ROOT
from services.db.base import UTCDateTime, utcnow
from services.db.engine import get_engine
from services.seed import sqlite_datetime

TARGET = "≥ 1,000/s on one process"
MIN_RATE = 1000.0
CONCURRENCY = 50

UPDATE_SQL = (
    "UPDATE nodes SET last_heartbeat_at = {p}, status = CASE WHEN status = 'draining' THEN status ELSE {p} END "
    "WHERE token_hash = {p} AND status != 'decommissioned' RETURNING id, status"
)
INSERT_SQL = (
    "INSERT INTO node_metrics (node_id, ts, cpu_pct, ram_pct, disk_pct, net_in_mbps, net_out_mbps, online) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT DO NOTHING"
)


def _driver_floor(url: str, tokens: list[str], count: int, seconds: float) -> tuple[int, float]:
    """The app's two heartbeat statements and a commit, per heartbeat, on one bare driver connection."""
    engine = get_engine(url)
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    update_sql, insert_sql = UPDATE_SQL.format(p=mark), INSERT_SQL.format(p=mark)
    as_db = (lambda v: v) if postgres else sqlite_datetime
    online = True if postgres else 1
    rng = random.Random(1)
    raw = engine.raw_connection()  # the driver's own connection (same pragmas / search_path as the app)
    try:
        cur = raw.cursor()
        done = 0
        start = time.perf_counter()
        for i in bounded(count, seconds):
            digest = hashlib.sha256(tokens[i % len(tokens)].encode()).hexdigest()
            now = as_db(utcnow())
            cur.execute(update_sql, (now, "online", digest))
            node_id = cur.fetchone()[0]
            cur.execute(
                insert_sql,
                (node_id, now, rng.uniform(5, 95), rng.uniform(10, 90), rng.uniform(20, 80), 5.0, 5.0, online),
            )
            raw.commit()
            done += 1
        elapsed = time.perf_counter() - start
        cur.close()
    finally:
        raw.close()
    return done, elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, port: int, log_path: str) -> subprocess.Popen:
    """The app in one uvicorn process on loopback (no demo fleet, no metering: only the load moves it)."""
    env = {
        **os.environ,
        "MARKETPLACE_DATABASE_URL": url,
        "MARKETPLACE_DEMO_MODE": "false",
        "MARKETPLACE_METERING_ENABLED": "false",
    }
    cmd = [sys.executable, "-m", "uvicorn", "streamlit_app:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    with open(log_path, "ab") as log_file:  # the app's own log (and access log) stays out of the report
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} while starting: {_tail(log_path)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.terminate()
    raise RuntimeError("the app did not answer /api/health within 90 s")


def _tail(path: str, chars: int = 800) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-chars:].decode(errors="replace")
    except OSError:
        return ""


def _load(port: int, tokens: list[str], duration: float, count: int, warmup: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
        f.write("\n".join(tokens))
        path = f.name
    try:
        cmd = [sys.executable, "-m", "bench.agents", "--base", f"http://127.0.0.1:{port}", "--tokens", path]
        cmd += ["--concurrency", str(CONCURRENCY), "--duration", str(duration), "--count", str(count)]
        cmd += ["--warmup", str(warmup)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 120)
        if out.returncode != 0:
            raise RuntimeError(f"the load client failed: {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(path)


def _clean_up(url: str, node_ids: list[int], since: datetime) -> int:
    """Delete the samples the benchmark stored (its nodes, from its start on)."""
    stmt = text("DELETE FROM node_metrics WHERE node_id IN :ids AND ts >= :since").bindparams(
        bindparam("ids", expanding=True), bindparam("since", type_=UTCDateTime())
    )
    with get_engine(url).begin() as conn:
        return conn.execute(stmt, {"ids": node_ids, "since": since}).rowcount


def measure(ctx) -> list[Row]:
    """Heartbeats per second over HTTP (50 agents, one app process) against the bare driver's rate."""
    what = f"heartbeat ingest over HTTP, {CONCURRENCY} concurrent agents"
    duration, count, warmup = (3.0, 2_000, 1.0) if ctx.quick else (15.0, 30_000, 3.0)
    pairs = ensure_agent_tokens(ctx.url)
    node_ids, tokens = [n for n, _ in pairs], [t for _, t in pairs]
    since = utcnow()
    server = None
    with tempfile.NamedTemporaryFile(prefix="bench-app-", suffix=".log", delete=False) as log_file:
        log_path = log_file.name
    try:
        floor_done, floor_seconds = _driver_floor(ctx.url, tokens, count, duration)
        port = _free_port()
        server = _serve(ctx.url, port, log_path)
        cpu_before = _cpu_seconds(server.pid)
        load = _load(port, tokens, duration, count, warmup)
        cpu = _cpu_seconds(server.pid) - cpu_before
        # CPU the app spent per heartbeat (warm-up included on both sides): its ceiling on one core is 1 / this.
        load["server_cpu_ms_per_heartbeat"] = round(1000 * cpu / max(1, load["sent_with_warmup"]), 3)
    except Exception as exc:
        return [failed_row(what, TARGET, f"{type(exc).__name__}: {exc}")]
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        _clean_up(ctx.url, node_ids, since)
        if os.path.exists(log_path):
            os.unlink(log_path)
    rate = load["per_second"]
    floor_rate = round(floor_done / floor_seconds, 1) if floor_seconds else 0.0
    errors = load["sent"] - load["ok"]
    return [
        Row(
            what=what,
            figure=f"{rate:,.0f}/s (p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
            f"app CPU {load['server_cpu_ms_per_heartbeat']} ms per heartbeat"
            + (f", {errors} errors" if errors else "")
            + ")",
            floor=f"{floor_rate:,.0f}/s",
            ratio=ratio(floor_rate, rate),
            target=TARGET,
            met=rate >= MIN_RATE and errors == 0,
            values=load,
            floor_values={"per_second": floor_rate, "heartbeats": floor_done, "seconds": round(floor_seconds, 3)},
        )
    ]
