"""The demo fleet plays the node agents of seeded nodes: heartbeats, and starting pending deployments."""

from sqlalchemy import select

from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.nodes import simulator
from services.nodes.models import Node
from services.nodes.tokens import hash_token
from services.stats import service as stats


def test_tick_keeps_seeded_nodes_online_and_starts_their_pending_deployments(seeded_db, uow):
    with uow:
        s = uow.session
        pending = s.scalars(select(Deployment.id).where(Deployment.status == "pending")).all()
        placed = set(
            s.scalars(select(DeploymentPlacement.deployment_id).where(DeploymentPlacement.deployment_id.in_(pending)))
        )
        # one pending deployment sits on a node with a real agent token: the fleet must leave it alone
        agent_dep = sorted(placed)[0]
        agent_node = s.scalar(select(DeploymentPlacement.node_id).where(DeploymentPlacement.deployment_id == agent_dep))
        s.get(Node, agent_node).token_hash = hash_token("cmn_real-agent")
        uow.commit()
    simulator.tick(uow)
    assert stats.summary(uow).nodes_online > 0
    with uow:
        s = uow.session
        statuses = dict(s.execute(select(Deployment.id, Deployment.status).where(Deployment.id.in_(placed))).all())
        assert statuses[agent_dep] == "pending"
        started = [d for d in placed if d != agent_dep and statuses[d] == "running"]
        assert started, "pending deployments on simulated nodes should be started"
        events = s.scalars(select(DeploymentEvent.kind).where(DeploymentEvent.deployment_id == started[0])).all()
        assert "started" in events
    simulator.tick(uow)  # a second tick changes nothing more for them
    with uow:
        n_events = (
            uow.session.query(DeploymentEvent)
            .filter(DeploymentEvent.deployment_id == started[0], DeploymentEvent.kind == "started")
            .count()
        )
    assert n_events == 1
