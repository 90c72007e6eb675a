"""The node agent a provider runs on each node: `python -m services.agent --api URL --token T`.

Every `--interval` seconds it sends a heartbeat with the host's real metrics (psutil: CPU, RAM,
disk, network rates), then reads the node's assignments and reports each deployment's state
(running, failed with a reason, stopped). When the API is unreachable or failing it backs off
exponentially (doubling from 1 s, capped at `--max-backoff`, with jitter so a fleet does not
retry in step) and carries on when the API is back. A bad answer is logged and skipped, never fatal.
On SIGTERM/SIGINT it sends a last `offline` heartbeat and exits.

The token is read from `--token` or, better (command lines are visible to other users of the host),
from the MARKETPLACE_NODE_TOKEN environment variable or `--token-file`. It is never logged.

Workloads: this agent has no container engine. Its runtime (`AcknowledgingRuntime`) accepts an
assignment, tracks it as running and reports it so; a runtime that drives a real engine plugs in
by implementing `Runtime.start/stop`. A start that raises is reported as `failed` with the error.

The agent only talks HTTP: it imports nothing else from this application and needs no database.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

log = logging.getLogger("marketplace.agent")

VERSION = "1.0"
MAX_ASSIGNMENT_PAGES = 50


# ---------------------------------------------------------------- metrics
class MetricsSampler:
    """Host metrics from psutil; network rates are the byte counters' change since the previous sample."""

    def __init__(self, disk_path: str = "/"):
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        self._net = psutil.net_io_counters()
        self._net_at = time.monotonic()

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        net = psutil.net_io_counters()
        elapsed = max(now - self._net_at, 1e-3)
        # counters can reset (interface restart, wrap): a negative change counts as none
        recv = max(net.bytes_recv - self._net.bytes_recv, 0)
        sent = max(net.bytes_sent - self._net.bytes_sent, 0)
        self._net, self._net_at = net, now
        return {
            "cpu_pct": _pct(psutil.cpu_percent(interval=None)),
            "ram_pct": _pct(psutil.virtual_memory().percent),
            "disk_pct": _pct(psutil.disk_usage(self.disk_path).percent),
            "net_in_mbps": round(recv * 8 / 1_000_000 / elapsed, 3),
            "net_out_mbps": round(sent * 8 / 1_000_000 / elapsed, 3),
        }


def _pct(value: float) -> float:
    return round(min(max(float(value), 0.0), 100.0), 2)


# ---------------------------------------------------------------- workloads
class Runtime(Protocol):
    def start(self, assignment: dict[str, Any]) -> None: ...
    def stop(self, deployment_id: int) -> None: ...


class AcknowledgingRuntime:
    """Accepts assignments without running anything (no container engine on this agent)."""

    def start(self, assignment: dict[str, Any]) -> None:
        log.info("deployment %s (%s) accepted", assignment["deployment_id"], assignment.get("name", ""))

    def stop(self, deployment_id: int) -> None:
        log.info("deployment %s released", deployment_id)


