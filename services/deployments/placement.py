"""The scheduler: which nodes a deployment's replicas and backup VM go to.

Rules, in order:

1. **Eligible nodes**: the node is online (status "online" with a fresh heartbeat), its provider is
   active, it is in no scheduled maintenance window that overlaps the next hour, it is in the
   requested region (if one is asked), and for GPU work it has the requested GPU model.
2. **Free capacity**: the node's vCPU, RAM, disk and GPUs minus what deployments in status *pending*
   or *running* already hold there must cover one instance. *Stopped* (and failed, deleted)
   deployments hold no capacity: they are not charged either, and `start` re-checks their nodes.
3. **Spread**: one node per replica (never two replicas on one node); replicas go to different
   providers when enough providers have room, otherwise to different nodes of the same providers.
   The backup VM must be on a provider that hosts none of the replicas (no fit otherwise).
4. **Ranking** among eligible nodes: price first (the node's price factor; every instance has the
   same spec, so the factor orders the price), then uptime over the last 30 days (the share of 5-minute
   slots in which the node reported online, as the node page shows it; nodes without metrics rank after
   those with), then free capacity (free
   vCPU, then free RAM: the least loaded first), then node id for a stable order.

Speed (50,000 nodes, 170,000 active deployments): nodes are read in batches by price (then size)
with one set-based statement each; the statement filters and orders the nodes table and sums what
is already placed only for the nodes of that batch (the placements' node index), so a placement
reads a few hundred placement rows, not all of them. The first batch is BATCH + 8 per instance
nodes; batches grow fourfold until enough nodes (and, for the spread, providers) have room, or no
node is left. Uptime is read for the best UPTIME_LOOKUPS candidates by price and room (one aggregate
query) and cached per process for UPTIME_CACHE_SECONDS: 30-day shares move slowly. So "then free
capacity" and "then uptime" order the cheapest batch, which at marketplace scale is what decides.

No fit raises InvalidInput whose message says which resource was short and where, with the field
of the launch form it concerns (vcpu, ram_gb, disk_gb, gpu_count, region, replicas, backup_enabled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, distinct, exists, func, literal, select
from sqlalchemy.orm import Session

from services.db.base import utcnow
from services.db.dialect import epoch_seconds
from services.deployments.models import Deployment, DeploymentPlacement
from services.deployments.schemas import PlacedInstance
from services.errors import InvalidInput
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode
from services.nodes.models import Node, NodeMetric
from services.nodes.status import online_cutoff
from services.pricing.service import ResourceSpec
from services.providers.models import Provider

# Deployments in these statuses hold capacity on their nodes.
HOLDING_STATUSES = ("pending", "running")
MAINTENANCE_LOOKAHEAD = timedelta(hours=1)
UPTIME_WINDOW = timedelta(days=30)
UPTIME_CACHE_SECONDS = 300
UPTIME_SLOT_SECONDS = 300  # as the node page counts uptime (services/nodes/service.py)
BATCH = 64  # first batch of nodes scanned (+ 8 per instance to place); later batches grow 4x
UPTIME_LOOKUPS = 96  # uptime is read for this many best candidates (by price, then room)


@dataclass(frozen=True)
class Kept:
    """A placement that stays where it is (scaling up, restarting): new instances avoid its node."""

    slot: int
    role: str
    node_id: int
    provider_id: int


@dataclass(frozen=True)
class _Candidate:
    node_id: int
    node_name: str
    provider_id: int
    provider_name: str
    region: str
    price_factor_pct: int
    free_vcpu: int
    free_ram_gb: int
    free_disk_gb: int
    free_gpu: int
    uptime: float | None = None


def _where(region: str | None) -> str:
    return f"region {region}" if region else "any region"


# --- the SQL pieces ----------------------------------------------------------------------------


def used_capacity(node_ids, ignore_deployment_id: int | None = None):
    """Per node in `node_ids` (ids or a subquery): what pending/running deployments hold there.

    Restricted to the given nodes so the aggregate reads only their placements (index on node_id).
    """
    q = (
        select(
            DeploymentPlacement.node_id.label("node_id"),
            func.sum(Deployment.vcpu).label("vcpu"),
            func.sum(Deployment.ram_gb).label("ram_gb"),
            func.sum(Deployment.disk_gb).label("disk_gb"),
            func.sum(Deployment.gpu_count).label("gpu"),
        )
        .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
        .where(DeploymentPlacement.node_id.in_(node_ids), Deployment.status.in_(HOLDING_STATUSES))
        .group_by(DeploymentPlacement.node_id)
    )
    if ignore_deployment_id is not None:
        q = q.where(Deployment.id != ignore_deployment_id)
    return q.subquery("used")


def _in_maintenance(now: datetime):
    """SQL condition: the node is in a scheduled maintenance window overlapping [now, now + 1 h)."""
    return exists(
        select(literal(1))
        .select_from(MaintenanceWindowNode)
        .join(MaintenanceWindow, MaintenanceWindow.id == MaintenanceWindowNode.window_id)
        .where(
            MaintenanceWindowNode.node_id == Node.id,
            MaintenanceWindow.status == "scheduled",
            MaintenanceWindow.starts_at < now + MAINTENANCE_LOOKAHEAD,
            MaintenanceWindow.ends_at > now,
        )
    )


def _online(now: datetime):
    """SQL condition: the node is online (status "online" and a heartbeat newer than the offline delay).

    The heartbeat test is written over an expression (COALESCE) on purpose. Heartbeats always move past
    the newest value PostgreSQL's statistics have seen, so a plain `last_heartbeat_at >= cutoff` is
    estimated from the histogram's edge as "about one node" however many are online; planned for one
    row, the cheapest-first shortlist becomes a scan and sort of every online node (130 ms on 50,000)
    instead of a walk down the price index that stops after the first batch (a few ms). For an
    expression PostgreSQL has no histogram and assumes a fixed share, which keeps the index walk.
    Same rows either way (SQLite plans by its indexes and is unaffected).
    """
    seen = func.coalesce(Node.last_heartbeat_at, Node.created_at)
    return and_(Node.status == "online", Node.last_heartbeat_at.is_not(None), seen >= online_cutoff(now))


def _provider_active():
    """SQL condition: the node's provider is active.

    Written as NOT IN the (few) providers that are not active, which PostgreSQL evaluates as one hashed
    lookup, rather than as a join: PostgreSQL estimates "heartbeat newer than two minutes ago" from
    statistics that predate the newest heartbeats (the cutoff lies past the histogram), so it expects
    about one fresh node and would join providers in a nested loop, rescanning them once per node
    (1.2 s for 7,600 nodes of a region instead of a few milliseconds). A lookup has no plan to go wrong.
    """
    return Node.provider_id.not_in(select(Provider.id).where(Provider.status != "active"))


def _eligible(region: str | None, gpu_model: str | None, now: datetime) -> list:
    """Conditions every candidate meets before capacity: online, active provider, no maintenance, region."""
    conds = [_online(now), _provider_active(), ~_in_maintenance(now)]
    if region:
        conds.append(Node.region == region)
    if gpu_model:
        conds.append(Node.gpu_model == gpu_model)
    return conds


def _big_enough(spec: ResourceSpec) -> list:
    """The node's own size (before anything is placed on it) can hold one instance."""
    conds = [Node.vcpu >= spec.vcpu, Node.ram_gb >= spec.ram_gb, Node.disk_gb >= spec.disk_gb]
    if spec.gpu_count:
        conds.append(Node.gpu_count >= spec.gpu_count)
    return conds


