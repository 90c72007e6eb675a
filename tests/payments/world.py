"""A small marketplace for payment tests: providers with nodes, users with credits, running deployments."""

from __future__ import annotations

import itertools
from datetime import timedelta

from services.auth.identity import Identity
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentPlacement
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount
from services.nodes.models import Node
from services.providers.models import Provider
from tests.support.people import make_person

_n = itertools.count(1)


def make_provider(uow: UnitOfWork, nodes: int = 2) -> tuple[int, list[int]]:
    """A provider (with its owner) and `nodes` online nodes; returns (provider id, node ids)."""
    owner = make_person(uow, "cloud-provider")
    with uow:
        s = uow.session
        k = next(_n)
        prov = Provider(owner_user_id=owner.user_id, company=f"Test Compute {k}", contact_email=f"ops{k}@p.example")
        s.add(prov)
        s.flush()
        node_rows = [
            Node(
                provider_id=prov.id,
                name=f"node-{k}-{i}",
                region="us-east",
                country="US",
                vcpu=64,
                ram_gb=256,
                disk_gb=4000,
                status="online",
            )
            for i in range(nodes)
        ]
        s.add_all(node_rows)
        s.flush()
        ids = prov.id, [n.id for n in node_rows]
        uow.commit()
        return ids


def give_credits(uow: UnitOfWork, user_id: int, cents: int, key: str | None = None) -> None:
    """Credit a user's account as a card top-up would (external:stripe -> credits)."""
    with uow:
        s = uow.session
        acct = ledger.user_account(s, user_id)
        stripe = ledger.system_account(s, "external:stripe")
        ledger.post(
            s,
            kind="topup",
            idempotency_key=key or f"test:topup:{user_id}:{next(_n)}",
            legs=[ledger.Leg(stripe.id, -cents), ledger.Leg(acct.id, cents)],
        )
        uow.commit()


def launch(
    uow: UnitOfWork,
    owner: Identity,
    node_ids: list[int],
    *,
    price: int = 137,
    fee_bp: int = 1000,
    status: str = "running",
    backup_node: int | None = None,
    name: str | None = None,
) -> int:
    """A deployment with one replica per node in `node_ids` (and a backup VM), at a fixed hourly price."""
    with uow:
        s = uow.session
        now = utcnow()
        dep = Deployment(
            owner_user_id=owner.user_id,
            name=name or f"dep-{next(_n)}",
            workload="ubuntu-vm",
            vcpu=2,
            ram_gb=4,
            disk_gb=40,
            replicas=max(1, len(node_ids)),
            backup_enabled=backup_node is not None,
            status=status,
            price_per_hour_cents=price,
            platform_fee_bp=fee_bp,
            started_at=now - timedelta(hours=3) if status == "running" else None,
        )
        s.add(dep)
        s.flush()
        for slot, node_id in enumerate(node_ids):
            s.add(DeploymentPlacement(deployment_id=dep.id, slot=slot, node_id=node_id))
        if backup_node is not None:
            s.add(DeploymentPlacement(deployment_id=dep.id, slot=-1, node_id=backup_node, role="backup"))
        dep_id = dep.id
        uow.commit()
        return dep_id


def balance_of_user(uow: UnitOfWork, user_id: int) -> int:
    """The user's cached credits (0 without an account; reading never creates one)."""
    from sqlalchemy import select

    with uow:
        value = uow.session.scalar(select(LedgerAccount.balance_cents).where(LedgerAccount.user_id == user_id))
        return int(value or 0)


def balance_of_provider(uow: UnitOfWork, provider_id: int) -> int:
    from sqlalchemy import select

    with uow:
        acct = uow.session.scalar(select(LedgerAccount).where(LedgerAccount.provider_id == provider_id))
        return 0 if acct is None else acct.balance_cents


def assert_ledger_invariants(uow: UnitOfWork) -> None:
    from sqlalchemy import func, select

    with uow:
        s = uow.session
        assert ledger.unbalanced_transactions(s) == []
        assert ledger.drifted_balances(s) == []
        lowest = s.scalar(select(func.min(LedgerAccount.balance_cents)).where(LedgerAccount.kind == "user_credits"))
        assert lowest is None or lowest >= 0
