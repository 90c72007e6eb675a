"""A small, hand-built marketplace for scheduler tests: pricing, providers, nodes, metrics, maintenance."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import func, select

from services.audit.models import AuditEntry
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode
from services.nodes.models import Node, NodeMetric
from services.pricing.models import PricingVersion
from services.pricing.service import DEFAULT_RATES
from services.providers.models import Provider
from tests.support.people import make_person

_n = itertools.count(1)


def add_pricing(uow: UnitOfWork, **overrides) -> None:
    """The launch price list (DEFAULT_RATES), in force since yesterday."""
    with uow:
        uow.session.add(
            PricingVersion(version=1, effective_at=utcnow() - timedelta(days=1), **(DEFAULT_RATES | overrides))
        )
        uow.commit()


def add_provider(uow: UnitOfWork, company: str | None = None, *, status: str = "active") -> int:
    owner = make_person(uow, "cloud-provider")
    with uow:
        k = next(_n)
        p = Provider(
            owner_user_id=owner.user_id,
            company=company or f"Provider {k}",
            contact_email=f"ops{k}@p.example",
            status=status,
        )
        uow.session.add(p)
        uow.session.flush()
        pid = p.id
        uow.commit()
        return pid


def add_node(
    uow: UnitOfWork,
    provider_id: int,
    name: str,
    *,
    region: str = "eu-west",
    vcpu: int = 16,
    ram_gb: int = 64,
    disk_gb: int = 1000,
    gpu_model: str | None = None,
    gpu_count: int = 0,
    factor: int = 100,
    status: str = "online",
    heartbeat_age: timedelta = timedelta(seconds=10),
) -> int:
    with uow:
        n = Node(
            provider_id=provider_id,
            name=name,
            region=region,
            country="IE",
            vcpu=vcpu,
            ram_gb=ram_gb,
            disk_gb=disk_gb,
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            price_factor_pct=factor,
            status=status,
            last_heartbeat_at=utcnow() - heartbeat_age,
        )
        uow.session.add(n)
        uow.session.flush()
        nid = n.id
        uow.commit()
        return nid


def add_metrics(uow: UnitOfWork, node_id: int, *, online: int, offline: int, now: datetime | None = None) -> None:
    """One report per 5-minute slot up to `now`: the latest `offline` of them offline, the `online` before them
    online. The node is registered just before its first report (uptime is counted from there)."""
    now = now or utcnow()
    count = online + offline
    with uow:
        s = uow.session
        s.add_all(
            NodeMetric(
                node_id=node_id,
                ts=now - timedelta(minutes=5 * k),
                cpu_pct=10.0,
                ram_pct=10.0,
                disk_pct=10.0,
                online=k >= offline,
            )
            for k in range(count)
        )
        node = s.get(Node, node_id)
        node.created_at = min(node.created_at, now - timedelta(minutes=5 * count))
        uow.commit()


def add_maintenance(
    uow: UnitOfWork, provider_id: int, node_ids: list[int], starts: datetime, ends: datetime, status="scheduled"
) -> None:
    with uow:
        w = MaintenanceWindow(provider_id=provider_id, starts_at=starts, ends_at=ends, reason="test", status=status)
        uow.session.add(w)
        uow.session.flush()
        uow.session.add_all(MaintenanceWindowNode(window_id=w.id, node_id=n) for n in node_ids)
        uow.commit()


def occupy(uow: UnitOfWork, node_id: int, *, vcpu: int, ram_gb: int = 1, status: str = "running", gpus: int = 0) -> int:
    """Another person's deployment holding resources on a node."""
    other = make_person(uow)
    with uow:
        d = Deployment(
            owner_user_id=other.user_id,
            name=f"other-{next(_n)}",
            workload="ubuntu-vm",
            vcpu=vcpu,
            ram_gb=ram_gb,
            disk_gb=10,
            gpu_model="A100" if gpus else None,
            gpu_count=gpus,
            status=status,
            price_per_hour_cents=10,
        )
        uow.session.add(d)
        uow.session.flush()
        uow.session.add(DeploymentPlacement(deployment_id=d.id, slot=0, node_id=node_id, role="replica"))
        did = d.id
        uow.commit()
        return did


def counts(uow: UnitOfWork) -> tuple[int, int, int, int]:
    """(deployments, placements, events, audit entries): to prove that a refusal wrote nothing."""
    with uow:
        s = uow.session
        return tuple(
            int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Deployment, DeploymentPlacement, DeploymentEvent, AuditEntry)
        )
