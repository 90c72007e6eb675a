"""Deployments for their owners: price, place, launch, list, stop, start, delete, scale.

The launcher page and the HTTP API call these same functions, so both refuse the same input.

**Pricing (decided here, once for every door).** A deployment's hourly price is fixed when it is
placed: every instance (each replica and the backup VM) is priced at the list rates of the pricing
version in force, times the price factor of the node it lands on, in millicents
(`pricing.instance_hour_millicents`); the instances are summed and the sum is rounded half-up to
whole cents **once**. With one node factor for all instances this is exactly `pricing.quote(...)`.
That integer is `Deployment.price_per_hour_cents`; metering charges it each running hour and keeps
`platform_fee_cents(price, platform_fee_bp)` for the platform. The launcher's estimate runs the same
scheduler and the same function on the same data, so the price shown is the price stored (unless
capacity changes between the two clicks: the result then shows the stored price). Monthly figures are
hourly x 730. When placements change (scaling, or a restart that has to move instances) the price is
recomputed the same way at the deployment's own pricing version; each change leaves an event with the
old and new price.

**Lifecycle.** launch -> pending (a node agent reports running). stop: pending/running -> stopped
(releases capacity, see placement.py). start: stopped/failed -> pending after re-checking each
instance's node (an instance whose node no longer fits is moved by the scheduler). delete: any ->
deleted (the name becomes free again). scale_replicas: pending/running/stopped, adds or removes
replica slots (highest first). Every action writes a DeploymentEvent and an audit entry in the
same transaction. Another person's deployment is NotFound, never PermissionDenied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import asc, desc, func, or_, select
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments import placement as scheduler
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.deployments.schemas import (
    ANY_REGION,
    DailyCost,
    DeploymentDetail,
    DeploymentEventRow,
    DeploymentRow,
    Estimate,
    LaunchInput,
    Page,
    PlacedInstance,
    ScaleInput,
    SpecInput,
)
from services.errors import Conflict, InvalidInput, NotFound
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from services.nodes.models import Node
from services.pricing import service as pricing_service
from services.pricing.models import PricingVersion
from services.pricing.service import HOURS_PER_MONTH, ResourceSpec, instance_hour_millicents, platform_fee_cents
from services.providers.models import Provider
from services.settings import service as settings_service
from services.settings.service import MarketplaceSettings, WorkloadTemplate

LIVE_STATUSES = ("pending", "running", "stopped", "failed")
SORTS = {
    "created_at": Deployment.created_at,
    "name": Deployment.name,
    "status": Deployment.status,
    "price": Deployment.price_per_hour_cents,
}
MAX_PAGE = 500
DAILY_COST_DAYS = 90


# --- price ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedPrice:
    price_per_hour_cents: int
    platform_fee_bp: int
    platform_fee_per_hour_cents: int


def price_for_nodes(spec: ResourceSpec, pricing: PricingVersion, price_factors: Sequence[int]) -> PlacedPrice:
    """The hourly price of instances of `spec` on nodes with these price factors: summed in millicents, rounded once."""
    millicents = sum(instance_hour_millicents(spec, pricing, factor) for factor in price_factors)
    hourly = (millicents + 500) // 1000  # half-up, as pricing.quote rounds
    return PlacedPrice(hourly, pricing.platform_fee_bp, platform_fee_cents(hourly, pricing.platform_fee_bp))


# --- validation -----------------------------------------------------------------------------------


def _parse(model: type, data: Any):
    if isinstance(data, model):
        return data
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.from_pydantic(exc) from exc


def _check_spec(spec_in: SpecInput, settings: MarketplaceSettings, pricing: PricingVersion) -> dict[str, str]:
    """Field -> message for everything the operator's settings and the pricing in force refuse."""
    errors: dict[str, str] = {}
    catalog = {t.key: t for t in settings.workload_catalog}
    template = catalog.get(spec_in.workload)
    if template is None:
        errors["workload"] = f"Unknown workload '{spec_in.workload}'. Choose one from the catalog."
    elif template.image is None and not spec_in.image:
        errors["image"] = "A custom workload needs an image reference, such as nginx:1.27."
    limits = [
        ("vcpu", "vCPU", spec_in.vcpu, settings.max_vcpu_per_deployment, ""),
        ("ram_gb", "RAM", spec_in.ram_gb, settings.max_ram_gb_per_deployment, " GB"),
        ("disk_gb", "Disk", spec_in.disk_gb, settings.max_disk_gb_per_deployment, " GB"),
        ("replicas", "Replicas", spec_in.replicas, settings.max_replicas, ""),
    ]
    for field, label, value, most, unit in limits:
        if value > most:
            errors[field] = f"{label} must be at most {most:,}{unit} (the marketplace's limit)."
    if spec_in.region != ANY_REGION and spec_in.region not in settings.allowed_regions:
        errors["region"] = (
            f"Unknown region '{spec_in.region}'. Choose one of {', '.join(settings.allowed_regions)}, or any."
        )
    if spec_in.gpu_count:
        models = sorted(pricing.gpu_hour_millicents or {})
        if not spec_in.gpu_model:
            errors["gpu_model"] = "Choose a GPU model, or set the GPU count to 0."
        elif spec_in.gpu_model not in models:
            errors["gpu_model"] = f"Unknown GPU model '{spec_in.gpu_model}'. Available: {', '.join(models)}."
    return errors