# ---------------------------------------------------------------- backoff
@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th consecutive failure waits about initial * 2**(n-1), capped."""

    initial: float = 1.0
    cap: float = 60.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.initial * 2 ** min(self.failures - 1, 30))
        return self.rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never 0, never in lockstep

    def reset(self) -> None:
        self.failures = 0


class ApiUnavailable(Exception):
    """The API could not be reached or answered 5xx/429: back off and try again."""


# ---------------------------------------------------------------- the agent
class Agent:
    def __init__(
        self,
        api: str,
        token: str,
        *,
        interval: float = 15.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        disk_path: str = "/",
        runtime: Runtime | None = None,
        client: httpx.Client | None = None,
    ):
        self.api = api.rstrip("/")
        self.interval = interval
        self.backoff = Backoff(cap=max_backoff)
        self.runtime = runtime or AcknowledgingRuntime()
        self.sampler = MetricsSampler(disk_path)
        self.send_sample_time = True
        self.stopping = threading.Event()
        self.local: dict[int, str] = {}  # deployment id -> what this node is doing: running | stopped
        self.heartbeats_sent = 0
        self._client = client or httpx.Client(timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": f"marketplace-node-agent/{VERSION}"}

    # --- HTTP
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, self.api + path, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{type(exc).__name__}: cannot reach {self.api}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ApiUnavailable(f"{method} {path} answered {response.status_code}")
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    @staticmethod
    def _problem(response: httpx.Response) -> str:
        body = Agent._json(response)
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            return body["detail"][:300]
        return response.text[:200]

    # --- one heartbeat
    def heartbeat(self, status: str = "online") -> bool:
        """Send one heartbeat; True when the API took it. Raises ApiUnavailable when it could not."""
        body: dict[str, Any] = {"status": status, "metrics": self.sampler.sample(), "agent_version": VERSION}
        if self.send_sample_time:
            body["ts"] = datetime.now(UTC).isoformat()
        response = self._request("POST", "/v1/agent/heartbeat", json=body)
        if response.status_code == 200:
            self.heartbeats_sent += 1
            answer = self._json(response)
            if not isinstance(answer, dict):
                log.warning("heartbeat accepted but the answer was not JSON; carrying on")
            return True
        if response.status_code == 422 and "ts" in response.text and self.send_sample_time:
            log.warning(
                "the API refused this host's clock (%s); sending samples without a time from now on",
                self._problem(response),
            )
            self.send_sample_time = False
            return False
        if response.status_code == 401:
            log.error("the API refused the node token (wrong, or rotated: copy the new one from the Nodes page)")
        elif response.status_code == 403:
            log.error("the API refused this node: %s", self._problem(response))
        else:
            log.warning("heartbeat refused (%s): %s", response.status_code, self._problem(response))
        return False

    # --- assignments
    def fetch_assignments(self) -> list[dict[str, Any]] | None:
        """Every assignment of this node (following the cursor), or None when the answer made no sense."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_ASSIGNMENT_PAGES):
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            response = self._request("GET", "/v1/agent/assignments", params=params)
            body = self._json(response)
            if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
                log.warning("could not read assignments (%s): %s", response.status_code, self._problem(response))
                return None
            items.extend(a for a in body["items"] if _valid_assignment(a))
            cursor = body.get("next_cursor") if isinstance(body.get("next_cursor"), str) else None
            if not cursor:
                break
        return items

    def report(self, deployment_id: int, status: str, reason: str = "") -> None:
        body = {"status": status, "reason": reason} if reason else {"status": status}
        response = self._request("POST", f"/v1/agent/deployments/{deployment_id}/status", json=body)
        if response.status_code == 200:
            log.info("deployment %s reported %s", deployment_id, status)
        else:
            log.warning(
                "report of deployment %s as %s refused (%s): %s",
                deployment_id,
                status,
                response.status_code,
                self._problem(response),
            )

    def reconcile(self) -> None:
        """Bring local workloads in line with the assignments and report what changed."""
        assignments = self.fetch_assignments()
        if assignments is None:
            return
        seen: set[int] = set()
        for a in assignments:
            dep_id = a["deployment_id"]
            if dep_id in seen:  # several slots of one deployment on this node: one workload report
                continue
            seen.add(dep_id)
            if a["desired_state"] == "running":
                if self.local.get(dep_id) != "running":
                    try:
                        self.runtime.start(a)
                    except Exception as exc:  # a workload that cannot start is a failed deployment
                        self.local[dep_id] = "stopped"
                        self.report(dep_id, "failed", f"could not start: {exc}"[:500])
                        continue
                    self.local[dep_id] = "running"
                if a["status"] == "pending":
                    self.report(dep_id, "running")
            elif self.local.get(dep_id) == "running":
                self._stop(dep_id)
        for dep_id in [d for d, state in self.local.items() if state == "running" and d not in seen]:
            self._stop(dep_id)  # deleted, or moved away from this node

    def _stop(self, deployment_id: int) -> None:
        try:
            self.runtime.stop(deployment_id)
        except Exception as exc:
            log.warning("stopping deployment %s failed: %s", deployment_id, exc)
        self.local[deployment_id] = "stopped"

    # --- the loop
    def cycle(self) -> float:
        """One heartbeat (+ reconcile on success); returns how long to wait before the next."""
        try:
            accepted = self.heartbeat()
            if accepted:
                if self.backoff.failures:
                    log.info("the API is back after %d failed attempts", self.backoff.failures)
                self.backoff.reset()
                self.reconcile()
                return self.interval
            # refused (401/403/...): the API is up but will not take us; retry slowly, never spin
            return max(self.interval, self.backoff.next_delay())
        except ApiUnavailable as exc:
            delay = self.backoff.next_delay()
            log.warning("%s; retrying in %.1f s", exc, delay)
            return delay
        except Exception:  # a bug or a bizarre answer must not kill the agent
            log.exception("unexpected error in the agent loop; carrying on")
            return max(self.interval, self.backoff.next_delay())

    def run(self, *, once: bool = False) -> None:
        log.info("node agent %s reporting to %s every %s s", VERSION, self.api, self.interval)
        while not self.stopping.is_set():
            delay = self.cycle()
            if once:
                self._client.close()
                return
            self.stopping.wait(delay)
        self._goodbye()

    def _goodbye(self) -> None:
        try:
            self.heartbeat(status="offline")
        except Exception as exc:
            log.info("could not send the offline heartbeat: %s", exc.__class__.__name__)
        self._client.close()


def _valid_assignment(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("deployment_id"), int)
        and item.get("desired_state") in ("running", "stopped")
        and isinstance(item.get("status"), str)
    )


# ---------------------------------------------------------------- command line
def _read_token(args: argparse.Namespace) -> str | None:
    if args.token:
        return args.token.strip()
    if args.token_file:
        return Path(args.token_file).read_text().strip()
    return (os.environ.get("MARKETPLACE_NODE_TOKEN") or "").strip() or None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.agent", description="Cloud Marketplace node agent")
    p.add_argument("--api", required=True, help="the marketplace API base URL, e.g. https://market.example/api")
    p.add_argument("--token", help="node token (prefer MARKETPLACE_NODE_TOKEN or --token-file)")
    p.add_argument("--token-file", help="file holding the node token")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between heartbeats (default 15)")
    p.add_argument("--max-backoff", type=float, default=60.0, help="longest wait between retries (default 60)")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds (default 10)")
    p.add_argument("--disk-path", default="/", help="filesystem whose usage is reported (default /)")
    p.add_argument("--once", action="store_true", help="one heartbeat and reconcile, then exit")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.interval < 1:
        p.error("--interval must be at least 1 second")
    if args.max_backoff < 1:
        p.error("--max-backoff must be at least 1 second")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines add nothing; headers are never logged
    token = _read_token(args)
    if not token:
        log.error("no node token: pass --token, --token-file or set MARKETPLACE_NODE_TOKEN")
        return 2
    agent = Agent(
        args.api,
        token,
        interval=args.interval,
        max_backoff=args.max_backoff,
        timeout=args.timeout,
        disk_path=args.disk_path,
    )

    def _stop(signum, _frame) -> None:
        log.info("signal %s: sending a last heartbeat and stopping", signum)
        agent.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run(once=args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