def _batch(
    session: Session,
    spec: ResourceSpec,
    *,
    region: str | None,
    now: datetime,
    limit: int | None,
    offset: int = 0,
    exclude_nodes: Iterable[int] = (),
    exclude_providers: Iterable[int] = (),
    only_nodes: Iterable[int] | None = None,
    ignore_deployment_id: int | None = None,
) -> list[_Candidate]:
    """One statement: the next `limit` eligible, big-enough nodes by price (then size), with their free capacity.

    The node filter and order run over the nodes table alone; the used-capacity aggregate then reads
    only the placements of the nodes in this batch.
    """
    conds = _eligible(region, spec.gpu_model if spec.gpu_count else None, now) + _big_enough(spec)
    exclude_nodes, exclude_providers = list(exclude_nodes), list(exclude_providers)
    if exclude_nodes:
        conds.append(Node.id.not_in(exclude_nodes))
    if exclude_providers:
        conds.append(Node.provider_id.not_in(exclude_providers))
    if only_nodes is not None:
        conds.append(Node.id.in_(list(only_nodes)))
    short = (
        select(
            Node.id.label("id"),
            Node.name.label("name"),
            Node.provider_id.label("provider_id"),
            Node.region.label("region"),
            Node.price_factor_pct.label("factor"),
            Node.vcpu.label("vcpu"),
            Node.ram_gb.label("ram_gb"),
            Node.disk_gb.label("disk_gb"),
            Node.gpu_count.label("gpu"),
        )
        .where(and_(*conds))
        .order_by(Node.price_factor_pct, Node.vcpu.desc(), Node.ram_gb.desc(), Node.id)
        .limit(limit)
        .offset(offset or None)
        .cte("short")
    )
    used = used_capacity(select(short.c.id), ignore_deployment_id)
    q = (
        select(
            short.c.id,
            short.c.name,
            short.c.provider_id,
            Provider.company,
            short.c.region,
            short.c.factor,
            short.c.vcpu - func.coalesce(used.c.vcpu, 0),
            short.c.ram_gb - func.coalesce(used.c.ram_gb, 0),
            short.c.disk_gb - func.coalesce(used.c.disk_gb, 0),
            short.c.gpu - func.coalesce(used.c.gpu, 0),
        )
        .join(Provider, Provider.id == short.c.provider_id)
        .outerjoin(used, used.c.node_id == short.c.id)
        .order_by(short.c.factor, short.c.vcpu.desc(), short.c.ram_gb.desc(), short.c.id)
    )
    return [
        _Candidate(nid, name, int(pid), company, reg, int(factor), int(fv), int(fr), int(fd), int(fg))
        for nid, name, pid, company, reg, factor, fv, fr, fd, fg in session.execute(q)
    ]