def _raise(errors: dict[str, str]) -> None:
    if errors:
        summary = " ".join(errors.values())
        raise InvalidInput(summary, errors=errors)


def _image_for(spec_in: SpecInput, settings: MarketplaceSettings) -> str | None:
    template = next((t for t in settings.workload_catalog if t.key == spec_in.workload), None)
    return spec_in.image if template is None or template.image is None else template.image


# --- estimate and preview -------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchOptions:
    """What the launcher offers: the operator's catalog, regions and limits, and the GPU models priced."""

    catalog: list[WorkloadTemplate]
    regions: list[str]
    gpu_models: list[str]
    max_replicas: int
    max_vcpu: int
    max_ram_gb: int
    max_disk_gb: int
    currency: str
    platform_fee_bp: int


def launch_options(uow: UnitOfWork, actor: Identity) -> LaunchOptions:
    """The choices a launch form offers, from the operator's settings and the pricing in force."""
    actor.require(Action.DEPLOYMENT_LAUNCH)
    settings = settings_service.get(uow)
    with uow:
        pricing = pricing_service.current(uow.session)
        return LaunchOptions(
            catalog=list(settings.workload_catalog),
            regions=list(settings.allowed_regions),
            gpu_models=sorted(pricing.gpu_hour_millicents or {}),
            max_replicas=settings.max_replicas,
            max_vcpu=settings.max_vcpu_per_deployment,
            max_ram_gb=settings.max_ram_gb_per_deployment,
            max_disk_gb=settings.max_disk_gb_per_deployment,
            currency=pricing.currency,
            platform_fee_bp=pricing.platform_fee_bp,
        )


