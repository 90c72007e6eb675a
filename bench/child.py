"""Runs one figure in its own process (`python -m bench.child <figure> ...`), so that peak memory,
caches and imports of one figure do not colour another. Writes the rows as JSON to --out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

# figure name -> module in bench/ with `measure(ctx) -> list[Row]`
FIGURES = {
    "pages": "bench.pages",
    "placement": "bench.placement",
    "metering": "bench.metering",
    "heartbeat": "bench.heartbeat",
    "webhooks": "bench.webhooks",
}


@dataclass
class Context:
    backend: str
    url: str
    scale: str
    quick: bool

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--backend", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    # The app's code reads its database from the environment: point all of it at the data set.
    os.environ["MARKETPLACE_DATABASE_URL"] = args.url
    os.environ["MARKETPLACE_METERING_ENABLED"] = "false"
    from services.config import reload_settings

    reload_settings()
    ctx = Context(backend=args.backend, url=args.url, scale=args.scale, quick=args.quick)
    try:
        module = importlib.import_module(FIGURES[args.figure])
        rows = [r.to_json() for r in module.measure(ctx)]
        Path(args.out).write_text(json.dumps({"rows": rows}))
        return 0
    except Exception as exc:
        traceback.print_exc()
        Path(args.out).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
