"""Every table, imported in one place so that Alembic and `Base.metadata` see them all."""

from services.audit.models import AuditEntry  # noqa: F401
from services.db.base import Base  # noqa: F401
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement  # noqa: F401
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction, UsageCharge  # noqa: F401
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode  # noqa: F401
from services.nodes.models import Node, NodeMetric  # noqa: F401
from services.notifications.models import Notification  # noqa: F401
from services.payments.models import Payment, StripeEvent, Subscription  # noqa: F401
from services.pricing.models import PricingVersion  # noqa: F401
from services.providers.models import Provider, ProviderRequest  # noqa: F401
from services.settings.models import OperatorSetting  # noqa: F401
from services.users.models import RoleGrant, User  # noqa: F401
