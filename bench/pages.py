"""Every page, per role: the server-side script run (AppTest, warm) against a floor page.

The figure is what a person waits for on the server when a page reruns: `ui.py` (identity, then
navigation) running the page script, through Streamlit's AppTest, signed in as the seeded demo
person of each role, after one untimed run (warm: caches, imports and connections in place, each
script compiled once per process as the server compiles it).

The floor is a page that shows the same rows with nothing else: one hand-written SQL query and one
st.dataframe. It is registered in the navigation for the benchmark only and runs through `ui.py`
like any page (same person, same identity and navigation work), so the ratio is what the page's
own work costs over the least a page of this app can do. Pages without a floor query of their own
get the generic one (and say so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from bench.core import Row, failed_row, median, ms, percentile, ratio
from bench.dataset import refresh_heartbeats
from services.config import ROOT, get_settings

TARGET = "median ≤ 300 ms; ratio ≤ 3"
HEARTBEAT_REFRESH_SECONDS = 60
MAX_MEDIAN_MS = 300.0
MAX_RATIO = 3.0
UI = str(ROOT / "ui.py")
FLOOR_PAGE = "bench/floor_page.py"  # relative to ui.py, like the app's pages

# The seeded demo person standing for each role (their roles come from database grants).
PEOPLE = {
    "user": ("demo:user", "uma@user.demo", "Uma User"),
    "provider": ("demo:provider", "priya@provider.demo", "Priya Provider"),
    "operator": ("demo:operator", "olivia@operator.demo", "Olivia Operator"),
}


@dataclass(frozen=True)
class Floor:
    """The one query that fetches what a page shows; `{day}` becomes the dialect's day expression."""

    sql: str
    generic: bool = False


