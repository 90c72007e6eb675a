"""The node agent as a provider runs it (`python -m services.agent`), against the real app on loopback.

The app is `streamlit run streamlit_app.py` on a seeded SQLite copy; the node is registered through the
providers' service (as the Nodes page does) and the agent gets the token it returned. What a provider
would notice is checked through the same service the Nodes page reads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.nodes import service as nodes
from services.nodes.models import NodeMetric
from tests.support.appserver import free_port, run_app
from tests.support.people import demo_identity, make_person

ROOT = Path(__file__).resolve().parents[2]
NODE = dict(name="agent-live-1", region="eu-west", country="DE", vcpu=8, ram_gb=32, disk_gb=200)


def wait_until(check: Callable[[], object], what: str, timeout: float = 60) -> object:
    """Poll `check` until it returns something truthy (a deadline for a slow machine, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {what}")


class AgentProcess:
    def __init__(self, api: str, token: str, log: Path, *extra: str):
        self.log = log
        env = {**os.environ, "MARKETPLACE_NODE_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "services.agent", "--api", api, "--interval", "1", "--max-backoff", "2", *extra]
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def fleet(seeded_sqlite, tmp_path):
    """A provider's freshly registered node, its token, and a pending deployment placed on it."""
    uow = UnitOfWork(seeded_sqlite)
    provider = demo_identity(uow, "demo:provider")
    registered = nodes.register_node(uow, provider, NODE)
    owner = make_person(uow)
    with uow:  # set-up: a deployment the scheduler placed on this node, waiting for the node to start it
        s = uow.session
        d = Deployment(
            owner_user_id=owner.user_id, name="web-on-agent", workload="ubuntu-vm", image="ubuntu:24.04",
            vcpu=1, ram_gb=1, disk_gb=10, status="pending", price_per_hour_cents=1,
        )  # fmt: skip
        s.add(d)
        s.flush()
        s.add(DeploymentPlacement(deployment_id=d.id, slot=0, node_id=registered.node.id, role="replica"))
        uow.commit()
        deployment_id = d.id
    return seeded_sqlite, provider, registered.node.id, registered.token, deployment_id


def _app_env(db_url: str) -> dict[str, str]:
    return {"MARKETPLACE_DATABASE_URL": db_url, "MARKETPLACE_DEMO_MODE": "false", "MARKETPLACE_ENV": "test"}


def _node_view(db_url: str, provider, node_id: int):
    return nodes.get_for_provider(UnitOfWork(db_url), provider, node_id)


def _metric_count(db_url: str, node_id: int) -> int:
    with UnitOfWork(db_url) as uow:
        return uow.session.scalar(select(func.count()).select_from(NodeMetric).where(NodeMetric.node_id == node_id))


def test_the_agent_brings_its_node_online_with_real_metrics_and_starts_its_deployment(fleet, tmp_path):
    db_url, provider, node_id, token, deployment_id = fleet
    assert _node_view(db_url, provider, node_id).status == "offline"
    with run_app(tmp_path, env=_app_env(db_url)) as base:
        agent = AgentProcess(f"{base}/api", token, tmp_path / "agent.log")
        try:
            wait_until(lambda: _metric_count(db_url, node_id) >= 2, "two metric samples from the agent")
            assert _node_view(db_url, provider, node_id).status == "online"
            charts = nodes.node_metrics(UnitOfWork(db_url), provider, node_id)  # what the Nodes page charts
            assert charts.points and charts.node.status == "online"
            with UnitOfWork(db_url) as uow:
                sample = uow.session.scalar(
                    select(NodeMetric).where(NodeMetric.node_id == node_id).order_by(NodeMetric.ts.desc()).limit(1)
                )
                assert 0 <= sample.cpu_pct <= 100 and 0 < sample.ram_pct <= 100 and 0 < sample.disk_pct <= 100
                assert sample.net_in_mbps >= 0 and sample.net_out_mbps >= 0
            wait_until(lambda: _deployment_status(db_url, deployment_id) == "running", "the deployment running")
            with UnitOfWork(db_url) as uow:
                actors = uow.session.scalars(
                    select(DeploymentEvent.actor).where(DeploymentEvent.deployment_id == deployment_id)
                ).all()
            assert f"node:{node_id}" in actors
        finally:
            code = agent.stop()
        assert code == 0
        # a clean stop says goodbye: the node shows offline at once, not after the offline delay
        assert _node_view(db_url, provider, node_id).status == "offline"
    assert token not in agent.output()
    assert "Traceback" not in agent.output()


def _deployment_status(db_url: str, deployment_id: int) -> str:
    with UnitOfWork(db_url) as uow:
        return uow.session.get(Deployment, deployment_id).status


def test_the_agent_survives_the_api_going_away_and_resumes_when_it_is_back(fleet, tmp_path):
    db_url, provider, node_id, token, _deployment_id = fleet
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    with run_app(tmp_path, env=_app_env(db_url), port=port):
        agent = AgentProcess(api, token, tmp_path / "agent.log")
        wait_until(lambda: _metric_count(db_url, node_id) >= 1, "the first heartbeat")
    try:
        # the API is down: the agent keeps running and keeps trying
        wait_until(lambda: "retrying in" in agent.output(), "the agent noticing the API is down")
        assert agent.alive()
        before = _metric_count(db_url, node_id)
        down_view = _node_view(db_url, provider, node_id)
        with run_app(tmp_path, env=_app_env(db_url), port=port):
            wait_until(lambda: _metric_count(db_url, node_id) > before, "heartbeats after the API is back")
            wait_until(lambda: "the API is back" in agent.output(), "the agent seeing its heartbeat accepted")
            assert agent.alive()
            now_view = _node_view(db_url, provider, node_id)
            assert now_view.status == "online"
            assert now_view.last_heartbeat_at > down_view.last_heartbeat_at
    finally:
        agent.stop()
    out = agent.output()
    assert token not in out
    assert "Traceback" not in out