def estimate(uow: UnitOfWork, actor: Identity, data: SpecInput | dict) -> Estimate:
    """The price `launch` would store right now (placement included), with the platform fee; writes nothing.

    If nothing fits, the list price is returned with `placement_error` saying what was short, where.
    """
    actor.require(Action.DEPLOYMENT_LAUNCH)
    spec_in = _parse(SpecInput, data)
    settings = settings_service.get(uow)
    with uow:
        s = uow.session
        pricing = pricing_service.current(s)
        _raise(_check_spec(spec_in, settings, pricing))
        spec = spec_in.spec()
        list_quote = pricing_service.quote(spec, pricing)
        try:
            placed = scheduler.place(s, spec, region=spec_in.region_or_none)
        except InvalidInput as exc:
            return Estimate(
                currency=pricing.currency,
                pricing_version=pricing.version,
                instances=list_quote.instances,
                price_per_hour_cents=list_quote.price_per_hour_cents,
                price_per_month_cents=list_quote.price_per_month_cents,
                platform_fee_bp=list_quote.platform_fee_bp,
                platform_fee_per_hour_cents=list_quote.platform_fee_per_hour_cents,
                provider_share_per_hour_cents=list_quote.provider_share_per_hour_cents,
                list_price_per_hour_cents=list_quote.price_per_hour_cents,
                placement=[],
                placement_error=exc.message,
                placement_error_field=next(iter(exc.errors), None),
            )
        price = price_for_nodes(spec, pricing, [p.price_factor_pct for p in placed])
        return Estimate(
            currency=pricing.currency,
            pricing_version=pricing.version,
            instances=len(placed),
            price_per_hour_cents=price.price_per_hour_cents,
            price_per_month_cents=price.price_per_hour_cents * HOURS_PER_MONTH,
            platform_fee_bp=price.platform_fee_bp,
            platform_fee_per_hour_cents=price.platform_fee_per_hour_cents,
            provider_share_per_hour_cents=price.price_per_hour_cents - price.platform_fee_per_hour_cents,
            list_price_per_hour_cents=list_quote.price_per_hour_cents,
            placement=placed,
        )


def preview_placement(uow: UnitOfWork, actor: Identity, data: SpecInput | dict) -> list[PlacedInstance]:
    """The nodes the scheduler would choose now, and why; InvalidInput naming the short resource if none fit."""
    actor.require(Action.DEPLOYMENT_LAUNCH)
    spec_in = _parse(SpecInput, data)
    settings = settings_service.get(uow)
    with uow:
        s = uow.session
        _raise(_check_spec(spec_in, settings, pricing_service.current(s)))
        return scheduler.place(s, spec_in.spec(), region=spec_in.region_or_none)


# --- launch ---------------------------------------------------------------------------------------


def _event(s: Session, d: Deployment, actor: Identity, kind: str, message: str = "") -> None:
    s.add(
        DeploymentEvent(deployment_id=d.id, ts=utcnow(), kind=kind, status=d.status, message=message, actor=actor.label)
    )


def _placement_summary(placed: Sequence[PlacedInstance]) -> str:
    return ", ".join(
        f"{'backup' if p.role == 'backup' else f'replica {p.slot}'} on {p.node_name} ({p.region})" for p in placed
    )


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


def _overbooked(s: Session, spec: ResourceSpec, node_ids: Sequence[int]) -> bool:
    """True if any of these nodes now holds more of what `spec` uses than it has (re-read after our writes).

    The node rows are locked first (PostgreSQL), so concurrent launches onto one node run this check
    one after the other; on SQLite our earlier writes already hold the database's write lock.
    """
    if not node_ids:
        return False
    s.execute(select(Node.id).where(Node.id.in_(node_ids)).with_for_update())
    used = scheduler.used_capacity(list(node_ids))
    over = [used.c.vcpu > Node.vcpu, used.c.ram_gb > Node.ram_gb, used.c.disk_gb > Node.disk_gb]
    if spec.gpu_count:
        over.append(used.c.gpu > Node.gpu_count)
    q = (
        select(func.count())
        .select_from(Node)
        .join(used, used.c.node_id == Node.id)
        .where(Node.id.in_(node_ids), or_(*over))
    )
    return bool(s.scalar(q))


def _write_placements(s: Session, d: Deployment, placed: Sequence[PlacedInstance]) -> None:
    # Lock the nodes (in id order) before the placement rows reference them: inserting a placement takes a
    # key-share lock on its node (foreign key), and two launches that each held one while waiting for the
    # other's FOR UPDATE in `_overbooked` would deadlock on PostgreSQL.
    node_ids = sorted({p.node_id for p in placed})
    if node_ids:
        s.execute(select(Node.id).where(Node.id.in_(node_ids)).order_by(Node.id).with_for_update())
    s.add_all(
        DeploymentPlacement(deployment_id=d.id, slot=p.slot, node_id=p.node_id, role=p.role, reason=p.reason)
        for p in placed
    )


