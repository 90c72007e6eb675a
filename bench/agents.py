"""Load for the heartbeat figure: `python -m bench.agents` plays node agents over HTTP on loopback.

Runs in its own process (so its CPU is not the server's). `--concurrency` agents (asyncio tasks on
one keep-alive connection pool) each speak for their own slice of the nodes in --tokens, sending
heartbeats with metrics back to back. A warm-up is not counted; counting stops after --duration
seconds or --count heartbeats, whichever comes first. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

PATH = "/api/v1/agent/heartbeat"


def _body(rng: random.Random) -> bytes:
    return json.dumps(
        {
            "status": "online",
            "metrics": {
                "cpu_pct": round(rng.uniform(5, 95), 1),
                "ram_pct": round(rng.uniform(10, 90), 1),
                "disk_pct": round(rng.uniform(20, 80), 1),
                "net_in_mbps": round(rng.uniform(1, 500), 1),
                "net_out_mbps": round(rng.uniform(1, 500), 1),
            },
        }
    ).encode()


async def _run(base: str, tokens: list[str], concurrency: int, duration: float, count: int, warmup: float) -> dict:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    state = {"counting": False, "sent": 0, "stop": False, "all": 0}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    url = base.rstrip("/") + PATH

    async def agent(index: int, session: aiohttp.ClientSession) -> None:
        mine = tokens[index::concurrency] or tokens
        rng = random.Random(index)
        i = 0
        while not state["stop"]:
            token = mine[i % len(mine)]
            i += 1
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            start = time.perf_counter()
            try:
                async with session.post(url, data=_body(rng), headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            state["all"] += 1
            if state["counting"] and not state["stop"]:
                statuses[status] += 1
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                state["sent"] += 1
                if state["sent"] >= count:
                    state["stop"] = True

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(agent(i, session)) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        state["counting"] = True
        started = time.perf_counter()
        while not state["stop"] and time.perf_counter() - started < duration:
            await asyncio.sleep(0.05)
        state["stop"] = True
        elapsed = time.perf_counter() - started
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000, 2) if latencies else None

    ok = statuses.get(200, 0)
    return {
        "ok": ok,
        "sent": sum(statuses.values()),
        "sent_with_warmup": state["all"],
        "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": round(elapsed, 3),
        "per_second": round(ok / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--tokens", required=True, type=Path, help="file with one node token per line")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args(argv)
    tokens = [t for t in args.tokens.read_text().split() if t]
    result = asyncio.run(_run(args.base, tokens, args.concurrency, args.duration, args.count, args.warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
