"""The page registry: which page, in which group, needs which permission.

Every page is registered for everyone (so a deep link reaches the page, whose gate then says
"not allowed"), but only the pages a person may use are visible in the navigation.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from services.auth.identity import Identity
from services.auth.permissions import Action


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    group: str
    action: Action | None  # None: every signed-in person
    default: bool = False


PAGES: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", "Marketplace", None, default=True),
    # --- cloud-user pages
    PageSpec(
        "pages/user_launch.py", "Launch deployment", ":material/rocket_launch:", "Deploy", Action.DEPLOYMENT_LAUNCH
    ),
    PageSpec("pages/user_deployments.py", "My deployments", ":material/apps:", "Deploy", Action.DEPLOYMENT_MANAGE_OWN),
    PageSpec("pages/provider_apply.py", "Become a provider", ":material/storefront:", "Provide", Action.PROVIDER_APPLY),
    # --- billing pages
    PageSpec("pages/billing.py", "Billing", ":material/account_balance_wallet:", "Billing", Action.BILLING_MANAGE_OWN),
    PageSpec(
        "pages/billing_history.py", "Transactions", ":material/receipt_long:", "Billing", Action.BILLING_MANAGE_OWN
    ),
    PageSpec(
        "pages/billing_subscriptions.py", "Subscriptions", ":material/autorenew:", "Billing", Action.BILLING_MANAGE_OWN
    ),
    # --- cloud-provider pages
    PageSpec("pages/provider_nodes.py", "Nodes", ":material/dns:", "Provide", Action.NODE_MANAGE),
    PageSpec(
        "pages/provider_maintenance.py", "Maintenance", ":material/construction:", "Provide", Action.MAINTENANCE_MANAGE
    ),
    # --- cloud-operator pages
    PageSpec("pages/operator_overview.py", "Overview", ":material/monitoring:", "Operate", Action.OVERVIEW_VIEW),
    PageSpec("pages/operator_pricing.py", "Pricing", ":material/sell:", "Operate", Action.PRICING_EDIT),
    PageSpec("pages/operator_payments.py", "Payments", ":material/payments:", "Operate", Action.PAYMENTS_ADMIN),
    PageSpec(
        "pages/operator_requests.py",
        "Provider requests",
        ":material/how_to_reg:",
        "Operate",
        Action.PROVIDER_REQUEST_REVIEW,
    ),
    PageSpec("pages/operator_settings.py", "Settings", ":material/settings:", "Operate", Action.SETTINGS_EDIT),
    PageSpec("pages/operator_audit.py", "Audit log", ":material/history:", "Operate", Action.AUDIT_VIEW),
    # --- account pages
    PageSpec("pages/profile.py", "Profile", ":material/person:", "Account", Action.PROFILE_EDIT),
    PageSpec(
        "pages/notifications.py", "Notifications", ":material/notifications:", "Account", Action.NOTIFICATIONS_READ_OWN
    ),
]


def register(*specs: PageSpec) -> None:
    for spec in specs:
        if all(p.path != spec.path for p in PAGES):
            PAGES.append(spec)


def visible_pages(me: Identity) -> list[PageSpec]:
    return [p for p in PAGES if p.action is None or me.can(p.action)]


def build(me: Identity, *, extra: list | None = None):
    """st.navigation with the person's pages grouped by role; others registered hidden."""
    groups: dict[str, list] = {}
    for spec in PAGES:
        visible = spec.action is None or me.can(spec.action)
        page = st.Page(
            spec.path,
            title=spec.title,
            icon=spec.icon,
            default=spec.default,
            visibility="visible" if visible else "hidden",
        )
        groups.setdefault(spec.group, []).append(page)
    for group, pages in extra or []:
        groups.setdefault(group, []).extend(pages)
    return st.navigation(groups, expanded=True)
