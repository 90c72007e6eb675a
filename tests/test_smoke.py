"""Start the real app (`streamlit run streamlit_app.py`) and fetch its health checks and home page."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.appserver import free_port

ROOT = Path(__file__).resolve().parents[1]


def start_app(env: dict[str, str], port: int) -> subprocess.Popen:
    """`streamlit run streamlit_app.py` on 127.0.0.1:<port>, output captured."""
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"app exited with {proc.returncode}"
        try:
            last = httpx.get(url, timeout=2)
            if last.status_code == 200:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not healthy in {timeout}s: {last and last.status_code}")


def test_the_real_app_migrates_seeds_and_serves(tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        MARKETPLACE_DATABASE_URL=f"sqlite:///{tmp_path}/app.db",
        MARKETPLACE_DEMO_MODE="true",
        MARKETPLACE_ENV="development",
    )
    proc = start_app(env, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", proc)
        health = wait_for(f"http://127.0.0.1:{port}/api/health", proc)
        assert health.json() == {"status": "ok", "database": "ok"}
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert home.status_code == 200 and '<div id="root">' in home.text.replace("'", '"')
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert b"Traceback" not in out, out.decode()[-3000:]


def test_demo_mode_refuses_to_start_in_production(tmp_path):
    env = dict(os.environ, MARKETPLACE_DATABASE_URL=f"sqlite:///{tmp_path}/app.db", MARKETPLACE_ENV="production")
    env.pop("MARKETPLACE_DEMO_MODE", None)
    port = free_port()
    proc = start_app(env, port)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("the app kept running in production without sign-in configured") from None
    assert proc.returncode != 0
    assert b"MARKETPLACE_ENV=production" in out and b"[auth]" in out