def launch(uow: UnitOfWork, actor: Identity, data: LaunchInput | dict) -> DeploymentDetail:
    """Validate, place and create the deployment with its placements and events in one transaction (audited).

    Nothing is written when the input is refused or no placement fits.
    """
    actor.require(Action.DEPLOYMENT_LAUNCH)
    spec_in = _parse(LaunchInput, data)
    settings = settings_service.get(uow)
    with uow:
        s = uow.session
        pricing = pricing_service.current(s)
        errors = _check_spec(spec_in, settings, pricing)
        taken = s.scalar(
            select(Deployment.id).where(
                Deployment.owner_user_id == actor.user_id,
                Deployment.name == spec_in.name,
                Deployment.status != "deleted",
            )
        )
        if taken:
            errors["name"] = f"You already have a deployment named '{spec_in.name}'. Choose another name."
        _raise(errors)
        spec = spec_in.spec()
        now = utcnow()
        for _attempt in range(3):
            placed = scheduler.place(s, spec, region=spec_in.region_or_none, now=now)
            price = price_for_nodes(spec, pricing, [p.price_factor_pct for p in placed])
            with s.begin_nested() as savepoint:
                d = Deployment(
                    owner_user_id=actor.user_id,
                    name=spec_in.name,
                    workload=spec_in.workload,
                    image=_image_for(spec_in, settings),
                    vcpu=spec.vcpu,
                    ram_gb=spec.ram_gb,
                    disk_gb=spec.disk_gb,
                    gpu_model=spec.gpu_model,
                    gpu_count=spec.gpu_count,
                    region=spec_in.region_or_none,
                    replicas=spec.replicas,
                    backup_enabled=spec.backup_enabled,
                    status="pending",
                    pricing_version_id=pricing.id,
                    price_per_hour_cents=price.price_per_hour_cents,
                    platform_fee_bp=price.platform_fee_bp,
                    currency=pricing.currency,
                    created_at=now,
                    updated_at=now,
                )
                s.add(d)
                s.flush()
                _write_placements(s, d, placed)
                s.flush()
                if _overbooked(s, spec, [p.node_id for p in placed]):
                    savepoint.rollback()  # another launch took the room meanwhile: place again
                    continue
            break
        else:
            raise Conflict("Other launches just took the free capacity; please try again.")
        _event(s, d, actor, "created", f"{spec_in.workload}: {spec.vcpu} vCPU, {spec.ram_gb} GB RAM")
        _event(
            s,
            d,
            actor,
            "placed",
            f"{_placement_summary(placed)}; {_money(price.price_per_hour_cents, pricing.currency)} per hour",
        )
        audit.record(
            s,
            actor,
            "deployment.launched",
            "deployment",
            d.id,
            new={
                "name": d.name,
                "workload": d.workload,
                "spec": {"vcpu": d.vcpu, "ram_gb": d.ram_gb, "disk_gb": d.disk_gb, "gpu": d.gpu_count},
                "replicas": d.replicas,
                "backup": d.backup_enabled,
                "region": d.region,
                "nodes": [p.node_id for p in placed],
                "price_per_hour_cents": d.price_per_hour_cents,
            },
        )
        uow.commit()
        return _detail(s, d)


# --- reading --------------------------------------------------------------------------------------


def _own(s: Session, actor: Identity, deployment_id: int, *, lock: bool = False) -> Deployment:
    q = select(Deployment).where(Deployment.id == deployment_id, Deployment.owner_user_id == actor.user_id)
    if lock:
        q = q.with_for_update()
    d = s.scalar(q)
    if d is None:
        raise NotFound("deployment", deployment_id)
    return d


