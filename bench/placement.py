"""Placement of one deployment: the scheduler's `place` against the one SQL query that filters candidates.

Both run on the seeded fleet with fresh heartbeats. `place` only reads (it writes nothing), so the
same deployment can be placed again and again; the uptime shares it caches are warm after the first
call, as they are in a running app (they are kept for five minutes).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, text

from bench.core import Row, failed_row, median, ms, percentile, ratio, timed
from bench.dataset import refresh_heartbeats
from services.config import get_settings
from services.db.base import UTCDateTime, utcnow
from services.db.engine import UnitOfWork
from services.pricing.service import ResourceSpec

TARGET = "median ≤ 50 ms"
TARGET_MS = 50.0


def _gpu_spec(model: str) -> ResourceSpec:
    return ResourceSpec(vcpu=8, ram_gb=32, disk_gb=200, gpu_model=model, gpu_count=1)


def _fits(url: str, spec: ResourceSpec) -> bool:
    from services.errors import InvalidInput

    try:
        return bool(_place(url, spec, None)())
    except InvalidInput:
        return False


def _cases(url: str) -> list[tuple[str, ResourceSpec, str | None]]:
    """(label, spec, region): the shapes people launch most, plus the hardest one (spread + backup VM).

    Regions and the GPU model are the data set's busiest, so every case can fit at any scale.
    """
    from sqlalchemy import func, select

    from services.nodes.models import Node

    with UnitOfWork(url) as uow:
        s = uow.session
        regions = s.execute(
            select(Node.region, func.count(func.distinct(Node.provider_id)))
            .where(Node.status == "online")
            .group_by(Node.region)
            .order_by(func.count().desc(), Node.region)
        ).all()
        gpus = s.scalars(
            select(Node.gpu_model)
            .where(Node.status == "online", Node.gpu_count > 0)
            .group_by(Node.gpu_model)
            .order_by(func.count().desc(), Node.gpu_model)
        ).all()
    gpu = next((model for model in gpus if _fits(url, _gpu_spec(model))), None)
    busiest = regions[0][0] if regions else None
    # spread over 3 providers plus a 4th for the backup: the busiest region with that many, else anywhere
    spread = next((r for r, providers in regions if providers >= 4), None)
    cases = [
        ("small VM, any region", ResourceSpec(vcpu=2, ram_gb=4, disk_gb=40), None),
        (f"k8s worker in {busiest}", ResourceSpec(vcpu=4, ram_gb=16, disk_gb=100), busiest),
        (
            "3 replicas + backup VM" + (f" in {spread}" if spread else ", any region"),
            ResourceSpec(vcpu=2, ram_gb=4, disk_gb=40, replicas=3, backup_enabled=True),
            spread,
        ),
    ]
    if gpu:  # the most common model that still has a free GPU somewhere
        cases.insert(2, (f"{gpu} GPU notebook", _gpu_spec(gpu), None))
    return cases


# The candidate filter, written by hand: online with a fresh heartbeat, active provider, not in a
# maintenance window in the next hour, region and GPU model, big enough; the cheapest and largest first;
# then what pending/running deployments already hold on those nodes, and only those with room left.
# The heartbeat test and the provider test are written as the scheduler writes them (services/deployments/
# placement.py, `_online` and `_provider_active`): as a plain comparison and a join, PostgreSQL plans them
# from statistics older than the newest heartbeats, expects one fresh node and takes 0.2-4 s; this floor
# is meant to be the least the job needs, not a plan gone wrong.
FLOOR_SQL = """
WITH short AS (
    SELECT n.id, n.provider_id, n.price_factor_pct, n.vcpu, n.ram_gb, n.disk_gb, n.gpu_count
    FROM nodes n
    WHERE n.status = 'online' AND n.last_heartbeat_at IS NOT NULL
      AND COALESCE(n.last_heartbeat_at, n.created_at) >= :cutoff
      AND n.provider_id NOT IN (SELECT p.id FROM providers p WHERE p.status <> 'active')
      {region} {gpu}
      AND n.vcpu >= :vcpu AND n.ram_gb >= :ram_gb AND n.disk_gb >= :disk_gb AND n.gpu_count >= :gpu_count
      AND NOT EXISTS (
          SELECT 1 FROM maintenance_window_nodes mn JOIN maintenance_windows mw ON mw.id = mn.window_id
          WHERE mn.node_id = n.id AND mw.status = 'scheduled' AND mw.starts_at < :horizon AND mw.ends_at > :now)
    ORDER BY n.price_factor_pct, n.vcpu DESC, n.ram_gb DESC, n.id
    LIMIT :limit
), used AS (
    SELECT pl.node_id, SUM(d.vcpu) AS vcpu, SUM(d.ram_gb) AS ram_gb, SUM(d.disk_gb) AS disk_gb,
           SUM(d.gpu_count) AS gpu
    FROM deployment_placements pl JOIN deployments d ON d.id = pl.deployment_id
    WHERE pl.node_id IN (SELECT id FROM short) AND d.status IN ('pending', 'running')
    GROUP BY pl.node_id
)
SELECT s.id, s.provider_id, s.price_factor_pct,
       s.vcpu - COALESCE(u.vcpu, 0) AS free_vcpu, s.ram_gb - COALESCE(u.ram_gb, 0) AS free_ram