def _fits(c: _Candidate, spec: ResourceSpec) -> bool:
    return (
        c.free_vcpu >= spec.vcpu
        and c.free_ram_gb >= spec.ram_gb
        and c.free_disk_gb >= spec.disk_gb
        and (spec.gpu_count == 0 or c.free_gpu >= spec.gpu_count)
    )


def nodes_that_fit(
    session: Session, spec: ResourceSpec, node_ids: Sequence[int], *, ignore_deployment_id: int | None = None
) -> set[int]:
    """Which of these nodes could take one instance of `spec` now (every placement rule but spread)."""
    if not node_ids:
        return set()
    rows = _batch(
        session,
        spec,
        region=None,
        now=utcnow(),
        limit=None,
        only_nodes=node_ids,
        ignore_deployment_id=ignore_deployment_id,
    )
    return {c.node_id for c in rows if _fits(c, spec)}


# --- uptime ------------------------------------------------------------------------------------

_uptime_lock = threading.Lock()
_uptime_cache: dict[tuple[str, int], tuple[float, float | None]] = {}  # (db, node) -> (expires, share)


def clear_uptime_cache() -> None:
    """Forget cached uptime shares (tests that write metrics call this)."""
    with _uptime_lock:
        _uptime_cache.clear()


def uptime_shares(session: Session, node_ids: Sequence[int], now: datetime | None = None) -> dict[int, float | None]:
    """Uptime (0..1) over the last 30 days per node, as the node page counts it; None for a node without metrics.

    The share of 5-minute slots in which the node reported online, from the later of 30 days ago, the
    node's registration and its first report in that time; a slot without any report counts as down
    (a node that dies says nothing). One aggregate query for the nodes not cached yet; results are
    kept for UPTIME_CACHE_SECONDS.
    """
    now = now or utcnow()
    db = str(session.get_bind().url)
    clock = time.monotonic()
    out: dict[int, float | None] = {}
    missing: list[int] = []
    with _uptime_lock:
        for nid in node_ids:
            hit = _uptime_cache.get((db, nid))
            if hit and hit[0] > clock:
                out[nid] = hit[1]
            else:
                missing.append(nid)
    if missing:
        window_start = now - UPTIME_WINDOW
        slot = epoch_seconds(session, NodeMetric.ts) // UPTIME_SLOT_SECONDS
        q = (
            select(
                NodeMetric.node_id,
                func.count(distinct(case((NodeMetric.online.is_(True), slot), else_=None))),
                func.min(NodeMetric.ts),
                Node.created_at,
            )
            .join(Node, Node.id == NodeMetric.node_id)
            .where(NodeMetric.node_id.in_(missing), NodeMetric.ts >= window_start)
            .group_by(NodeMetric.node_id, Node.created_at)
        )
        end_slot = int(now.timestamp()) // UPTIME_SLOT_SECONDS + 1
        found: dict[int, float] = {}
        for nid, online_slots, first, created in session.execute(q):
            start = max(window_start, first, created or first)
            expected = end_slot - int(start.timestamp()) // UPTIME_SLOT_SECONDS
            found[nid] = min(1.0, int(online_slots) / expected) if expected > 0 else 1.0
        with _uptime_lock:
            for nid in missing:
                share = found.get(nid)
                out[nid] = share
                _uptime_cache[(db, nid)] = (clock + UPTIME_CACHE_SECONDS, share)
    return out


