"""The benchmark harness on the small `test` data set, a few iterations: it runs, prints the table, writes the JSON.

Only the shape is checked (every figure present and measured, every row complete), never a timing:
speed is judged by `make bench` on the large data set, against floors measured in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.db import PG_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]
HEADER = "| what | figure | floor | ratio | target | met? |"
ROW_KEYS = {"what", "figure", "floor", "ratio", "target", "met", "values", "floor_values", "note"}
# Every figure of the table, by the start of its row.
FIGURES = ("seed --scale test", "page ", "placement: ", "metering: ", "heartbeat ingest over HTTP", "Stripe webhook")


def _run_bench(tmp_path: Path, backend: str, env: dict, extra: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bench", "--scale", "test", "--quick", "--backend", backend]
    cmd += ["--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results"), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bench_prints_one_table_and_writes_the_same_rows_as_json(tmp_path, backend):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLACE_")}
    extra: list[str] = []
    schema = None
    if backend == "postgresql":
        require_postgres()
        schema = f"bench_smoke_{uuid.uuid4().hex[:8]}"
        env["MARKETPLACE_BENCH_POSTGRES_URL"] = PG_URL
        extra = ["--pg-schema", schema]
    try:
        done = _run_bench(tmp_path, backend, env, extra)
    finally:
        if schema:
            from bench.dataset import drop_postgres_schema

            drop_postgres_schema(PG_URL, schema, tmp_path / "data", "test")
    assert done.returncode == 0, done.stderr[-3000:]

    # The printed table: one per backend, with the columns.
    assert f"### {backend}: scale test" in done.stdout
    assert HEADER in done.stdout
    table_rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]

    # The JSON holds the same rows.
    results = list((tmp_path / "results").glob("bench-test-*.json"))
    assert len(results) == 1
    doc = json.loads(results[0].read_text())
    assert doc["scale"] == "test" and doc["quick"] is True
    assert set(doc["backends"]) == {backend}
    rows = doc["backends"][backend]["rows"]
    assert len(rows) == len(table_rows)
    for row, line in zip(rows, table_rows, strict=True):
        assert set(row) == ROW_KEYS
        assert line.startswith(f"| {row['what']} |")
        assert row["figure"] != "not measured", (row["what"], row["note"])
        assert isinstance(row["met"], bool)
        assert row["ratio"] is None or row["ratio"] > 0
    for figure in FIGURES:
        assert any(r["what"].startswith(figure) for r in rows), f"no row for {figure!r}"
    counts = doc["backends"][backend]["dataset"]["counts"]
    assert counts["deployments"] > 0 and counts["ledger_entries"] > 0

    # A second run reuses the data set instead of seeding it again.
    if backend == "sqlite":
        again = _run_bench(tmp_path, backend, env, ["--only", "placement"])
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reusing the test data set" in again.stderr