def _user_leg():
    """A usage transaction's leg on the user's credits account (correlated to LedgerTransaction).

    A per-transaction subquery rather than a join: joining ledger_transactions to ledger_entries makes
    PostgreSQL's planner probe both big indexes' ends (tens of ms of planning when they hold dead rows),
    while the lookup by transaction id plans in well under a millisecond and reads the same rows.
    """
    return (
        select(func.sum(LedgerEntry.amount_cents))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.transaction_id == LedgerTransaction.id, LedgerAccount.kind == "user_credits")
        .correlate(LedgerTransaction)
        .scalar_subquery()
    )


def _costs(s: Session, deployment_ids: Sequence[int]) -> dict[int, int]:
    """Usage charged so far per deployment (one grouped query over the owner's ledger legs)."""
    if not deployment_ids:
        return {}
    q = (
        select(LedgerTransaction.deployment_id, func.sum(_user_leg()))
        .where(LedgerTransaction.deployment_id.in_(deployment_ids), LedgerTransaction.kind == "usage")
        .group_by(LedgerTransaction.deployment_id)
    )
    return {did: -int(total or 0) for did, total in s.execute(q)}


def _placements(s: Session, deployment_ids: Sequence[int]) -> dict[int, list[PlacedInstance]]:
    """Placements with their nodes and providers, per deployment (one query)."""
    if not deployment_ids:
        return {}
    q = (
        select(DeploymentPlacement, Node, Provider.company)
        .join(Node, Node.id == DeploymentPlacement.node_id)
        .join(Provider, Provider.id == Node.provider_id)
        .where(DeploymentPlacement.deployment_id.in_(deployment_ids))
        .order_by(DeploymentPlacement.deployment_id, DeploymentPlacement.slot)
    )
    out: dict[int, list[PlacedInstance]] = defaultdict(list)
    for p, n, company in s.execute(q):
        out[p.deployment_id].append(
            PlacedInstance(
                slot=p.slot,
                role=p.role,
                node_id=n.id,
                node_name=n.name,
                provider_id=n.provider_id,
                provider_name=company,
                region=n.region,
                price_factor_pct=n.price_factor_pct,
                uptime_pct=None,
                free_vcpu=0,
                free_ram_gb=0,
                reason=p.reason,
            )
        )
    for rows in out.values():
        rows.sort(key=lambda p: (p.slot < 0, p.slot))
    return out


def _daily_costs(s: Session, d: Deployment) -> list[DailyCost]:
    since = utcnow() - timedelta(days=DAILY_COST_DAYS)
    q = select(LedgerTransaction.created_at, _user_leg()).where(
        LedgerTransaction.deployment_id == d.id,
        LedgerTransaction.kind == "usage",
        LedgerTransaction.created_at >= since,
    )
    days: dict[datetime, int] = defaultdict(int)
    for ts, amount in s.execute(q):
        if amount is None:  # no leg on a user's credits (never for a metered hour)
            continue
        day = ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        days[day] += -int(amount)
    return [DailyCost(day, cents) for day, cents in sorted(days.items())]


def _detail(s: Session, d: Deployment) -> DeploymentDetail:
    events = s.scalars(
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == d.id)
        .order_by(DeploymentEvent.ts, DeploymentEvent.id)
    ).all()
    return DeploymentDetail(
        id=d.id,
        name=d.name,
        workload=d.workload,
        image=d.image,
        vcpu=d.vcpu,
        ram_gb=d.ram_gb,
        disk_gb=d.disk_gb,
        gpu_model=d.gpu_model,
        gpu_count=d.gpu_count,
        region=d.region,
        replicas=d.replicas,
        backup_enabled=d.backup_enabled,
        status=d.status,
        price_per_hour_cents=d.price_per_hour_cents,
        platform_fee_bp=d.platform_fee_bp,
        currency=d.currency,
        pricing_version_id=d.pricing_version_id,
        created_at=d.created_at,
        updated_at=d.updated_at,
        started_at=d.started_at,
        stopped_at=d.stopped_at,
        deleted_at=d.deleted_at,
        cost_so_far_cents=_costs(s, [d.id]).get(d.id, 0),
        placements=_placements(s, [d.id]).get(d.id, []),
        events=[DeploymentEventRow(e.ts, e.kind, e.status, e.message, e.actor) for e in events],
        daily_costs=_daily_costs(s, d),
    )