# --- choosing ----------------------------------------------------------------------------------


def _rank_key(c: _Candidate):
    return (c.price_factor_pct, -(c.uptime if c.uptime is not None else -1.0), -c.free_vcpu, -c.free_ram_gb, c.node_id)


def _describe(c: _Candidate, rank: int, note: str) -> str:
    uptime = f"{c.uptime * 100:.1f}% uptime over 30 days" if c.uptime is not None else "no uptime history yet"
    price = "list price" if c.price_factor_pct == 100 else f"{c.price_factor_pct}% of list price"
    return f"#{rank} by price: {price}; {uptime}; {c.free_vcpu} vCPU and {c.free_ram_gb} GB RAM free{note}"


def _pick_replicas(
    ranked: list[_Candidate], count: int, taken_nodes: set[int], taken_providers: set[int], banned: set[int]
) -> list[tuple[_Candidate, str]] | None:
    """`count` distinct nodes: first on providers not used yet, then any remaining node. None if too few."""
    picks: list[tuple[_Candidate, str]] = []
    nodes, providers = set(taken_nodes), set(taken_providers)
    for c in ranked:
        if len(picks) == count:
            break
        if c.node_id in nodes or c.provider_id in providers or c.provider_id in banned:
            continue
        note = "; a provider no other replica uses" if providers else ""
        picks.append((c, note))
        nodes.add(c.node_id)
        providers.add(c.provider_id)
    for c in ranked:
        if len(picks) == count:
            break
        if c.node_id in nodes or c.provider_id in banned:
            continue
        picks.append((c, "; no other provider had room, so a different node of a provider already used"))
        nodes.add(c.node_id)
    return picks if len(picks) == count else None


