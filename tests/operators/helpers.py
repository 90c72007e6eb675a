"""Shared bits for the operator tests: the seeded operators and a few counts read straight from the database."""

from __future__ import annotations

from sqlalchemy import func, select

from services.audit.models import AuditEntry
from services.db.engine import UnitOfWork
from services.pricing.models import PricingVersion
from tests.support.people import demo_identity

OLIVIA = dict(sub="demo:operator", email="olivia@operator.demo")


def olivia(uow: UnitOfWork):
    return demo_identity(uow, "demo:operator")


def omar(uow: UnitOfWork):
    return demo_identity(uow, "demo:operator2")


def count(uow: UnitOfWork, model, *where) -> int:
    with uow:
        return int(uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audit_rows(uow: UnitOfWork, action: str) -> list[AuditEntry]:
    with uow:
        rows = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
        uow.session.expunge_all()  # keep the loaded values readable after the transaction ends
        return rows


def versions(uow: UnitOfWork) -> list[PricingVersion]:
    with uow:
        rows = list(uow.session.scalars(select(PricingVersion).order_by(PricingVersion.version)))
        uow.session.expunge_all()
        return rows
