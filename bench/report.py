"""The results as a markdown table (one per backend) and as JSON under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.config import ROOT

RESULTS_DIR = ROOT / "bench" / "results"
COLUMNS = ("what", "figure", "floor", "ratio", "target", "met?")


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _met(row: dict) -> str:
    if row["met"] is None:
        return "n/a"
    return "yes" if row["met"] else "**no**"


def markdown(backend: str, dataset: dict, rows: list[dict]) -> str:
    """One backend's table, with a line saying which data it ran on."""
    counts = dataset.get("counts", {})
    data = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    how = "reused" if dataset.get("reused") else "seeded in this run"
    lines = [
        f"### {backend}: scale {dataset.get('scale')} ({how}; {data})",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        r = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        figure = row["figure"] + (f" ({row['note']})" if row.get("note") else "")
        cells = [row["what"], figure, row["floor"] or "-", r or "-", row["target"], _met(row)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    met = sum(1 for row in rows if row["met"])
    lines += ["", f"{met} of {len(rows)} targets met on {backend}."]
    return "\n".join(lines)


def document(scale: str, quick: bool, backends: dict[str, dict]) -> dict:
    """The JSON document: when, where, on which data, and every row."""
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "quick": quick,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "backends": backends,
    }


def write(doc: dict, results_dir: Path = RESULTS_DIR) -> Path:
    """Write `bench-<time>.json` and `latest.json`; returns the first."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = doc["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = results_dir / f"bench-{doc['scale']}-{stamp}.json"
    text = json.dumps(doc, indent=2)
    path.write_text(text)
    (results_dir / f"latest-{doc['scale']}.json").write_text(text)
    return path
