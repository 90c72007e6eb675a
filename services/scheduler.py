"""A small in-process scheduler: named jobs run every N seconds on one daemon thread.

The app starts it in its lifespan hook (streamlit_app.py). Jobs must be idempotent: the same work
may also run from cron (`python -m services.metering`) or another process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("marketplace.scheduler")


@dataclass
class Job:
    name: str
    every_seconds: float
    fn: Callable[[], object]
    next_run: float = field(default=0.0)


class Scheduler:
    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, every_seconds: float, fn: Callable[[], object], *, first_delay: float = 0.0) -> None:
        self.jobs.append(Job(name, every_seconds, fn, time.monotonic() + first_delay))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="marketplace-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for job in self.jobs:
                if now >= job.next_run:
                    job.next_run = now + job.every_seconds
                    try:
                        job.fn()
                    except Exception:  # a failing job must not stop the others; it is logged and retried
                        log.exception("scheduled job %s failed", job.name)
            self._stop.wait(1.0)