GENERIC = Floor(
    "SELECT d.id, d.name, d.status, d.created_at FROM deployments d WHERE d.owner_user_id = :user_id "
    "ORDER BY d.created_at DESC LIMIT 20",
    generic=True,
)
FLOORS: dict[str, Floor] = {
    "pages/home.py": Floor(
        """SELECT (SELECT COUNT(*) FROM providers WHERE status = 'active') AS providers,
                  (SELECT COUNT(*) FROM nodes WHERE status = 'online' AND last_heartbeat_at >= :cutoff) AS online,
                  (SELECT COUNT(*) FROM nodes WHERE status != 'decommissioned') AS nodes,
                  (SELECT COUNT(*) FROM deployments WHERE status = 'running') AS running,
                  (SELECT COUNT(*) FROM deployments WHERE status = 'pending') AS pending,
                  (SELECT COUNT(*) FROM deployments WHERE status = 'stopped') AS stopped,
                  (SELECT COUNT(*) FROM deployments WHERE status = 'failed') AS failed,
                  (SELECT COUNT(*) FROM deployments WHERE status = 'deleted') AS deleted"""
    ),
    "pages/user_launch.py": Floor(
        "SELECT * FROM pricing_versions WHERE effective_at <= :now ORDER BY effective_at DESC, version DESC LIMIT 1"
    ),
    "pages/user_deployments.py": Floor(
        """SELECT d.id, d.name, d.status, d.workload, d.region, d.replicas, d.backup_enabled,
                  d.price_per_hour_cents, d.created_at,
                  (SELECT COUNT(*) FROM deployment_placements p WHERE p.deployment_id = d.id) AS instances,
                  (SELECT COALESCE(SUM(u.amount_cents), 0) FROM usage_charges u WHERE u.deployment_id = d.id) AS cost
           FROM deployments d
           WHERE d.owner_user_id = :user_id AND d.status IN ('pending', 'running', 'stopped', 'failed')
           ORDER BY d.created_at DESC LIMIT 20"""
    ),
    "pages/provider_apply.py": Floor(
        "SELECT * FROM provider_requests WHERE applicant_user_id = :user_id ORDER BY created_at DESC LIMIT 20"
    ),
    "pages/provider_nodes.py": Floor(
        """SELECT n.id, n.name, n.region, n.status, n.last_heartbeat_at, n.vcpu, n.ram_gb, n.gpu_model,
                  (SELECT COUNT(*) FROM deployment_placements p WHERE p.node_id = n.id) AS instances
           FROM nodes n JOIN providers pr ON pr.id = n.provider_id
           WHERE pr.owner_user_id = :user_id ORDER BY n.name LIMIT 25"""
    ),
    "pages/provider_maintenance.py": Floor(
        """SELECT w.* FROM maintenance_windows w JOIN providers pr ON pr.id = w.provider_id
           WHERE pr.owner_user_id = :user_id ORDER BY w.starts_at DESC LIMIT 20"""
    ),
    "pages/operator_overview.py": Floor(
        """SELECT {day} AS day, SUM(e.amount_cents) AS fees
           FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
           WHERE a.code = 'platform:fees' AND e.created_at >= :month_ago
           GROUP BY {day} ORDER BY 1"""
    ),
    "pages/billing.py": Floor(
        """SELECT a.balance_cents, p.id, p.kind, p.amount_cents, p.status, p.created_at
           FROM ledger_accounts a LEFT JOIN (
               SELECT * FROM payments WHERE user_id = :user_id ORDER BY created_at DESC LIMIT 5) p ON 1 = 1
           WHERE a.user_id = :user_id"""
    ),
    "pages/billing_history.py": Floor(
        """SELECT t.created_at, t.kind, t.memo, t.deployment_id, e.amount_cents
           FROM ledger_accounts a
           JOIN ledger_entries e ON e.account_id = a.id
           JOIN ledger_transactions t ON t.id = e.transaction_id
           WHERE a.user_id = :user_id AND e.created_at >= :month_ago
           ORDER BY e.created_at DESC LIMIT 25"""
    ),
    "pages/billing_subscriptions.py": Floor(
        "SELECT * FROM subscriptions WHERE user_id = :user_id ORDER BY created_at DESC LIMIT 20"
    ),
    "pages/operator_payments.py": Floor(
        """SELECT p.id, u.email, p.kind, p.amount_cents, p.refunded_cents, p.status, p.created_at
           FROM payments p JOIN users u ON u.id = p.user_id ORDER BY p.created_at DESC LIMIT 25"""
    ),
    "pages/operator_pricing.py": Floor("SELECT * FROM pricing_versions ORDER BY version DESC LIMIT 10"),
    "pages/operator_requests.py": Floor(
        "SELECT * FROM provider_requests WHERE status = 'pending' ORDER BY created_at LIMIT 20"
    ),
    "pages/operator_settings.py": Floor("SELECT * FROM operator_settings"),
    "pages/operator_audit.py": Floor("SELECT * FROM audit_log ORDER BY id DESC LIMIT 50"),
    "pages/profile.py": Floor("SELECT * FROM users WHERE id = :user_id"),
    "pages/notifications.py": Floor(
        "SELECT * FROM notifications WHERE user_id = :user_id ORDER BY created_at DESC LIMIT 20"
    ),
}


def _day_expression(dialect: str) -> str:
    return "date(e.created_at)" if dialect == "sqlite" else "CAST(e.created_at AS DATE)"


