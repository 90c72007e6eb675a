"""The seed: every status present, demo people with their roles, figures the home page shows."""

from sqlalchemy import func, select

from services.auth.permissions import Role
from services.db import models as m
from services.seed import DEMO_PEOPLE, has_data
from services.stats import service as stats
from services.users.service import demo_people


def test_seed_has_deployments_in_every_status_and_the_demo_people(seeded_db, uow):
    with uow:
        s = uow.session
        statuses = set(s.scalars(select(m.Deployment.status).distinct()))
        assert statuses == {"pending", "running", "stopped", "failed", "deleted"}
        assert s.scalar(select(func.count()).select_from(m.NodeMetric)) > 0
        assert (
            s.scalar(select(func.count()).select_from(m.ProviderRequest).where(m.ProviderRequest.status == "pending"))
            >= 1
        )
    people = {p.email: p for p in demo_people(uow)}
    assert len(people) == len(DEMO_PEOPLE)
    assert "cloud-operator" in people["olivia@operator.demo"].roles
    assert "cloud-provider" in people["priya@provider.demo"].roles
    assert set(people["max@multi.demo"].roles) == {r.value for r in Role}
    assert people["uma@user.demo"].roles == ("cloud-user",)
    assert has_data(seeded_db)


def test_summary_counts_match_the_tables(seeded_db, uow):
    summary = stats.summary(uow)
    with uow:
        s = uow.session
        assert summary.providers == s.scalar(select(func.count()).select_from(m.Provider))
        by_status = dict(s.execute(select(m.Deployment.status, func.count()).group_by(m.Deployment.status)).all())
    assert summary.deployments_by_status == by_status
    assert 0 < summary.nodes_online <= summary.nodes_total
