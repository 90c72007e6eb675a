"""Marketplace figures for the home page (public to every signed-in person)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from services.db.engine import UnitOfWork
from services.deployments.models import Deployment
from services.nodes.models import Node
from services.nodes.status import is_online_clause
from services.providers.models import Provider


@dataclass(frozen=True)
class MarketplaceSummary:
    providers: int
    nodes_total: int
    nodes_online: int
    deployments_by_status: dict[str, int] = field(default_factory=dict)
    regions: int = 0


def summary(uow: UnitOfWork) -> MarketplaceSummary:
    """Counts straight from the database: providers, nodes (online/total), deployments by status."""
    with uow:
        s = uow.session
        providers = s.scalar(select(func.count()).select_from(Provider).where(Provider.status == "active")) or 0
        nodes_total = s.scalar(select(func.count()).select_from(Node).where(Node.status != "decommissioned")) or 0
        nodes_online = s.scalar(select(func.count()).select_from(Node).where(is_online_clause())) or 0
        regions = s.scalar(select(func.count(func.distinct(Node.region))).where(Node.status != "decommissioned")) or 0
        by_status = dict(s.execute(select(Deployment.status, func.count()).group_by(Deployment.status)).all())
    return MarketplaceSummary(
        providers=int(providers),
        nodes_total=int(nodes_total),
        nodes_online=int(nodes_online),
        deployments_by_status={k: int(v) for k, v in by_status.items()},
        regions=int(regions),
    )