def list_own(
    uow: UnitOfWork,
    actor: Identity,
    *,
    statuses: Sequence[str] | None = None,
    search: str | None = None,
    sort: str = "created_at",
    descending: bool = True,
    limit: int = 25,
    offset: int = 0,
) -> Page:
    """A page of the caller's deployments (paginated and sorted in SQL) with nodes, regions and cost so far.

    `statuses` None means every status but deleted.
    """
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    if sort not in SORTS:
        raise InvalidInput(f"Unknown sort '{sort}'. Use one of {', '.join(SORTS)}.", field="sort")
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    conds = [Deployment.owner_user_id == actor.user_id]
    conds.append(Deployment.status.in_(list(statuses)) if statuses is not None else Deployment.status != "deleted")
    if search:
        pattern = f"%{search.strip().lower()}%"
        conds.append(or_(func.lower(Deployment.name).like(pattern), func.lower(Deployment.workload).like(pattern)))
    order = desc if descending else asc
    with uow:
        s = uow.session
        # The total as a window count beside the page (counted alone only past the last page).
        found = s.execute(
            select(Deployment, func.count().over())
            .where(*conds)
            .order_by(order(SORTS[sort]), order(Deployment.id))
            .limit(limit)
            .offset(offset)
        ).all()
        rows = [d for d, _ in found]
        if found:
            total = found[0][1]
        else:
            total = (s.scalar(select(func.count()).select_from(Deployment).where(*conds)) or 0) if offset else 0
        ids = [d.id for d in rows]
        costs = _costs(s, ids)
        placed = _placements(s, ids)
        out = []
        for d in rows:
            ps = placed.get(d.id, [])
            out.append(
                DeploymentRow(
                    id=d.id,
                    name=d.name,
                    workload=d.workload,
                    status=d.status,
                    region=d.region,
                    nodes=", ".join(p.node_name + (" (backup)" if p.role == "backup" else "") for p in ps),
                    node_regions=", ".join(dict.fromkeys(p.region for p in ps)),
                    replicas=d.replicas,
                    backup_enabled=d.backup_enabled,
                    price_per_hour_cents=d.price_per_hour_cents,
                    currency=d.currency,
                    cost_so_far_cents=costs.get(d.id, 0),
                    created_at=d.created_at,
                    started_at=d.started_at,
                )
            )
        return Page(rows=out, total=int(total), limit=limit, offset=offset)


def get_own(uow: UnitOfWork, actor: Identity, deployment_id: int) -> DeploymentDetail:
    """The caller's deployment with spec, placement, events and daily cost; NotFound for anyone else's."""
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    with uow:
        s = uow.session
        return _detail(s, _own(s, actor, deployment_id))


# --- actions --------------------------------------------------------------------------------------


def _pricing_of(s: Session, d: Deployment) -> PricingVersion:
    pv = s.get(PricingVersion, d.pricing_version_id) if d.pricing_version_id else None
    return pv or pricing_service.current(s)


def _spec_of(d: Deployment, replicas: int | None = None) -> ResourceSpec:
    return ResourceSpec(
        vcpu=d.vcpu,
        ram_gb=d.ram_gb,
        disk_gb=d.disk_gb,
        gpu_model=d.gpu_model,
        gpu_count=d.gpu_count,
        replicas=d.replicas if replicas is None else replicas,
        backup_enabled=d.backup_enabled,
    )


