"""Who may do what: the one permission table that pages and the API both check.

`PERMISSIONS` maps an action to the roles allowed to take it. The page registry
(dashboard/navigation.py) and the API routes name an action each, and the role-matrix tests
are generated from this table.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    USER = "cloud-user"
    PROVIDER = "cloud-provider"
    OPERATOR = "cloud-operator"


class Action(StrEnum):
    # every signed-in person (cloud-user)
    PROFILE_EDIT = "profile.edit"
    DEPLOYMENT_LAUNCH = "deployment.launch"
    DEPLOYMENT_MANAGE_OWN = "deployment.manage_own"
    BILLING_MANAGE_OWN = "billing.manage_own"
    PROVIDER_APPLY = "provider.apply"
    NOTIFICATIONS_READ_OWN = "notifications.read_own"
    # cloud-provider
    NODE_MANAGE = "node.manage"
    MAINTENANCE_MANAGE = "maintenance.manage"
    # cloud-operator
    OVERVIEW_VIEW = "overview.view"
    PRICING_EDIT = "pricing.edit"
    PROVIDER_REQUEST_REVIEW = "provider_request.review"
    SETTINGS_EDIT = "settings.edit"
    AUDIT_VIEW = "audit.view"
    PAYMENTS_ADMIN = "payments.admin"
    ROLE_GRANT = "role.grant"


_U, _P, _O = Role.USER, Role.PROVIDER, Role.OPERATOR

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.PROFILE_EDIT: frozenset({_U}),
    Action.DEPLOYMENT_LAUNCH: frozenset({_U}),
    Action.DEPLOYMENT_MANAGE_OWN: frozenset({_U}),
    Action.BILLING_MANAGE_OWN: frozenset({_U}),
    Action.PROVIDER_APPLY: frozenset({_U}),
    Action.NOTIFICATIONS_READ_OWN: frozenset({_U}),
    Action.NODE_MANAGE: frozenset({_P}),
    Action.MAINTENANCE_MANAGE: frozenset({_P}),
    Action.OVERVIEW_VIEW: frozenset({_O}),
    Action.PRICING_EDIT: frozenset({_O}),
    Action.PROVIDER_REQUEST_REVIEW: frozenset({_O}),
    Action.SETTINGS_EDIT: frozenset({_O}),
    Action.AUDIT_VIEW: frozenset({_O}),
    Action.PAYMENTS_ADMIN: frozenset({_O}),
    Action.ROLE_GRANT: frozenset({_O}),
}


def allowed(roles: frozenset[Role] | set[Role], action: Action) -> bool:
    """True when any of `roles` may take `action`."""
    return bool(PERMISSIONS[action] & set(roles))