def place(
    session: Session,
    spec: ResourceSpec,
    *,
    region: str | None = None,
    replica_slots: Sequence[int] | None = None,
    backup: bool | None = None,
    keep: Sequence[Kept] = (),
    ignore_deployment_id: int | None = None,
    now: datetime | None = None,
) -> list[PlacedInstance]:
    """Choose a node for each replica slot (and the backup) under the rules above, or raise InvalidInput.

    Default: every replica of `spec` plus the backup if it has one. `keep` lists placements that stay
    (their nodes are not reused; the backup avoids their providers). Reads only; writes nothing.
    """
    now = now or utcnow()
    slots = list(range(spec.replicas)) if replica_slots is None else list(replica_slots)
    want_backup = spec.backup_enabled if backup is None else backup
    need = len(slots) + (1 if want_backup else 0)
    if need == 0:
        return []
    kept_nodes = {k.node_id for k in keep}
    kept_replica_providers = {k.provider_id for k in keep if k.role == "replica"}
    kept_backup_providers = {k.provider_id for k in keep if k.role == "backup"}
    # Batches of the cheapest big-enough nodes, growing, until enough of them have room (and, for the
    # spread, enough providers have room) or there are no more.
    size, offset, scanned = BATCH + 8 * need, 0, []
    avoid = kept_replica_providers | kept_backup_providers
    while True:
        rows = _batch(
            session,
            spec,
            region=region,
            now=now,
            limit=size,
            offset=offset,
            exclude_nodes=kept_nodes,
            ignore_deployment_id=ignore_deployment_id,
        )
        scanned += rows
        if len(rows) < size:
            break  # every eligible, big-enough node has been looked at
        fitting = [c for c in scanned if _fits(c, spec)]
        if len(fitting) >= need and len({c.provider_id for c in fitting} - avoid) >= need:
            break
        offset, size = offset + size, size * 4
    fitting = [c for c in scanned if _fits(c, spec)]
    # Uptime decides between equally priced nodes: read it for the best candidates by price and room.
    fitting.sort(key=lambda c: (c.price_factor_pct, -c.free_vcpu, -c.free_ram_gb, c.node_id))
    looked_up = fitting[:UPTIME_LOOKUPS] + [c for c in fitting[UPTIME_LOOKUPS:] if c.provider_id not in avoid][:need]
    uptime = uptime_shares(session, [c.node_id for c in looked_up], now)
    ranked = sorted(
        (_Candidate(**{**c.__dict__, "uptime": uptime.get(c.node_id)}) for c in fitting),
        key=_rank_key,
    )
    rank_of = {c.node_id: i + 1 for i, c in enumerate(ranked)}

    replicas: list[tuple[_Candidate, str]] | None = []
    backup_pick: _Candidate | None = None
    if not want_backup:
        replicas = _pick_replicas(ranked, len(slots), kept_nodes, kept_replica_providers, kept_backup_providers)
    else:
        # Try the natural choice first; if it leaves no provider for the backup, set the backup's
        # provider aside (best backup candidates first) and place the replicas on the others.
        tries: list[int | None] = [None] + list(dict.fromkeys(c.provider_id for c in ranked))
        for reserved in tries:
            banned = set(kept_backup_providers) | ({reserved} if reserved is not None else set())
            attempt = _pick_replicas(ranked, len(slots), kept_nodes, kept_replica_providers, banned)
            if attempt is None:
                if reserved is None:
                    replicas = None  # not enough nodes even without a backup
                    break
                continue
            replica_providers = kept_replica_providers | {c.provider_id for c, _ in attempt}
            used_nodes = kept_nodes | {c.node_id for c, _ in attempt}
            backup_pick = next(
                (c for c in ranked if c.provider_id not in replica_providers and c.node_id not in used_nodes),
                None,
            )
            if backup_pick is not None:
                replicas = attempt
                break
    if replicas is None or (want_backup and backup_pick is None):
        raise _no_fit(session, spec, region, now, scanned, slots, want_backup, replicas is None)

    out = [
        PlacedInstance(
            slot=slot,
            role="replica",
            node_id=c.node_id,
            node_name=c.node_name,
            provider_id=c.provider_id,
            provider_name=c.provider_name,
            region=c.region,
            price_factor_pct=c.price_factor_pct,
            uptime_pct=None if c.uptime is None else round(c.uptime * 100, 2),
            free_vcpu=c.free_vcpu,
            free_ram_gb=c.free_ram_gb,
            reason=_describe(c, rank_of[c.node_id], note),
        )
        for slot, (c, note) in zip(slots, replicas, strict=True)
    ]
    if backup_pick is not None:
        c = backup_pick
        out.append(
            PlacedInstance(
                slot=-1,
                role="backup",
                node_id=c.node_id,
                node_name=c.node_name,
                provider_id=c.provider_id,
                provider_name=c.provider_name,
                region=c.region,
                price_factor_pct=c.price_factor_pct,
                uptime_pct=None if c.uptime is None else round(c.uptime * 100, 2),
                free_vcpu=c.free_vcpu,
                free_ram_gb=c.free_ram_gb,
                reason=_describe(c, rank_of[c.node_id], "; backup VM: a provider that hosts none of the replicas"),
            )
        )
    return out


