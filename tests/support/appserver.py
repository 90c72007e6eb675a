"""Start the real app (`streamlit run streamlit_app.py`) on a free loopback port for HTTP and browser tests.

    with run_app(tmp_path, env={...}, secrets={"auth": {...}}) as base_url:   # http://127.0.0.1:<port>
        httpx.get(f"{base_url}/api/health")

`secrets` are written to a TOML file under `tmp_path` and handed to Streamlit with `--secrets.files`, so
the repository's `.streamlit/` is never read or touched and the app under test is the unmodified
`streamlit_app.py`. The database is a fresh SQLite file under `tmp_path` unless `env` names one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_secrets(path: Path, secrets: dict[str, Any]) -> Path:
    """Write nested tables ({"auth": {..., "auth0": {...}}}) as a secrets.toml."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not (isinstance(v, dict) and _is_table(k, v))}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in values.items():
            if k not in scalars:
                table(f"{name}.{k}", v)

    for name, values in secrets.items():
        table(name, values)
    path.write_text("\n".join(lines) + "\n")
    return path


def _is_table(key: str, value: dict) -> bool:
    # inline tables (client_kwargs = {...}) stay inline; provider sections become [auth.<name>] tables
    return key not in ("client_kwargs",)


@contextlib.contextmanager
def run_app(
    tmp_path: Path,
    *,
    env: dict[str, str | None] | None = None,
    secrets: dict[str, Any] | None = None,
    port: int | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """Serve the app on 127.0.0.1:<port>; yields the base URL; stops it afterwards. `env` None values unset."""
    port = port or free_port()
    log_path = tmp_path / f"app-{port}.log"
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "streamlit_app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    empty = tmp_path / "no-secrets.toml"
    secrets_file = write_secrets(tmp_path / "secrets.toml", secrets) if secrets else empty
    if not secrets:
        empty.write_text("")
    args += ["--secrets.files", str(secrets_file)]  # only this file: never the repo's or the home folder's
    full_env = {
        **os.environ,
        "MARKETPLACE_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "MARKETPLACE_METERING_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (env or {}).items():  # None removes a variable
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            _wait_ready(base, proc, timeout, log_path)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the app did not answer within {timeout} s:\n{log_path.read_text()[-4000:]}")