def _use_pages_v2_only() -> None:
    """Keep AppTest on st.navigation for every rerun (as the real server does after its first run).

    AppTest resets PagesManager.uses_pages_directory before each run, and the pages/ folder beside
    ui.py would turn it on again, so a rerun would run the page file alone, without ui.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__
    if getattr(PagesManager.__init__, "_bench", False):
        return

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init._bench = True  # type: ignore[attr-defined]
    PagesManager.__init__ = init  # type: ignore[method-assign]


def _compile_once() -> None:
    """Compile each page script once per process, as the server does.

    AppTest makes a new ScriptCache for every run, so each timed run would read, transform and compile
    the page file again (8-17 ms for the bigger pages, 0.4 ms for the floor page): a cost no visitor
    pays, since the server keeps one ScriptCache per process. One shared cache removes it from both
    the figure and the floor.
    """
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test

    if getattr(app_test.ScriptCache, "_bench", False):
        return
    shared = ScriptCache()

    def one_cache() -> ScriptCache:
        return shared

    one_cache._bench = True  # type: ignore[attr-defined]
    app_test.ScriptCache = one_cache  # type: ignore[assignment, misc]


def _signed_in(role: str, timeout: float):
    from streamlit.testing.v1 import AppTest

    subject, email, name = PEOPLE[role]
    at = AppTest.from_file(UI, default_timeout=timeout)
    at.user = {
        "is_logged_in": True,
        "sub": subject,
        "email": email,
        "email_verified": True,
        "name": name,
        get_settings().roles_claim: [],
    }
    at.run()
    return at


def _time_runs(at, count: int, budget: float) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + budget
    for i in range(count):
        if i and time.monotonic() > deadline:
            break
        start = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(str(at.exception[0].message)[:300])
    return out


def _floor_params(user_id: int):
    from services.db.base import utcnow
    from services.nodes.status import online_cutoff

    now = utcnow()
    return {"user_id": user_id, "now": now, "cutoff": online_cutoff(now), "month_ago": now - timedelta(days=30)}


def _floor_run(at, floor: Floor, dialect: str, user_id: int, title: str, count: int, budget: float):
    """The floor page in the same AppTest session (same person, same frame)."""
    at.session_state["floor_sql"] = floor.sql.replace("{day}", _day_expression(dialect))
    at.session_state["floor_params"] = _floor_params(user_id)
    at.session_state["floor_title"] = title
    at.switch_page(FLOOR_PAGE).run()  # warm
    if at.exception:
        raise RuntimeError(str(at.exception[0].message)[:300])
    return _time_runs(at, count, budget)


def _who(role: str) -> tuple[int, object]:
    from services.auth.identity import identity_for_demo_subject
    from services.db.engine import UnitOfWork

    me = identity_for_demo_subject(UnitOfWork(), PEOPLE[role][0])
    return me.user_id, me


def measure(ctx) -> list[Row]:
    """One row per (page, role that may see it)."""
    import logging
    import os

    from streamlit import logger as streamlit_logger

    from dashboard.navigation import PAGES, PageSpec, register
    from services.db.engine import get_engine

    os.environ["MARKETPLACE_DEMO_MODE"] = "false"
    get_settings.cache_clear()
    # Streamlit warns about running outside a server while AppTest imports the pages: expected here.
    streamlit_logger.set_log_level(logging.ERROR)
    _use_pages_v2_only()
    _compile_once()
    count, budget, timeout = (2, 10.0, 120.0) if ctx.quick else (12, 30.0, 120.0)
    dialect = get_engine().dialect.name
    pages = list(PAGES)
    # The floor page joins the navigation in this process only (AppTest runs ui.py here).
    register(PageSpec(FLOOR_PAGE, "Floor", ":material/speed:", "Benchmark", None))
    rows: list[Row] = []
    fresh_at = 0.0
    for role in PEOPLE:
        user_id, me = _who(role)
        try:
            at = _signed_in(role, timeout)
        except Exception as exc:
            rows.append(failed_row(f"sign-in as {role}", TARGET, f"{type(exc).__name__}: {exc}"))
            continue
        for spec in pages:
            if spec.action is not None and not me.can(spec.action):
                continue
            what = f"page {spec.title} ({spec.path.removeprefix('pages/')}) as {role}"
            floor = FLOORS.get(spec.path, GENERIC)
            if time.monotonic() - fresh_at > HEARTBEAT_REFRESH_SECONDS:
                refresh_heartbeats(ctx.url)  # the fleet is alive while people look at pages
                fresh_at = time.monotonic()
            try:
                at.switch_page(spec.path).run()  # warm: the first run of this page in this session
                if at.exception:
                    raise RuntimeError(str(at.exception[0].message)[:300])
                figure = _time_runs(at, count, budget)
                floor_times = _floor_run(at, floor, dialect, user_id, spec.title, count, budget)
            except Exception as exc:
                rows.append(failed_row(what, TARGET, f"{type(exc).__name__}: {exc}"))
                continue
            fig_med, fig_p95, floor_med = ms(median(figure)), ms(percentile(figure, 95)), ms(median(floor_times))
            r = ratio(fig_med, floor_med)
            rows.append(
                Row(
                    what=what,
                    figure=f"median {fig_med:.0f} ms, p95 {fig_p95:.0f} ms",
                    floor=f"median {floor_med:.0f} ms" + (" (generic)" if floor.generic else ""),
                    ratio=r,
                    target=TARGET,
                    met=fig_med <= MAX_MEDIAN_MS and r is not None and r <= MAX_RATIO,
                    values={"median_ms": fig_med, "p95_ms": fig_p95, "n": len(figure)},
                    floor_values={"median_ms": floor_med, "n": len(floor_times), "generic": floor.generic},
                )
            )
            ctx.log(f"    {what}: {rows[-1].figure} / floor {rows[-1].floor}")
    return rows