def _reprice(s: Session, d: Deployment) -> tuple[int, int]:
    """Recompute the hourly price from the current placements' nodes; returns (old, new)."""
    factors = s.scalars(
        select(Node.price_factor_pct)
        .join(DeploymentPlacement, DeploymentPlacement.node_id == Node.id)
        .where(DeploymentPlacement.deployment_id == d.id)
    ).all()
    old = d.price_per_hour_cents
    pricing = _pricing_of(s, d)
    d.price_per_hour_cents = price_for_nodes(_spec_of(d), pricing, list(factors)).price_per_hour_cents
    d.platform_fee_bp = pricing.platform_fee_bp
    return old, d.price_per_hour_cents


def _set_status(d: Deployment, status: str) -> str:
    old, d.status, d.updated_at = d.status, status, utcnow()
    return old


def stop(uow: UnitOfWork, actor: Identity, deployment_id: int) -> DeploymentDetail:
    """Stop a pending or running deployment (it releases its capacity and is no longer charged); audited."""
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    with uow:
        s = uow.session
        d = _own(s, actor, deployment_id, lock=True)
        if d.status not in ("pending", "running"):
            raise Conflict(f"'{d.name}' is {d.status}; only a pending or running deployment can be stopped.")
        old = _set_status(d, "stopped")
        d.stopped_at = d.updated_at
        _event(s, d, actor, "stopped", "Stopped by the owner")
        audit.record(s, actor, "deployment.stopped", "deployment", d.id, old={"status": old}, new={"status": "stopped"})
        uow.commit()
        return _detail(s, d)


def start(uow: UnitOfWork, actor: Identity, deployment_id: int) -> DeploymentDetail:
    """Start a stopped or failed deployment again after re-checking capacity (moving instances that no longer fit)."""
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    with uow:
        s = uow.session
        d = _own(s, actor, deployment_id, lock=True)
        if d.status not in ("stopped", "failed"):
            raise Conflict(f"'{d.name}' is {d.status}; only a stopped or failed deployment can be started.")
        spec = _spec_of(d)
        current = s.scalars(select(DeploymentPlacement).where(DeploymentPlacement.deployment_id == d.id)).all()
        # Which current nodes still take their instance: the scheduler's own filter, limited to these nodes.
        still_ok = scheduler.nodes_that_fit(s, spec, [p.node_id for p in current], ignore_deployment_id=d.id)
        keep = [p for p in current if p.node_id in still_ok]
        keep = _respect_backup_rule(s, keep)
        moving = [p for p in current if p not in keep]
        replica_slots_present = {p.slot for p in current if p.role == "replica"}
        missing_slots = sorted(set(range(d.replicas)) - replica_slots_present)
        slots = sorted({p.slot for p in moving if p.role == "replica"} | set(missing_slots))
        want_backup = d.backup_enabled and not any(p.role == "backup" for p in keep)
        message = "Started by the owner; every instance stays on its node"
        if slots or want_backup:
            kept = [scheduler.Kept(p.slot, p.role, p.node_id, _provider_of(s, p.node_id)) for p in keep]
            placed = scheduler.place(
                s,
                spec,
                region=d.region,
                replica_slots=slots,
                backup=want_backup,
                keep=kept,
                ignore_deployment_id=d.id,
            )
            for p in moving:
                s.delete(p)
            s.flush()
            _write_placements(s, d, placed)
            s.flush()
            old_price, new_price = _reprice(s, d)
            message = (
                f"Started by the owner; moved {_placement_summary(placed)} because the old node had no room"
                f"; price {_money(old_price, d.currency)} -> {_money(new_price, d.currency)} per hour"
            )
        old = _set_status(d, "pending")
        d.stopped_at = None
        s.flush()
        node_ids = s.scalars(select(DeploymentPlacement.node_id).where(DeploymentPlacement.deployment_id == d.id))
        if _overbooked(s, spec, list(node_ids)):
            raise Conflict("Other launches just took the free capacity; please try again.")
        _event(s, d, actor, "started", message)
        audit.record(s, actor, "deployment.started", "deployment", d.id, old={"status": old}, new={"status": "pending"})
        uow.commit()
        return _detail(s, d)


