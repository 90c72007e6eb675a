"""localstripe in a process of its own.

localstripe keeps its store and its aiohttp app in module globals: a second LocalStripe in the same
test process cannot start (the app is bound to the first one's event loop), and two apps with
separate databases sharing one store collide (the same user id maps to different people).
`localstripe_process()` runs tests/payments/stripe_peer.py's LocalStripe in a child process and
yields its URLs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CHILD = (
    "import sys\n"
    "from tests.payments.stripe_peer import LocalStripe\n"
    "server = LocalStripe()\n"
    "print(server.url, flush=True)\n"
    "sys.stdin.read()  # until the parent closes our stdin\n"
    "server.stop()\n"
)


@dataclass(frozen=True)
class StripePeer:
    url: str

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"


@contextlib.contextmanager
def localstripe_process() -> Iterator[StripePeer]:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = (proc.stdout.readline() if proc.stdout else "").strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"localstripe did not start (exit code {proc.poll()})")
        yield StripePeer(url)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
