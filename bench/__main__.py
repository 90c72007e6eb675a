"""`python -m bench` (`make bench`): the marketplace's speed at scale, each figure against its floor.

Seeds (or reuses) the data set on SQLite, and on PostgreSQL when MARKETPLACE_BENCH_POSTGRES_URL is
set, runs every figure in its own process, prints one markdown table per backend and writes the same
as JSON under bench/results/. Figures are never pass/fail for the test suite: machines are shared and
noisy, so each one sits next to a floor measured in the same run.

    python -m bench                       # --scale large, every figure, every configured backend
    python -m bench --only placement,metering --backend sqlite
    python -m bench --scale test --quick  # a few iterations on the small data set (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.child import FIGURES
from bench.core import Row
from bench.dataset import DEFAULT_DATA_DIR, Dataset, prepare, tidy
from bench.report import RESULTS_DIR, document, markdown, write
from services.config import ROOT

SEED_TARGET = "≤ 10 min, ≤ 2 GB"
SEED_MAX_SECONDS = 600
SEED_MAX_MB = 2048
FIGURE_TIMEOUT = {"pages": 1500, "metering": 900}  # seconds; others DEFAULT_TIMEOUT
DEFAULT_TIMEOUT = 600


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed_row(dataset: Dataset) -> Row:
    """`seed --scale <scale>`: minutes and peak memory of the run that made the data set."""
    what = f"seed --scale {dataset.scale}"
    if dataset.seed_seconds is None:
        return Row(what=what, figure="not recorded", floor="", ratio=None, target=SEED_TARGET, met=None)
    minutes = dataset.seed_seconds / 60
    rss = dataset.seed_peak_rss_mb or 0.0
    cpu = f" (CPU {dataset.seed_cpu_seconds / 60:.1f} min)" if dataset.seed_cpu_seconds else ""
    note = "" if not dataset.reused else f"recorded when the data set was made, {dataset.seeded_at}"
    return Row(
        what=what,
        figure=f"{minutes:.1f} min{cpu}, peak RSS {rss:,.0f} MB",
        floor="",
        ratio=None,
        target=SEED_TARGET,
        met=dataset.seed_seconds <= SEED_MAX_SECONDS and rss <= SEED_MAX_MB,
        values={
            "seconds": dataset.seed_seconds,
            "cpu_seconds": dataset.seed_cpu_seconds,
            "peak_rss_mb": rss,
            "seeded_at": dataset.seeded_at,
        },
        note=note,
    )


def run_figure(figure: str, dataset: Dataset, quick: bool) -> list[dict]:
    """Run one figure in a child process, bounded in time; its rows (or one row saying what went wrong)."""
    timeout = FIGURE_TIMEOUT.get(figure, DEFAULT_TIMEOUT) // (3 if quick else 1)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "bench.child", figure, "--backend", dataset.backend, "--url", dataset.url]
        cmd += ["--scale", dataset.scale, "--out", str(out)] + (["--quick"] if quick else [])
        start = time.monotonic()
        try:
            subprocess.run(cmd, cwd=ROOT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return [_problem(figure, f"did not finish within {timeout} s")]
        log(f"  {figure}: {time.monotonic() - start:.0f} s")
        if not out.exists():
            return [_problem(figure, "the figure's process wrote no result")]
        result = json.loads(out.read_text())
    if "error" in result:
        return [_problem(figure, result["error"])]
    return result["rows"]


def _problem(figure: str, reason: str) -> dict:
    return Row(what=figure, figure="not measured", floor="", ratio=None, target="-", met=False, note=reason).to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large", help="seed scale of the data set (default: large)")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["sqlite", "postgresql"],
        help="repeatable; default: sqlite, plus postgresql when MARKETPLACE_BENCH_POSTGRES_URL is set",
    )
    parser.add_argument("--only", help=f"comma-separated figures among: {', '.join(FIGURES)}")
    parser.add_argument("--quick", action="store_true", help="few iterations (checks the harness, not speed)")
    parser.add_argument("--fresh", action="store_true", help="seed again even if the data set is current")
    parser.add_argument(
        "--reuse-stale",
        action="store_true",
        help="development only: reuse a data set made by an older seed/schema version instead of seeding again",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--pg-schema", help="PostgreSQL schema of the data set (default: bench_<scale>)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    args = parser.parse_args(argv)

    pg_base = os.environ.get("MARKETPLACE_BENCH_POSTGRES_URL")
    backends = args.backend or (["sqlite", "postgresql"] if pg_base else ["sqlite"])
    figures = list(FIGURES) if not args.only else [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    if "postgresql" in backends and not pg_base:
        parser.error("--backend postgresql needs MARKETPLACE_BENCH_POSTGRES_URL")

    results: dict[str, dict] = {}
    tables = []
    for backend in backends:
        log(f"== {backend}")
        dataset = prepare(
            backend,
            args.scale,
            data_dir=args.data_dir,
            pg_base=pg_base,
            pg_schema=args.pg_schema,
            fresh=args.fresh,
            reuse_stale=args.reuse_stale,
            log=log,
        )
        rows = [seed_row(dataset).to_json()]
        for figure in figures:
            rows += run_figure(figure, dataset, args.quick)
            tidy(dataset)  # PostgreSQL: what autovacuum would do between figures
        results[backend] = {"dataset": dataset.to_json(), "rows": rows}
        tables.append(markdown(backend, dataset.to_json(), rows))
    doc = document(args.scale, args.quick, results)
    path = write(doc, args.results_dir)
    print("\n\n".join(tables))
    print(f"\n(JSON: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
    unmet = [r for b in results.values() for r in b["rows"] if r["met"] is False]
    return 1 if (args.strict and unmet) else 0


if __name__ == "__main__":
    sys.exit(main())
