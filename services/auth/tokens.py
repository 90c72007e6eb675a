"""API bearer tokens: verify an access token from the identity provider against its published keys.

Rules (one place): RS256 only; the signing key is picked by the token's `kid` from the JWKS at
`Settings.jwks_url`; the key set is cached and fetched again when a token names an unknown `kid`,
at most once per `REFETCH_INTERVAL` (so a stream of made-up kids cannot make us hammer the
provider), and at the latest after `MAX_AGE` (so a key the provider rotated out stops working);
`iss` and `aud` must match the settings; `exp` is required; `exp`, `nbf` and `iat` are checked with
`LEEWAY` seconds of clock skew.

Every failure raises `NotAuthenticated` with the same generic message: the caller learns nothing
about which check failed. The reason goes to the server log at debug level (never the token).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from services.config import get_settings
from services.errors import NotAuthenticated

log = logging.getLogger("marketplace.auth")

ALGORITHM = "RS256"
LEEWAY = 60  # seconds of clock skew tolerated on exp/nbf/iat (the ceiling)
REFETCH_INTERVAL = 60.0  # at most one JWKS fetch per minute, whatever tokens arrive
MAX_AGE = 600.0  # a fetched key set is trusted for ten minutes, then fetched again
FETCH_TIMEOUT = 5.0
MAX_TOKEN_BYTES = 16_384
GENERIC = "Not authenticated: a valid bearer token is required."


class _Rejected(Exception):
    """Internal: why a token was refused (logged, never shown)."""


class Jwks:
    """The provider's signing keys, cached, with rate-limited refetch on an unknown `kid`."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], dict[str, Any]] | None = None,
    ):
        self.url = url
        self._clock = clock
        self._fetch = fetch or _http_get_json
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        self.fetches = 0  # attempts, for tests and diagnostics

    def key(self, kid: str) -> RSAKey:
        """The RS256 signing key with this kid; refetches when it is unknown or the set is stale."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= MAX_AGE
            if (stale or kid not in self._keys) and self._may_fetch(now):
                self._refresh(now)
            if self._fetched_at is None or now - self._fetched_at >= MAX_AGE + REFETCH_INTERVAL:
                # never fetched, or the provider has been unreachable well past the cache's age: trust nothing
                raise _Rejected("no current key set")
            found = self._keys.get(kid)
            if found is None:
                raise _Rejected("unknown kid")
            return found

    def _may_fetch(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= REFETCH_INTERVAL

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        self.fetches += 1
        try:
            document = self._fetch(self.url)
            keys = _signing_keys(document)
        except Exception as exc:  # network, JSON, key format: keep the old set, try again later
            log.warning("could not fetch the JWKS from %s: %s", self.url, type(exc).__name__)
            return
        self._keys = keys
        self._fetched_at = now


def _http_get_json(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response.json()


def _signing_keys(document: Any) -> dict[str, RSAKey]:
    """kid -> key for the RSA signature keys of a JWKS document (others are ignored)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, RSAKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        public = {k: v for k, v in entry.items() if k in ("kty", "kid", "n", "e", "use", "alg")}
        try:
            keys[entry["kid"]] = RSAKey.import_key(public)
        except Exception as exc:
            log.warning("ignored an unreadable key %r in the JWKS: %s", entry["kid"], type(exc).__name__)
    return keys


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise _Rejected("not a compact JWS")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except ValueError as exc:
        raise _Rejected("unreadable header") from exc
    if not isinstance(header, dict):
        raise _Rejected("header is not an object")
    return header


class TokenVerifier:
    """Verifies access tokens for one issuer/audience/JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: Jwks,
        now: Callable[[], float] = time.time,
    ):
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self._now = now

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid; otherwise NotAuthenticated with a generic message."""
        try:
            return self._verify(token)
        except (_Rejected, JoseError, ValueError, TypeError, KeyError) as exc:
            # the reason (a check's name, never the token) goes to the log for the operator; the caller gets GENERIC
            log.debug("bearer token refused: %s: %s", type(exc).__name__, exc)
            raise NotAuthenticated(GENERIC) from None

    def _verify(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
            raise _Rejected("missing or oversized token")
        header = _header(token)
        if header.get("alg") != ALGORITHM:  # refuses "none", HS256 (public key as HMAC secret) and the rest
            raise _Rejected("algorithm not allowed")
        if "crit" in header:
            raise _Rejected("critical header parameters are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Rejected("no kid")
        key = self.jwks.key(kid)
        decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        registry.validate(claims)
        if not isinstance(claims.get("sub"), str):
            raise _Rejected("sub is not a string")
        return claims


_lock = threading.Lock()
_verifiers: dict[tuple[str, str, str], TokenVerifier] = {}


def configured() -> bool:
    """True when issuer, audience and JWKS address are all known (API tokens can be checked)."""
    s = get_settings()
    return bool(s.issuer and s.auth_audience and s.jwks_url)


def verifier() -> TokenVerifier:
    """The process's verifier for the current settings (its key cache lives as long as they do)."""
    s = get_settings()
    if not (s.issuer and s.auth_audience and s.jwks_url):
        log.warning(
            "an API bearer token arrived but token checks are not configured "
            "(set AUTH0_DOMAIN or MARKETPLACE_AUTH_ISSUER, and MARKETPLACE_AUTH_AUDIENCE)"
        )
        raise NotAuthenticated(GENERIC)
    key = (s.issuer, s.auth_audience, s.jwks_url)
    with _lock:
        found = _verifiers.get(key)
        if found is None:
            found = _verifiers[key] = TokenVerifier(issuer=key[0], audience=key[1], jwks=Jwks(key[2]))
        return found


def verify_access_token(token: str) -> dict[str, Any]:
    """The claims of a valid API access token; NotAuthenticated (generic message) for anything else."""
    return verifier().verify(token)


def reset_cache() -> None:
    """Forget every cached key set (tests; a settings change)."""
    with _lock:
        _verifiers.clear()
