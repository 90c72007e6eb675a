"""Settings in one place: environment variables, then Streamlit secrets, then defaults.

Every name is listed in the README with its default. Names start with ``MARKETPLACE_`` except the
vendors' own (``STRIPE_*``, ``AUTH0_DOMAIN``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = ROOT / ".marketplace" / "marketplace.db"


class Settings(BaseSettings):
    """Process configuration. Read once; `reload_settings()` re-reads (tests)."""

    model_config = SettingsConfigDict(env_prefix="MARKETPLACE_", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    # Demo mode is on when no [auth] section is configured; this forces it off (or on, outside production).
    demo_mode: bool | None = None
    seed_demo: bool = True
    roles_claim: str = "https://cloud-marketplace.example/roles"
    operator_emails: str = ""
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_url: str | None = None
    auth0_domain: str | None = Field(
        default=None, validation_alias=AliasChoices("AUTH0_DOMAIN", "MARKETPLACE_AUTH0_DOMAIN")
    )
    node_offline_after: int = 120
    metering_interval_seconds: int = 300
    metering_enabled: bool = True
    api_max_body_bytes: int = 1_000_000

    stripe_secret_key: str | None = Field(default=None, validation_alias="STRIPE_SECRET_KEY")
    stripe_publishable_key: str | None = Field(default=None, validation_alias="STRIPE_PUBLISHABLE_KEY")
    stripe_webhook_secret: str | None = Field(default=None, validation_alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(default=None, validation_alias="STRIPE_API_BASE")
    stripe_js_url: str = "https://js.stripe.com/v3/"

    @property
    def operator_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.operator_emails.split(",") if e.strip())

    @property
    def issuer(self) -> str | None:
        if self.auth_issuer:
            return self.auth_issuer
        if self.auth0_domain:
            return f"https://{self.auth0_domain}/"
        return None

    @property
    def jwks_url(self) -> str | None:
        if self.auth_jwks_url:
            return self.auth_jwks_url
        issuer = self.issuer
        return f"{issuer.rstrip('/')}/.well-known/jwks.json" if issuer else None

    @property
    def stripe_enabled(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_publishable_key)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process settings (cached)."""
    return Settings()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again."""
    get_settings.cache_clear()
    return get_settings()


def is_production() -> bool:
    return get_settings().env == "production" or os.environ.get("MARKETPLACE_ENV") == "production"
