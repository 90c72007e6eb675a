"""The agent never crashes on a bad answer and backs off when the API fails.

The "bad API" is a real HTTP server on loopback that answers with garbage (not the marketplace):
HTML instead of JSON, JSON of the wrong shape, assignments with broken items, 500s, 401s, or a
closed port. Each agent cycle must return a wait time and raise nothing.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.agent import Agent, Backoff, main
from services.nodes.tokens import new_token
from tests.support.appserver import free_port

MODES = {
    "html": (200, "text/html", b"<html>maintenance</html>"),
    "json-list": (200, "application/json", b"[1, 2, 3]"),
    "broken-items": (200, "application/json", json.dumps({"items": [1, {"deployment_id": "x"}, None]}).encode()),
    "items-not-a-list": (200, "application/json", b'{"items": "nope", "next_cursor": 5}'),
    "server-error": (500, "text/plain", b"boom"),
    "unauthorized": (401, "application/problem+json", b'{"detail": "Not authenticated"}'),
    "too-many": (429, "text/plain", b"slow down"),
}


class BadApi:
    def __init__(self):
        self.mode = "html"
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                status, ctype, body = MODES[outer.mode]
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's naming)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bad_api():
    api = BadApi()
    yield api
    api.close()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_bad_answer_is_logged_and_the_agent_carries_on(bad_api, mode, caplog):
    caplog.set_level(logging.DEBUG)
    token = new_token()
    bad_api.mode = mode
    agent = Agent(bad_api.url, token, interval=1, max_backoff=2, timeout=2)
    for _ in range(3):
        delay = agent.cycle()
        assert 0 < delay <= 2
    assert bad_api.requests, "the agent talked to the API"
    assert token not in caplog.text
    assert "Traceback" not in caplog.text


def test_broken_assignment_items_are_skipped_and_a_good_heartbeat_still_counts(bad_api):
    # a heartbeat answered 200 (even with junk) keeps the normal interval; the junk items are ignored
    bad_api.mode = "broken-items"
    agent = Agent(bad_api.url, new_token(), interval=1, max_backoff=2, timeout=2)
    assert agent.cycle() == 1
    assert agent.fetch_assignments() == []
    assert agent.local == {}


def test_an_unreachable_api_backs_off_more_and_more_up_to_the_cap(caplog):
    caplog.set_level(logging.INFO)
    token = new_token()
    agent = Agent(f"http://127.0.0.1:{free_port()}/api", token, interval=1, max_backoff=8, timeout=1)
    delays = [agent.cycle() for _ in range(7)]
    assert all(0 < d <= 8 for d in delays)
    assert delays[-1] >= 4  # capped ceiling 8, equal jitter: never below half of it
    assert "retrying in" in caplog.text and token not in caplog.text


def test_backoff_doubles_with_jitter_and_is_capped():
    backoff = Backoff(initial=1, cap=10, rng=random.Random(7))
    for n in range(1, 12):
        ceiling = min(10, 2 ** (n - 1))
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1
    # two agents failing together do not retry in lockstep
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


def test_the_command_line_refuses_to_start_without_a_token(monkeypatch, caplog):
    monkeypatch.delenv("MARKETPLACE_NODE_TOKEN", raising=False)
    assert main(["--api", "http://127.0.0.1:9/api", "--once"]) == 2
    assert "no node token" in caplog.text
    with pytest.raises(SystemExit):
        main(["--api", "http://127.0.0.1:9/api", "--token", "x", "--interval", "0"])