# --- explaining a miss -------------------------------------------------------------------------


def _no_fit(
    session: Session,
    spec: ResourceSpec,
    region: str | None,
    now: datetime,
    scanned: Sequence[_Candidate],
    slots: Sequence[int],
    want_backup: bool,
    replicas_short: bool,
) -> InvalidInput:
    """Which resource was short, and where.

    One aggregate over the eligible nodes' own sizes tells "no node is big enough"; otherwise the
    scan that just failed covered every big-enough node, so its free figures tell what others hold.
    """
    where = _where(region)
    gpu_of_model = case((Node.gpu_model == spec.gpu_model, Node.gpu_count), else_=None)
    q = (
        select(
            func.count(),
            func.max(Node.vcpu),
            func.max(Node.ram_gb),
            func.max(Node.disk_gb),
            func.max(gpu_of_model) if spec.gpu_count else literal(0),
        )
        .select_from(Node)
        .where(and_(*_eligible(region, None, now)))
    )
    count, max_vcpu, max_ram, max_disk, max_gpu = session.execute(q).one()
    if not count:
        return InvalidInput(
            f"No node is online in {where} outside a maintenance window right now. Try another region.",
            field="region",
        )
    if spec.gpu_count and max_gpu is None:
        return InvalidInput(f"No online node in {where} has {spec.gpu_model} GPUs.", field="gpu_model")
    resources = [
        ("vcpu", "vCPU", spec.vcpu, "", int(max_vcpu), "free_vcpu"),
        ("ram_gb", "RAM", spec.ram_gb, " GB", int(max_ram), "free_ram_gb"),
        ("disk_gb", "disk", spec.disk_gb, " GB", int(max_disk), "free_disk_gb"),
    ]
    if spec.gpu_count:
        resources.append(("gpu_count", f"{spec.gpu_model} GPUs", spec.gpu_count, "", int(max_gpu), "free_gpu"))
    for field, label, asked, unit, largest, _ in resources:
        if asked > largest:
            return InvalidInput(
                f"Not enough {label} in {where}: each instance needs {asked:,}{unit}, "
                f"and the largest online node there has {largest:,}{unit}.",
                field=field,
            )
    for field, label, asked, unit, _, attr in resources:
        most = max((getattr(c, attr) for c in scanned), default=0)
        if asked > most:
            return InvalidInput(
                f"Not enough {label} free in {where}: each instance needs {asked:,}{unit}, and the most "
                f"free on one node is {max(most, 0):,}{unit} (the rest is taken by other deployments).",
                field=field,
            )
    fitting = [c for c in scanned if _fits(c, spec)]
    if not fitting:
        return InvalidInput(
            f"No single node in {where} has {spec.vcpu} vCPU, {spec.ram_gb} GB RAM and {spec.disk_gb:,} GB disk"
            + (f" and {spec.gpu_count} {spec.gpu_model}" if spec.gpu_count else "")
            + " free at once. Try a smaller size or another region.",
            field="vcpu",
        )
    if replicas_short:
        return InvalidInput(
            f"Only {len(fitting)} node(s) in {where} have room for an instance; {len(slots)} replica(s) need "
            f"{len(slots)} different nodes. Lower the replicas or choose another region.",
            field="replicas",
        )
    if want_backup:
        providers = len({c.provider_id for c in fitting})
        return InvalidInput(
            f"No node of another provider in {where} has room for the backup VM "
            f"({providers} provider(s) have room, and the backup must not share one with the replicas).",
            field="backup_enabled",
        )
    return InvalidInput(f"No node in {where} can take this deployment right now.", field="vcpu")
