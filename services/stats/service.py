"""Marketplace figures for the home page (public to every signed-in person)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from services.auth.identity import Identity
from services.auth.permissions import Role
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment
from services.ledger.models import LedgerAccount
from services.maintenance.models import MaintenanceWindow
from services.nodes.models import Node
from services.nodes.status import is_online_clause
from services.notifications.models import Notification
from services.providers.models import Provider, ProviderRequest


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


@dataclass(frozen=True)
class PersonalSummary:
    """What the home page shows a person about their own corner of the marketplace."""

    my_deployments_by_status: dict[str, int]
    credits_cents: int
    unread_notifications: int
    provider_company: str | None = None
    my_nodes_online: int = 0
    my_nodes_total: int = 0
    my_upcoming_windows: int = 0
    pending_provider_requests: int | None = None  # operators only


def personal_summary(uow: UnitOfWork, me: Identity) -> PersonalSummary:
    """The signed-in person's own figures (their deployments, credits, nodes; operators: the request queue)."""
    with uow:
        s = uow.session
        mine = dict(
            s.execute(
                select(Deployment.status, func.count())
                .where(Deployment.owner_user_id == me.user_id, Deployment.status != "deleted")
                .group_by(Deployment.status)
            ).all()
        )
        credits = s.scalar(select(LedgerAccount.balance_cents).where(LedgerAccount.user_id == me.user_id)) or 0
        unread = s.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == me.user_id, Notification.read_at.is_(None))
        )
        company, online, total, windows = None, 0, 0, 0
        if me.has(Role.PROVIDER):
            provider = s.scalar(select(Provider).where(Provider.owner_user_id == me.user_id))
            if provider is not None:
                company = provider.company
                live = (Node.provider_id == provider.id, Node.status != "decommissioned")
                total = s.scalar(select(func.count()).select_from(Node).where(*live)) or 0
                online = s.scalar(select(func.count()).select_from(Node).where(*live, is_online_clause())) or 0
                windows = (
                    s.scalar(
                        select(func.count())
                        .select_from(MaintenanceWindow)
                        .where(
                            MaintenanceWindow.provider_id == provider.id,
                            MaintenanceWindow.status == "scheduled",
                            MaintenanceWindow.ends_at >= utcnow(),
                        )
                    )
                    or 0
                )
        pending = None
        if me.has(Role.OPERATOR):
            pending = s.scalar(
                select(func.count()).select_from(ProviderRequest).where(ProviderRequest.status == "pending")
            )
    return PersonalSummary(
        my_deployments_by_status={k: int(v) for k, v in mine.items()},
        credits_cents=int(credits),
        unread_notifications=int(unread or 0),
        provider_company=company,
        my_nodes_online=int(online),
        my_nodes_total=int(total),
        my_upcoming_windows=int(windows),
        pending_provider_requests=None if pending is None else int(pending),
    )
