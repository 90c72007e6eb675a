"""Small helpers shared by the provider tests (counts, seeded facts read straight from the database)."""

from __future__ import annotations

from sqlalchemy import func, select

from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentPlacement
from services.nodes.models import Node
from services.providers.models import Provider


def count(uow: UnitOfWork, model, *where) -> int:
    with uow:
        return int(uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def provider_id_of(uow: UnitOfWork, user_id: int) -> int:
    with uow:
        return uow.session.scalar(select(Provider.id).where(Provider.owner_user_id == user_id))


def nodes_of(uow: UnitOfWork, provider_id: int) -> list:
    """(id, name, status) rows of the provider's nodes, by id."""
    with uow:
        return list(
            uow.session.execute(
                select(Node.id, Node.name, Node.status).where(Node.provider_id == provider_id).order_by(Node.id)
            )
        )


def active_deployments_by_node(uow: UnitOfWork, provider_id: int) -> dict[int, set[int]]:
    """node id -> ids of pending/running deployments placed on it (computed independently of the services)."""
    with uow:
        rows = uow.session.execute(
            select(DeploymentPlacement.node_id, Deployment.id)
            .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
            .join(Node, Node.id == DeploymentPlacement.node_id)
            .where(Node.provider_id == provider_id, Deployment.status.in_(("pending", "running")))
        ).all()
    out: dict[int, set[int]] = {}
    for node_id, dep_id in rows:
        out.setdefault(node_id, set()).add(dep_id)
    return out
