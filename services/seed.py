"""Demo and benchmark data: `python -m services.seed --scale demo|large [--force]`.

Deterministic (fixed random seed; times relative to the start of the current hour). Bulk inserts
through SQLAlchemy Core in chunks, so `--scale large` runs in bounded memory. The seed writes rows
directly, not through service functions: it is a loader, not a user. A database that already has
users is left alone unless --force is given (and --force only works on an empty schema anyway).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import AddConstraint, DropConstraint

from services.db import models as m
from services.db.engine import get_engine
from services.deployments.service import price_for_nodes
from services.pricing.service import DEFAULT_RATES, ResourceSpec, platform_fee_cents
from services.settings.service import DEFAULT_REGIONS

COUNTRIES = {
    "us-east": ["US", "CA"],
    "us-west": ["US"],
    "eu-west": ["IE", "GB", "FR"],
    "eu-central": ["DE", "NL", "PL"],
    "ap-south": ["IN", "SG"],
    "ap-northeast": ["JP", "KR"],
}
GPU_MODELS = ["A100", "H100", "L4", "RTX4090"]
STATUS_MIX = [("running", 0.45), ("stopped", 0.2), ("pending", 0.1), ("failed", 0.1), ("deleted", 0.15)]
WORKLOADS = [
    ("ubuntu-vm", 2, 4, 40, None, 0),
    ("k8s-worker", 4, 16, 100, None, 0),
    ("gpu-notebook", 8, 32, 200, "A100", 1),
    ("custom", 2, 4, 20, None, 0),
]

# The demo people shown in the demo-mode picker (subject, name, email, roles granted in the database).
DEMO_PEOPLE = [
    ("demo:operator", "Olivia Operator", "olivia@operator.demo", ["cloud-operator"]),
    ("demo:provider", "Priya Provider", "priya@provider.demo", ["cloud-provider"]),
    ("demo:user", "Uma User", "uma@user.demo", []),
    ("demo:multi", "Max Multirole", "max@multi.demo", ["cloud-provider", "cloud-operator"]),
    ("demo:applicant", "Andre Applicant", "andre@applicant.demo", []),
    ("demo:operator2", "Omar Operator", "omar@operator.demo", ["cloud-operator"]),
]


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    providers: int
    nodes: int
    deployments: int
    running_share: float
    metric_nodes: int
    metric_days: int
    ledger_entries_target: int
    pending_requests: int
    # The benchmark's promise (large): at least `deployments * running_share` running deployments and
    # `ledger_entries_target` ledger entries. The small scales keep their historical shape instead.
    at_least: bool = False


SCALES = {
    "demo": Scale(
        "demo",
        users=50,
        providers=10,
        nodes=100,
        deployments=300,
        running_share=0.45,
        metric_nodes=100,
        metric_days=30,
        ledger_entries_target=6_000,
        pending_requests=4,
    ),
    # small and quick, same shape as demo: for the test suite
    "test": Scale(
        "test",
        users=20,
        providers=4,
        nodes=24,
        deployments=60,
        running_share=0.45,
        metric_nodes=6,
        metric_days=2,
        ledger_entries_target=1_000,
        pending_requests=2,
    ),
    "large": Scale(
        "large",
        users=20_000,
        providers=2_000,
        nodes=50_000,
        deployments=500_000,
        running_share=0.2,
        metric_nodes=1_000,
        metric_days=30,
        ledger_entries_target=5_000_000,
        pending_requests=200,
        at_least=True,
    ),
}
CHUNK = 20_000
# Tables loaded through the bulk path (no JSON columns; rows in the driver's own value types).
BULK_TABLES = (
    "nodes",
    "node_metrics",
    "deployments",
    "deployment_placements",
    "deployment_events",
    "payments",
    "ledger_transactions",
    "ledger_entries",
)
# From this many deployments on, the bulk tables' secondary indexes are dropped and rebuilt after the load.
REBUILD_INDEXES_FROM = 100_000
# The first deployments' statuses are fixed, so the demo people own one of each.
FIXED_STATUSES = ["running", "running", "stopped", "pending", "failed", "deleted", "running", "stopped"]
FIXED_UPTO = 16


def _chunks(rows: Iterator[dict], size: int = CHUNK) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(conn: Connection, table: Table, rows: Iterator[dict] | list[dict]) -> int:
    n = 0
    for batch in _chunks(iter(rows)):
        conn.execute(table.insert(), batch)
        n += len(batch)
    return n


def sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime on SQLite (naive UTC, microseconds)."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the fastest formatting for millions of rows
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


class _Bulk:
    """Fast loading of the big tables: PostgreSQL COPY, or the SQLite driver's executemany over a generator.

    Both bypass SQLAlchemy's per-row processing, so rows must already be in the driver's value types:
    `dt()` turns an aware datetime into what the UTCDateTime column would store, `flag()` a bool.
    Everything runs on the seed's connection, inside its one transaction.
    """

    def __init__(self, conn: Connection):
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.dt = (lambda v: v) if self.postgres else sqlite_datetime
        self.flag = bool if self.postgres else int

    def value(self, column, value):
        """A Python value as the driver takes it for `column` (bypassing SQLAlchemy's type processing)."""
        if value is None:
            return None
        column_type = getattr(column.type, "impl", column.type)  # UTCDateTime is a DateTime underneath
        if isinstance(column_type, DateTime):
            return self.dt(value)
        if isinstance(column_type, Boolean):
            return self.flag(value)
        if isinstance(value, dict | list):
            return json.dumps(value)
        return value

    def _defaults(self, table: Table, columns: list[str]) -> tuple[list[str], tuple]:
        """Columns the rows leave out that have a Python-side default (SQLAlchemy would fill them in)."""
        names, values = [], []
        for column in table.c:
            if column.name in columns or column.default is None or column.server_default is not None:
                continue
            default = column.default
            if default.is_scalar:
                raw = default.arg
            elif default.is_callable:
                raw = default.arg(None)  # SQLAlchemy wraps argument-less callables to take a context
            else:
                continue
            names.append(column.name)
            values.append(self.value(column, raw))
        return names, tuple(values)

    def rows(self, table: Table, columns: list[str], rows: Iterable[tuple]) -> int:
        """Insert tuples (in `columns` order); returns how many."""
        extra_names, extra_values = self._defaults(table, columns)
        if extra_names:
            columns = columns + extra_names
            rows = (row + extra_values for row in rows)
        counted = _Counter(rows)
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            if self.postgres:
                with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in counted:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", counted)
        finally:
            cursor.close()
        return counted.n

    def dicts(self, table: Table, rows: list[dict]) -> int:
        """Insert dicts that hold Python values (datetimes and bools are converted here)."""
        if not rows:
            return 0
        columns = list(rows[0])
        convert = []
        for i, name in enumerate(columns):
            column_type = table.c[name].type
            column_type = getattr(column_type, "impl", column_type)
            if isinstance(column_type, DateTime | Boolean):
                convert.append((i, lambda v, c=table.c[name]: self.value(c, v)))

        def tuples() -> Iterator[tuple]:
            last = [(None, None)] * len(columns)  # neighbouring rows often share a time: convert it once
            for row in rows:
                values = [row[c] for c in columns]
                for i, fn in convert:
                    value = values[i]
                    if value is not None:
                        seen, converted = last[i]
                        if value != seen:
                            converted = fn(value)
                            last[i] = (value, converted)
                        values[i] = converted
                yield tuple(values)

        return self.rows(table, columns, tuples())


class _Counter:
    """Counts the rows of an iterable as they pass."""

    def __init__(self, rows: Iterable[tuple]):
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple]:
        for row in self.rows:
            self.n += 1
            yield row


