"""The seed prices deployments as a launch does, so demo and benchmark data agree with the app's own rules."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from services.deployments.models import Deployment, DeploymentPlacement
from services.deployments.service import _spec_of, price_for_nodes
from services.nodes.models import Node
from services.pricing.models import PricingVersion


def test_seeded_prices_are_each_instance_at_its_nodes_factor(seeded_db, uow):
    with uow:
        s = uow.session
        pricing = s.get(PricingVersion, 1)
        factors: dict[int, list[int]] = defaultdict(list)
        rows = s.execute(
            select(DeploymentPlacement.deployment_id, Node.price_factor_pct)
            .join(Node, Node.id == DeploymentPlacement.node_id)
            .order_by(DeploymentPlacement.deployment_id, DeploymentPlacement.slot)
        )
        for deployment_id, factor in rows:
            factors[deployment_id].append(factor)
        placed = s.scalars(select(Deployment).where(Deployment.id.in_(list(factors)))).all()
        assert len(placed) > 20
        mixed = 0
        for d in placed:
            spec = _spec_of(d)  # the spec a launch of this deployment priced
            assert d.price_per_hour_cents == price_for_nodes(spec, pricing, factors[d.id]).price_per_hour_cents, d.name
            mixed += len(set(factors[d.id])) > 1
        assert mixed > 0  # some deployments span nodes of different factors: the case this guards