FROM short s LEFT JOIN used u ON u.node_id = s.id
WHERE s.vcpu - COALESCE(u.vcpu, 0) >= :vcpu AND s.ram_gb - COALESCE(u.ram_gb, 0) >= :ram_gb
  AND s.disk_gb - COALESCE(u.disk_gb, 0) >= :disk_gb AND s.gpu_count - COALESCE(u.gpu, 0) >= :gpu_count
"""


def _floor(url: str, spec: ResourceSpec, region: str | None):
    now = utcnow()
    sql = FLOOR_SQL.format(
        region="AND n.region = :region" if region else "",
        gpu="AND n.gpu_model = :gpu_model" if spec.gpu_count else "",
    )
    stmt = text(sql).bindparams(
        bindparam("cutoff", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("horizon", type_=UTCDateTime()),
    )
    params = dict(
        cutoff=now - timedelta(seconds=get_settings().node_offline_after),
        now=now,
        horizon=now + timedelta(hours=1),
        gpu_count=spec.gpu_count,
        vcpu=spec.vcpu,
        ram_gb=spec.ram_gb,
        disk_gb=spec.disk_gb,
        limit=52,
    )
    if region:
        params["region"] = region
    if spec.gpu_count:
        params["gpu_model"] = spec.gpu_model
    uow = UnitOfWork(url)

    def run() -> int:
        with uow:
            return len(uow.session.execute(stmt, params).all())

    return run


def _place(url: str, spec: ResourceSpec, region: str | None):
    from services.deployments.placement import place

    uow = UnitOfWork(url)

    def run() -> int:
        with uow:
            return len(place(uow.session, spec, region=region))

    return run


def measure(ctx) -> list[Row]:
    """One row per launch shape: median (and p95) of `place` against the candidate query alone."""
    count, budget = (5, 5.0) if ctx.quick else (40, 20.0)
    rows = []
    refresh_heartbeats(ctx.url)
    for label, spec, region in _cases(ctx.url):
        what = f"placement: {label}"
        refresh_heartbeats(ctx.url)  # seeded heartbeats go stale after MARKETPLACE_NODE_OFFLINE_AFTER
        try:
            floor_run, place_run = _floor(ctx.url, spec, region), _place(ctx.url, spec, region)
            candidates = floor_run()
            figure = timed(place_run, count, budget, warmup=2)
            floor = timed(floor_run, count, budget, warmup=1)
        except Exception as exc:  # a placement that cannot fit is a finding, not a crash of the bench
            rows.append(failed_row(what, TARGET, f"{type(exc).__name__}: {exc}"))
            continue
        fig_med, floor_med = ms(median(figure)), ms(median(floor))
        rows.append(
            Row(
                what=what,
                figure=f"median {fig_med:.1f} ms, p95 {ms(percentile(figure, 95)):.1f} ms",
                floor=f"median {floor_med:.1f} ms",
                ratio=ratio(fig_med, floor_med),
                target=TARGET,
                met=fig_med <= TARGET_MS,
                values={"median_ms": fig_med, "p95_ms": ms(percentile(figure, 95)), "n": len(figure)},
                floor_values={"median_ms": floor_med, "n": len(floor), "candidates": candidates},
            )
        )
    return rows