def _provider_of(s: Session, node_id: int) -> int:
    return int(s.scalar(select(Node.provider_id).where(Node.id == node_id)))


def _respect_backup_rule(s: Session, keep: list[DeploymentPlacement]) -> list[DeploymentPlacement]:
    """Drop a kept backup whose provider also hosts a kept replica (it must move)."""
    replica_providers = {_provider_of(s, p.node_id) for p in keep if p.role == "replica"}
    return [p for p in keep if p.role != "backup" or _provider_of(s, p.node_id) not in replica_providers]


def delete(uow: UnitOfWork, actor: Identity, deployment_id: int) -> DeploymentDetail:
    """Delete the caller's deployment (stops charges, frees capacity and its name); audited."""
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    with uow:
        s = uow.session
        d = _own(s, actor, deployment_id, lock=True)
        if d.status == "deleted":
            raise Conflict(f"'{d.name}' is already deleted.")
        old = _set_status(d, "deleted")
        d.deleted_at = d.updated_at
        _event(s, d, actor, "deleted", "Deleted by the owner")
        audit.record(s, actor, "deployment.deleted", "deployment", d.id, old={"status": old}, new={"status": "deleted"})
        uow.commit()
        return _detail(s, d)


def scale_replicas(uow: UnitOfWork, actor: Identity, deployment_id: int, replicas: int | dict) -> DeploymentDetail:
    """Change the number of replicas: new ones placed by the scheduler, surplus ones removed; price recomputed."""
    actor.require(Action.DEPLOYMENT_MANAGE_OWN)
    target = _parse(ScaleInput, replicas if isinstance(replicas, dict) else {"replicas": replicas}).replicas
    settings = settings_service.get(uow)
    if target > settings.max_replicas:
        raise InvalidInput(
            f"Replicas must be at most {settings.max_replicas} (the marketplace's limit).", field="replicas"
        )
    with uow:
        s = uow.session
        d = _own(s, actor, deployment_id, lock=True)
        if d.status not in ("pending", "running", "stopped"):
            raise Conflict(f"'{d.name}' is {d.status}; only a pending, running or stopped deployment can be scaled.")
        if target == d.replicas:
            raise InvalidInput(f"'{d.name}' already has {target} replica(s).", field="replicas")
        before = d.replicas
        current = s.scalars(select(DeploymentPlacement).where(DeploymentPlacement.deployment_id == d.id)).all()
        if target < before:
            for p in current:
                if p.role == "replica" and p.slot >= target:
                    s.delete(p)
            detail_msg = f"removed replica slot(s) {', '.join(str(i) for i in range(target, before))}"
            placed_nodes: list[int] = []
        else:
            present = {p.slot for p in current if p.role == "replica"}
            slots = [i for i in range(target) if i not in present]
            kept = [scheduler.Kept(p.slot, p.role, p.node_id, _provider_of(s, p.node_id)) for p in current]
            placed = scheduler.place(
                s, _spec_of(d, target), region=d.region, replica_slots=slots, backup=False, keep=kept
            )
            _write_placements(s, d, placed)
            detail_msg = f"added {_placement_summary(placed)}"
            placed_nodes = [p.node_id for p in placed]
        d.replicas = target
        d.updated_at = utcnow()
        s.flush()
        old_price, new_price = _reprice(s, d)
        if d.status in ("pending", "running") and _overbooked(s, _spec_of(d), placed_nodes):
            raise Conflict("Other launches just took the free capacity; please try again.")
        _event(
            s,
            d,
            actor,
            "scaled",
            f"{before} -> {target} replicas: {detail_msg}; price {_money(old_price, d.currency)} -> "
            f"{_money(new_price, d.currency)} per hour",
        )
        audit.record(
            s,
            actor,
            "deployment.scaled",
            "deployment",
            d.id,
            old={"replicas": before, "price_per_hour_cents": old_price},
            new={"replicas": target, "price_per_hour_cents": new_price},
        )
        uow.commit()
        return _detail(s, d)