def _secondary_indexes(tables: list[Table]) -> list:
    """Non-unique indexes of `tables` (dropped before a large load and rebuilt after: faster than upkeep)."""
    return [idx for t in tables for idx in sorted(t.indexes, key=lambda i: i.name) if not idx.unique]


def _bulk_constraints(tables: list[Table]) -> list:
    """Foreign keys and unique constraints of `tables` (PostgreSQL: dropped for a large load, added back after)."""
    out: list = []
    for table in tables:
        out += sorted(table.foreign_key_constraints, key=lambda c: str(c.name))
        out += sorted((c for c in table.constraints if isinstance(c, UniqueConstraint)), key=lambda c: str(c.name))
    return out


def _usage_periods(running: list[tuple], now: datetime, target_charges: int) -> tuple[int, int]:
    """(hours per usage charge, number of periods) giving at least `target_charges` charges, fewest periods first.

    A deployment is charged for each period that starts after it was created.
    """
    ages = [(now - created).total_seconds() / 3600 for *_rest, created in running]
    for hours in (24, 12, 8, 6, 4, 3, 2, 1):
        periods_max = 30 * 24 // hours
        for periods in range(1, periods_max + 1):
            if sum(min(periods, int(age // hours)) for age in ages) >= target_charges:
                return hours, periods
    return 1, 30 * 24


def _fix_sequences(conn: Connection) -> None:
    """After explicit ids, move PostgreSQL's sequences past them."""
    if conn.dialect.name != "postgresql":
        return
    for table in m.Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement is not False and pk[0].type.python_type is int:
            seq = conn.scalar(text("select pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name})
            if seq:
                conn.execute(
                    text(
                        f"select setval('{seq}', coalesce((select max({pk[0].name}) from {table.name}), 0) + 1, false)"
                    )
                )


def has_data(url: str | None = None) -> bool:
    with get_engine(url).connect() as conn:
        return bool(conn.scalar(select(func.count()).select_from(m.User.__table__)))


def seed(scale_name: str = "demo", url: str | None = None, *, now: datetime | None = None, log=print) -> dict[str, int]:
    """Fill an empty database. Returns row counts per table."""
    sc = SCALES[scale_name]
    rng = random.Random(20261126)
    real_now = now or datetime.now(UTC)
    now = real_now.replace(minute=0, second=0, microsecond=0)
    counts: dict[str, int] = {}
    t0 = time.monotonic()
    engine = get_engine(url)
    T = {t.name: t for t in m.Base.metadata.sorted_tables}

    with engine.begin() as conn:
        bulk = _Bulk(conn)
        rebuild = [
            idx
            for idx in _secondary_indexes([T[name] for name in BULK_TABLES])
            if sc.deployments >= REBUILD_INDEXES_FROM
        ]
        if not bulk.postgres:
            conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MB of page cache for the load
        # PostgreSQL checks foreign keys row by row (a trigger per row) and keeps unique indexes up to date
        # on every insert: for a large load, drop them and add them back after, checked in one pass each.
        constraints = _bulk_constraints([T[name] for name in BULK_TABLES]) if bulk.postgres and rebuild else []
        for constraint in constraints:
            conn.execute(DropConstraint(constraint))
        for idx in rebuild:
            idx.drop(conn)
        # --- pricing and settings
        conn.execute(
            T["pricing_versions"].insert(),
            [
                dict(
                    id=1,
                    version=1,
                    effective_at=now - timedelta(days=90),
                    running_follow=False,
                    note="Launch prices",
                    created_at=now - timedelta(days=90),
                    **DEFAULT_RATES,
                )
            ],
        )
        pricing = m.PricingVersion(id=1, version=1, **DEFAULT_RATES)

        # --- users: demo people first, then generated users
        users = []
        for i, (subject, name, email, _roles) in enumerate(DEMO_PEOPLE, start=1):
            users.append(
                dict(
                    id=i,
                    subject=subject,
                    email=email,
                    email_verified=True,
                    display_name=name,
                    timezone=["UTC", "Europe/Berlin", "America/New_York"][i % 3],
                    default_region=None,
                    notification_prefs={},
                    is_demo=True,
                    created_at=now - timedelta(days=120),
                )
            )
        first_names = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
        for i in range(len(users) + 1, sc.users + 1):
            fn = first_names[i % len(first_names)]
            users.append(
                dict(
                    id=i,
                    subject=f"seed:user:{i}",
                    email=f"{fn.lower()}{i}@example.com",
                    email_verified=True,
                    display_name=f"{fn} {i}",
                    timezone="UTC",
                    default_region=None,
                    notification_prefs={},
                    is_demo=False,
                    created_at=now - timedelta(days=rng.randint(1, 120)),
                )
            )
        counts["users"] = _insert(conn, T["users"], users)
        demo_id = {p[0]: i for i, p in enumerate(DEMO_PEOPLE, start=1)}
        grants = [
            dict(user_id=demo_id[s], role=r, granted_at=now - timedelta(days=100))
            for s, _n, _e, roles in DEMO_PEOPLE
            for r in roles
        ]
        counts["role_grants"] = _insert(conn, T["role_grants"], grants)

        # --- providers: the demo provider owns #1, the multi-role person #2, then generated
        owner_pool = [demo_id["demo:provider"], demo_id["demo:multi"]] + list(range(len(DEMO_PEOPLE) + 1, sc.users + 1))
        providers, extra_grants = [], []
        for pid in range(1, sc.providers + 1):
            owner = owner_pool[pid - 1]
            regions = rng.sample(DEFAULT_REGIONS, k=rng.randint(1, 3))
            providers.append(
                dict(
                    id=pid,
                    owner_user_id=owner,
                    company=f"{['Nimbus', 'Stratus', 'Cirrus', 'Alto', 'Cumulus'][pid % 5]} Compute {pid}",
                    contact_email=f"ops@provider{pid}.example",
                    website=f"https://provider{pid}.example",
                    regions=regions,
                    status="active",
                    created_at=now - timedelta(days=110),
                )
            )
            if pid > 2:
                extra_grants.append(dict(user_id=owner, role="cloud-provider", granted_at=now - timedelta(days=110)))
        counts["providers"] = _insert(conn, T["providers"], providers)
        counts["role_grants"] += _insert(conn, T["role_grants"], extra_grants)

        # --- provider requests: approved ones for seeded providers, pending and rejected applications
        reqs = []
        rid = 0
        for p in providers[: min(len(providers), 50)]:
            rid += 1
            reqs.append(
                dict(
                    id=rid,
                    applicant_user_id=p["owner_user_id"],
                    company=p["company"],
                    contact_name="Ops team",
                    contact_email=p["contact_email"],
                    regions=p["regions"],
                    expected_capacity="20 nodes",
                    website=p["website"],
                    status="approved",
                    review_note="Welcome aboard",
                    reviewed_by=demo_id["demo:operator"],
                    reviewed_at=now - timedelta(days=110),
                    provider_id=p["id"],
                    created_at=now - timedelta(days=112),
                )
            )
        applicants = [demo_id["demo:applicant"]] + list(range(len(DEMO_PEOPLE) + sc.providers + 1, sc.users + 1))
        for k in range(sc.pending_requests + 2):
            rid += 1
            status = "pending" if k < sc.pending_requests else "rejected"
            reqs.append(
                dict(
                    id=rid,
                    applicant_user_id=applicants[k % len(applicants)],
                    company=f"Applicant Hosting {k + 1}",
                    contact_name=f"Founder {k + 1}",
                    contact_email=f"founder{k + 1}@applicant.example",
                    regions=rng.sample(DEFAULT_REGIONS, k=2),
                    expected_capacity=f"{rng.randint(2, 40)} nodes, {rng.choice(['CPU', 'GPU', 'mixed'])}",
                    website=f"https://applicant{k + 1}.example",
                    status=status,
                    review_note="Capacity too small for now" if status == "rejected" else None,
                    reviewed_by=demo_id["demo:operator"] if status == "rejected" else None,
                    reviewed_at=now - timedelta(days=3) if status == "rejected" else None,
                    provider_id=None,
                    created_at=now - timedelta(days=rng.randint(0, 10), hours=rng.randint(0, 23)),
                )
            )
        counts["provider_requests"] = _insert(conn, T["provider_requests"], reqs)

        # --- nodes
        nodes = []
        for nid in range(1, sc.nodes + 1):
            prov = providers[(nid - 1) % len(providers)]
            region = prov["regions"][nid % len(prov["regions"])]
            has_gpu = nid % 5 == 0
            roll = rng.random()
            status = (
                "online"
                if roll < 0.85
                else ("offline" if roll < 0.93 else ("draining" if roll < 0.97 else "decommissioned"))
            )
            nodes.append(
                dict(
                    id=nid,
                    provider_id=prov["id"],
                    name=f"node-{prov['id']}-{nid:06d}",
                    region=region,
                    country=rng.choice(COUNTRIES.get(region, ["US"])),
                    vcpu=rng.choice([16, 32, 64, 96, 128]),
                    ram_gb=rng.choice([64, 128, 256, 512]),
                    disk_gb=rng.choice([1000, 2000, 4000, 8000]),
                    gpu_model=rng.choice(GPU_MODELS) if has_gpu else None,
                    gpu_count=rng.choice([1, 2, 4, 8]) if has_gpu else 0,
                    bandwidth_mbps=rng.choice([1000, 10000, 25000]),
                    price_factor_pct=rng.choice([90, 100, 100, 110, 120]),
                    status=status,
                    last_heartbeat_at=real_now - timedelta(seconds=rng.randint(5, 60))
                    if status == "online"
                    else now - timedelta(days=2),
                    token_hash=None,
                    created_at=now - timedelta(days=100),
                )
            )
        counts["nodes"] = bulk.dicts(T["nodes"], nodes)
        placeable = [n for n in nodes if n["status"] == "online"]
        gpu_nodes = [n for n in placeable if n["gpu_count"]]

        # --- metrics: metric_days of 5-minute samples for the first metric_nodes nodes
        steps = sc.metric_days * 24 * 12
        start = now - timedelta(minutes=5 * steps)

        # Per step, computed once for every node: the time (as the driver stores it), disk fill, day/night swing.
        ts_values = [bulk.dt(start + timedelta(minutes=5 * k)) for k in range(steps)]
        disk_values = [min(100.0, 30 + k * 20 / steps) for k in range(steps)]
        swing = [15 * (1 if 8 <= (k // 12) % 24 <= 20 else -1) for k in range(steps)]
        up, down = bulk.flag(True), bulk.flag(False)

        def metric_rows() -> Iterator[tuple]:
            uniform, roll = rng.uniform, rng.random
            for n in nodes[: sc.metric_nodes]:
                node_id = n["id"]
                base_cpu = uniform(15, 70)
                base_ram = base_cpu * 0.8 + 10
                down_from = rng.randint(0, steps) if n["status"] != "online" else steps + 1
                for k in range(steps):
                    if k < down_from and roll() > 0.002:
                        yield (
                            node_id,
                            ts_values[k],
                            max(0.0, min(100.0, base_cpu + swing[k] + uniform(-8, 8))),
                            max(0.0, min(100.0, base_ram + uniform(-5, 5))),
                            disk_values[k],
                            uniform(5, 400),
                            uniform(5, 300),
                            up,
                        )
                    else:
                        yield (node_id, ts_values[k], 0.0, 0.0, disk_values[k], 0.0, 0.0, down)

        metric_columns = ["node_id", "ts", "cpu_pct", "ram_pct", "disk_pct", "net_in_mbps", "net_out_mbps", "online"]
        counts["node_metrics"] = bulk.rows(T["node_metrics"], metric_columns, metric_rows())
        log(f"  nodes and metrics: {time.monotonic() - t0:.1f}s")

        # --- deployments, placements, events
        user_ids = [u["id"] for u in users]
        deployments, placements, events = [], [], []
        running: list[tuple] = []  # (deployment, owner, hourly cents, fee bp, provider, created)
        dep_counts: dict[str, int] = {}
        ev_id = 0
        running_target = int(sc.deployments * sc.running_share)
        if sc.at_least:  # the fixed statuses of the first deployments must not cost running ones
            running_target += sum(
                1 for did in range(1, min(FIXED_UPTO, running_target) + 1) if FIXED_STATUSES[did % 8] != "running"
            )
        quotes: dict[tuple, object] = {}

        def flush_deployments() -> None:
            bulk.dicts(T["deployments"], deployments)
            bulk.dicts(T["deployment_placements"], placements)
            bulk.dicts(T["deployment_events"], events)
            deployments.clear()
            placements.clear()
            events.clear()

        for did in range(1, sc.deployments + 1):
            # the demo user owns a handful of every status; the rest spread over generated users
            owner = (
                demo_id["demo:user"]
                if did <= 12
                else (demo_id["demo:multi"] if did <= 16 else user_ids[rng.randrange(len(user_ids))])
            )
            if did <= running_target:
                status = "running"
            else:
                r, acc = rng.random(), 0.0
                status = "deleted"
                for s_name, share in STATUS_MIX[1:]:
                    acc += share / (1 - STATUS_MIX[0][1])
                    if r < acc:
                        status = s_name
                        break
            if did <= FIXED_UPTO:
                status = FIXED_STATUSES[did % 8]
            wk, vcpu, ram, disk, gpu, gpu_n = WORKLOADS[did % len(WORKLOADS)]
            if gpu and not gpu_nodes:
                wk, vcpu, ram, disk, gpu, gpu_n = WORKLOADS[0]
            replicas = 1 + (did % 7 == 0) + (did % 11 == 0)
            backup = did % 9 == 0
            pool = gpu_nodes if gpu else placeable
            # Each instance's node (replicas from the pool, the backup from any placeable node); the price is
            # each instance at its node's factor, summed and rounded once, as a launch prices it.
            instance_nodes = [pool[(did * 7919 + slot * 104729) % len(pool)] for slot in range(replicas)]
            if backup:
                instance_nodes.append(placeable[(did * 15485863) % len(placeable)])
            first = instance_nodes[0]
            factors = tuple(n["price_factor_pct"] for n in instance_nodes)
            quote_key = (vcpu, ram, disk, gpu, gpu_n, replicas, backup, factors)
            q = quotes.get(quote_key)
            if q is None:
                spec = ResourceSpec(
                    vcpu=vcpu,
                    ram_gb=ram,
                    disk_gb=disk,
                    gpu_model=gpu,
                    gpu_count=gpu_n,
                    replicas=replicas,
                    backup_enabled=backup,
                )
                q = quotes[quote_key] = price_for_nodes(spec, pricing, factors)
            created = now - timedelta(days=rng.randint(0, 29), hours=rng.randint(0, 23))
            deployments.append(
                dict(
                    id=did,
                    owner_user_id=owner,
                    name=f"{wk}-{did}",
                    workload=wk,
                    image=None if wk == "custom" else f"{wk}:latest",
                    vcpu=vcpu,
                    ram_gb=ram,
                    disk_gb=disk,
                    gpu_model=gpu,
                    gpu_count=gpu_n,
                    region=first["region"] if did % 3 else None,
                    replicas=replicas,
                    backup_enabled=backup,
                    status=status,
                    pricing_version_id=1,
                    price_per_hour_cents=q.price_per_hour_cents,
                    platform_fee_bp=q.platform_fee_bp,
                    currency="USD",
                    created_at=created,
                    updated_at=created,
                    started_at=created if status in ("running", "stopped") else None,
                    stopped_at=created + timedelta(hours=5) if status == "stopped" else None,
                    deleted_at=created + timedelta(hours=8) if status == "deleted" else None,
                )
            )
            dep_counts[status] = dep_counts.get(status, 0) + 1
            if status in ("running", "stopped", "pending"):
                for slot, node in enumerate(instance_nodes[:replicas]):
                    placements.append(
                        dict(deployment_id=did, slot=slot, node_id=node["id"], role="replica", reason="seeded")
                    )
                if backup:
                    placements.append(
                        dict(
                            deployment_id=did, slot=-1, node_id=instance_nodes[-1]["id"], role="backup", reason="seeded"
                        )
                    )
            for kind, st_after, dt in (
                [("created", "pending", 0), ("placed", "pending", 1)]
                + ([("started", "running", 2)] if status in ("running", "stopped") else [])
                + ([("stopped", "stopped", 300)] if status == "stopped" else [])
                + ([("failed", "failed", 3)] if status == "failed" else [])
                + ([("deleted", "deleted", 480)] if status == "deleted" else [])
            ):
                ev_id += 1
                events.append(
                    dict(
                        id=ev_id,
                        deployment_id=did,
                        ts=created + timedelta(minutes=dt),
                        kind=kind,
                        status=st_after,
                        message="" if kind != "failed" else "image pull failed",
                        actor="seed",
                    )
                )
            if status == "running":
                running.append((did, owner, q.price_per_hour_cents, q.platform_fee_bp, first["provider_id"], created))
            if len(deployments) >= CHUNK:
                flush_deployments()
        flush_deployments()
        counts["deployments"] = sc.deployments
        counts["deployment_events"] = ev_id
        log(f"  deployments: {time.monotonic() - t0:.1f}s {dep_counts}")

        # --- ledger: accounts, top-ups and daily usage charges, balances consistent with entries
        acct_id = 0
        accounts: dict[str, dict] = {}

        def account(code: str, kind: str, **owner) -> dict:
            nonlocal acct_id
            if code not in accounts:
                acct_id += 1
                accounts[code] = dict(
                    id=acct_id,
                    code=code,
                    kind=kind,
                    currency="USD",
                    balance_cents=0,
                    created_at=now - timedelta(days=120),
                    user_id=owner.get("user_id"),
                    provider_id=owner.get("provider_id"),
                )
            return accounts[code]

        stripe_acct = account("external:stripe", "stripe_clearing")
        fees_acct = account("platform:fees", "platform_fees")
        account("platform:revenue", "revenue")
        account("platform:adjustments", "adjustments")
        for u in users:
            account(f"user:{u['id']}:credits", "user_credits", user_id=u["id"])
        for p in providers:
            account(f"provider:{p['id']}:payable", "provider_payable", provider_id=p["id"])

        _insert(conn, T["ledger_accounts"], list(accounts.values()))
        txn_id = 0
        entry_id = 0
        pay_id = 0
        txns: list[dict] = []
        entries: list[dict] = []
        payments: list[dict] = []

        def add_txn(kind: str, key: str, at: datetime, legs: list[tuple[dict, int]], **extra) -> None:
            nonlocal txn_id, entry_id
            txn_id += 1
            txns.append(
                dict(
                    id=txn_id,
                    kind=kind,
                    idempotency_key=key,
                    memo=extra.pop("memo", ""),
                    created_at=at,
                    deployment_id=extra.get("deployment_id"),
                    payment_id=extra.get("payment_id"),
                    created_by=None,
                )
            )
            for acct, amount in legs:
                entry_id += 1
                entries.append(
                    dict(id=entry_id, transaction_id=txn_id, account_id=acct["id"], amount_cents=amount, created_at=at)
                )
                acct["balance_cents"] += amount

        def flush_ledger() -> None:
            bulk.dicts(T["payments"], payments)
            bulk.dicts(T["ledger_transactions"], txns)
            bulk.dicts(T["ledger_entries"], entries)
            payments.clear()
            txns.clear()
            entries.clear()

        # Usage: one transaction per running deployment per day (3 legs); top-ups keep owners solvent.
        # `at_least` scales charge shorter periods when whole days cannot reach the entry target.
        budget_entries = sc.ledger_entries_target
        days = max(1, min(30, budget_entries // max(1, 3 * len(running)) if running else 1))
        hours, periods = 24, days
        if sc.at_least and running:
            hours, periods = _usage_periods(running, now, -(-budget_entries // 3))
        owner_spend: dict[int, int] = {}
        for did, owner, hourly, fee_bp, provider_id, created in running:
            for d in range(periods):
                day_start = now - timedelta(hours=hours * (periods - d))
                day_end = day_start + timedelta(hours=hours)
                charged_hours = hours
                if day_start < created:
                    # the period it started in: charged from the hour it started, as metering charges hours
                    if day_end <= created:
                        continue
                    charged_hours = -(-int((day_end - created).total_seconds()) // 3600)
                charged_from = day_end - timedelta(hours=charged_hours)
                amount = hourly * charged_hours
                fee = platform_fee_cents(amount, fee_bp)
                owner_spend[owner] = owner_spend.get(owner, 0) + amount
                # top up before the owner would go negative
                user_acct = accounts[f"user:{owner}:credits"]
                if user_acct["balance_cents"] < amount:
                    topup = max(5000, ((amount * 10) // 5000 + 1) * 5000)
                    pay_id += 1
                    payments.append(
                        dict(
                            id=pay_id,
                            user_id=owner,
                            kind="topup",
                            stripe_payment_intent_id=f"pi_seed_{pay_id}",
                            stripe_charge_id=f"ch_seed_{pay_id}",
                            amount_cents=topup,
                            refunded_cents=0,
                            currency="USD",
                            status="succeeded",
                            card_brand="visa",
                            card_last4="4242",
                            created_at=charged_from - timedelta(hours=1),
                            succeeded_at=charged_from - timedelta(hours=1),
                        )
                    )
                    add_txn(
                        "topup",
                        f"seed:pi:{pay_id}",
                        charged_from - timedelta(hours=1),
                        [(stripe_acct, -topup), (user_acct, topup)],
                        payment_id=pay_id,
                        memo="Card top-up",
                    )
                add_txn(
                    "usage",
                    f"seed:usage:{did}:{day_start:%Y%m%d}" if hours == 24 else f"seed:usage:{did}:{day_start:%Y%m%d%H}",
                    day_end - timedelta(seconds=1),
                    [
                        (user_acct, -amount),
                        (accounts[f"provider:{provider_id}:payable"], amount - fee),
                        (fees_acct, fee),
                    ],
                    deployment_id=did,
                    memo=f"Usage {day_start:%Y-%m-%d} (24 h)"
                    if charged_hours == 24
                    else f"Usage {charged_from:%Y-%m-%d %H:%M} ({charged_hours} h)",
                )
                if len(entries) >= CHUNK:
                    flush_ledger()
        # Users without running deployments still have a top-up or two, so billing pages show history.
        for u in users[: min(len(users), 2000)]:
            if u["id"] in owner_spend:
                continue
            pay_id += 1
            amount = rng.choice([1000, 2500, 5000, 10000])
            at = now - timedelta(days=rng.randint(1, 28))
            payments.append(
                dict(
                    id=pay_id,
                    user_id=u["id"],
                    kind="topup",
                    stripe_payment_intent_id=f"pi_seed_{pay_id}",
                    stripe_charge_id=f"ch_seed_{pay_id}",
                    amount_cents=amount,
                    refunded_cents=0,
                    currency="USD",
                    status="succeeded",
                    card_brand="mastercard",
                    card_last4="4444",
                    created_at=at,
                    succeeded_at=at,
                )
            )
            add_txn(
                "topup",
                f"seed:pi:{pay_id}",
                at,
                [(stripe_acct, -amount), (accounts[f"user:{u['id']}:credits"], amount)],
                payment_id=pay_id,
                memo="Card top-up",
            )
        flush_ledger()
        counts["ledger_transactions"] = txn_id
        counts["ledger_entries"] = entry_id
        counts["payments"] = pay_id
        conn.execute(
            update(T["ledger_accounts"])
            .where(T["ledger_accounts"].c.id == bindparam("aid"))
            .values(balance_cents=bindparam("bal")),
            [dict(aid=a["id"], bal=a["balance_cents"]) for a in accounts.values() if a["balance_cents"]],
        )
        log(f"  ledger: {time.monotonic() - t0:.1f}s")

        # --- maintenance windows (one upcoming and one past for the demo provider), notifications
        mw = [
            dict(
                id=1,
                provider_id=1,
                starts_at=now + timedelta(days=3),
                ends_at=now + timedelta(days=3, hours=4),
                reason="Kernel upgrade",
                status="scheduled",
                created_by=demo_id["demo:provider"],
                created_at=now - timedelta(days=1),
            ),
            dict(
                id=2,
                provider_id=1,
                starts_at=now - timedelta(days=10),
                ends_at=now - timedelta(days=10) + timedelta(hours=2),
                reason="Switch replacement",
                status="scheduled",
                created_by=demo_id["demo:provider"],
                created_at=now - timedelta(days=12),
            ),
        ]
        _insert(conn, T["maintenance_windows"], mw)
        p1_nodes = [n["id"] for n in nodes if n["provider_id"] == 1][:3]
        _insert(
            conn, T["maintenance_window_nodes"], [dict(window_id=w["id"], node_id=nid) for w in mw for nid in p1_nodes]
        )
        _insert(
            conn,
            T["notifications"],
            [
                dict(
                    user_id=demo_id["demo:user"],
                    kind="maintenance",
                    title="Planned maintenance in 3 days",
                    body="Kernel upgrade on nodes hosting your deployments.",
                    created_at=now - timedelta(days=1),
                )
            ],
        )
        counts["maintenance_windows"] = len(mw)
        _fix_sequences(conn)
        for constraint in constraints:
            if isinstance(constraint, UniqueConstraint):
                conn.execute(AddConstraint(constraint))
        for idx in rebuild:
            idx.create(conn)
        for constraint in constraints:
            if isinstance(constraint, ForeignKeyConstraint):
                conn.execute(AddConstraint(constraint))
        if rebuild:
            log(f"  indexes rebuilt: {time.monotonic() - t0:.1f}s")
    log(f"seeded {scale_name} in {time.monotonic() - t0:.1f}s: {counts}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo")
    parser.add_argument("--force", action="store_true", help="seed even if the database has users")
    args = parser.parse_args(argv)
    from services.db.migrate import upgrade

    upgrade()
    if has_data() and not args.force:
        print("The database already has data; nothing seeded (use --force on an empty database).")
        return 0
    seed(args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
