"""Home page: the figures shown are the database's; demo mode shows its banner and picker."""

from services.db.engine import UnitOfWork
from services.stats import service as stats
from tests.support.apptest import app_as, demo_app, texts


def test_home_shows_the_seeded_figures(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, sub="auth0|alice", email="alice@example.com")
    assert not at.exception
    summary = stats.summary(UnitOfWork())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Providers"] == f"{summary.providers:,}"
    assert metrics["Nodes online"] == f"{summary.nodes_online:,}"
    assert metrics["Running"] == f"{summary.deployments_by_status['running']:,}"
    assert metrics["Failed"] == f"{summary.deployments_by_status['failed']:,}"
    assert "Demo mode" not in texts(at)


def test_demo_mode_shows_a_banner_and_switches_people(seeded_sqlite, monkeypatch):
    at = demo_app(monkeypatch)
    assert not at.exception
    assert "Demo mode" in texts(at)
    picker = at.sidebar.selectbox(key="demo_user_id")
    assert len(picker.options) >= 4
    labels = " ".join(str(o) for o in picker.options)
    assert "Olivia" in labels and "Priya" in labels
    picker.select_index(2).run()
    assert not at.exception
    assert "Uma User" in texts(at)


def test_home_shows_the_persons_own_figures_first(seeded_sqlite, monkeypatch):
    from sqlalchemy import func, select

    from dashboard.fmt import money
    from services.deployments.models import Deployment
    from services.ledger.models import LedgerAccount
    from services.users.models import User

    at = app_as(monkeypatch, sub="demo:user", email="uma@user.demo")
    assert not at.exception
    with UnitOfWork() as uow:
        s = uow.session
        uma = s.scalar(select(User.id).where(User.subject == "demo:user"))
        running = s.scalar(select(func.count()).where(Deployment.owner_user_id == uma, Deployment.status == "running"))
        credits = s.scalar(select(LedgerAccount.balance_cents).where(LedgerAccount.user_id == uma)) or 0
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Your running deployments"] == f"{running:,}"
    assert metrics["Credits"] == money(credits)
    assert "Provider requests waiting" not in metrics  # not an operator

    op = app_as(monkeypatch, sub="demo:operator", email="olivia@operator.demo")
    assert "Provider requests waiting" in {m.label for m in op.metric}
